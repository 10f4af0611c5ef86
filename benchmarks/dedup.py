"""Fuzzy dedup benchmark: llm-recipe MinHash-LSH vs datasketch, side by side.

    python benchmarks/dedup.py                 # 100k generated docs (about 87 MB of text)
    python benchmarks/dedup.py --docs 20000    # quicker

The corpus is `near_duplicate_corpus` (generated text, ~half the documents in families of
near copies with known edits). Both sides read the same JSONL, use the same shingles (char
5-grams of the same normalized text), the same num_perm and the same bands x rows, and report
LSH candidate pairs. Each side runs in its own subprocess, so its peak RSS
(`ru_maxrss`) is attributable; docs/s counts everything from reading the file to the final
pairs. Ground truth is the exact Jaccard of Python string shingle sets (not our hashing):
recall = found / within-family pairs with J >= threshold; precision = share of reported
pairs with true J >= threshold.

datasketch is run the way its docs show for dedup: `MinHash.bulk` per batch, then
`MinHashLSH.query` + `insert` per document; once with its default SHA-1 hashing and once with
xxhash as `hashfunc` (its fastest configuration on CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDES = ("ours", "ours+verify", "datasketch", "datasketch+xxhash")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_texts(path: str):
    from llm_recipe.files import iter_jsonl

    for _, rec in iter_jsonl(path):
        yield rec["text"]


def _python_shingles(text: str, n: int) -> set[str]:
    from llm_recipe.data.dedup.shingles import normalize_text

    t = normalize_text(text)
    if not t:
        return set()
    return {t[i : i + n] for i in range(max(len(t) - n + 1, 1))}


# ---- workers (run in a fresh subprocess each) ---------------------------------------------
def run_ours(args, verify: str) -> np.ndarray:
    from llm_recipe.data.dedup.fuzzy import FuzzyParams, MinHashDedup
    from llm_recipe.data.dedup.shingles import ShingleSpec

    params = FuzzyParams(threshold=args.threshold, num_perm=args.num_perm, bands=args.bands,
                         rows=args.rows, shingle=ShingleSpec("char", args.ngram), verify=verify,
                         max_bucket=10**9)
    with MinHashDedup(params, args.workdir) as dd:
        batch: list[str] = []
        for t in _read_texts(args.input):
            batch.append(t)
            if len(batch) == args.batch_size:
                dd.add(batch)
                batch = []
        if batch:
            dd.add(batch)
        return dd.finish().pairs


def run_datasketch(args, xxh: bool) -> np.ndarray:
    import xxhash
    from datasketch import MinHash, MinHashLSH

    kw = {"hashfunc": lambda b: xxhash.xxh32_intdigest(b)} if xxh else {}
    lsh = MinHashLSH(threshold=args.threshold, num_perm=args.num_perm, params=(args.bands, args.rows))
    pairs: list[tuple[int, int]] = []
    idx = 0

    def flush(batch: list[list[bytes]]) -> None:
        nonlocal idx
        for m in MinHash.bulk(batch, num_perm=args.num_perm, **kw):
            pairs.extend((j, idx) for j in lsh.query(m))
            lsh.insert(idx, m)
            idx += 1

    batch: list[list[bytes]] = []
    for t in _read_texts(args.input):
        batch.append([s.encode("utf-8") for s in _python_shingles(t, args.ngram)])
        if len(batch) == args.batch_size:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def worker(args) -> None:
    base = _rss_mb()
    t0 = time.perf_counter()
    if args.worker.startswith("ours"):
        pairs = run_ours(args, "jaccard" if args.worker == "ours+verify" else "none")
    else:
        pairs = run_datasketch(args, xxh=args.worker.endswith("xxhash"))
    secs = time.perf_counter() - t0
    np.save(args.out, pairs)
    print(json.dumps({"seconds": secs, "peak_rss_mb": _rss_mb(), "rss_after_import_mb": base}))


# ---- parent ---------------------------------------------------------------------------------
def truth_pairs(texts: list[str], family: list[int], n: int) -> dict[tuple[int, int], float]:
    fam: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        fam.setdefault(f, []).append(i)
    out = {}
    for members in fam.values():
        if len(members) < 2:
            continue
        sets = {i: _python_shingles(texts[i], n) for i in members}
        ms = sorted(members)
        for a in range(len(ms)):
            for b in range(a + 1, len(ms)):
                sa, sb = sets[ms[a]], sets[ms[b]]
                out[(ms[a], ms[b])] = len(sa & sb) / max(len(sa | sb), 1)
    return out


def pair_jaccards(texts: list[str], pairs: np.ndarray, n: int, known: dict) -> np.ndarray:
    cache: dict[int, set[str]] = {}
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs.tolist()):
        if (i, j) in known:
            out[k] = known[(i, j)]
            continue
        for d in (i, j):
            if d not in cache:
                if len(cache) > 50_000:
                    cache.clear()
                cache[d] = _python_shingles(texts[d], n)
        out[k] = len(cache[i] & cache[j]) / max(len(cache[i] | cache[j]), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--bands", type=int)
    ap.add_argument("--rows", type=int)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--lang", default="en", choices=["en", "ja"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    from llm_recipe.data.dedup.fuzzy import FuzzyParams
    from llm_recipe.data.dedup.minhash import s_curve
    from llm_recipe.demo.dedup_corpus import near_duplicate_corpus
    from llm_recipe.files import write_jsonl

    if args.bands is None:
        args.bands, args.rows = FuzzyParams(threshold=args.threshold, num_perm=args.num_perm).bands_rows()
    print(f"generating {args.docs} docs ({args.lang}) ...", flush=True)
    corpus = near_duplicate_corpus(args.docs, seed=args.seed, lang=args.lang)
    mb = sum(len(t.encode("utf-8")) for t in corpus.texts) / 1e6
    truth = truth_pairs(corpus.texts, corpus.family, args.ngram)
    positives = {p for p, j in truth.items() if j >= args.threshold}
    print(f"{args.docs} docs, {mb:.1f} MB, {len(truth)} within-family pairs, {len(positives)} with "
          f"J >= {args.threshold}; num_perm={args.num_perm} bands={args.bands} rows={args.rows} "
          f"(P(candidate | J=t) = {s_curve(args.threshold, args.bands, args.rows):.3f}); "
          f"char {args.ngram}-grams", flush=True)
    expected = float(np.mean(s_curve(np.array([truth[p] for p in positives]), args.bands, args.rows)))
    print(f"recall the S-curve predicts for these pairs with ideal hashing: {expected:.4f} "
          f"(any side's recall differs from it by hash-seed luck)", flush=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corpus.jsonl"
        write_jsonl(data, ({"id": str(i), "text": t} for i, t in enumerate(corpus.texts)))
        for side in args.sides.split(","):
            out = Path(tmp) / f"{side}.npy"
            workdir = Path(tmp) / f"work-{side}"
            cmd = [sys.executable, __file__, "--worker", side, "--input", str(data), "--out", str(out),
                   "--workdir", str(workdir), "--threshold", str(args.threshold),
                   "--num-perm", str(args.num_perm), "--bands", str(args.bands), "--rows", str(args.rows),
                   "--ngram", str(args.ngram), "--batch-size", str(args.batch_size)]
            print(f"running {side} ...", flush=True)
            workdir.mkdir()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"{side} failed")
            m = json.loads(proc.stdout.strip().splitlines()[-1])
            pairs = np.load(out)
            jac = pair_jaccards(corpus.texts, pairs, args.ngram, truth)
            found = {tuple(p) for p in pairs.tolist()}
            m["pairs"] = len(pairs)
            m["precision"] = float(np.mean(jac >= args.threshold)) if len(pairs) else 1.0
            m["recall"] = len(found & positives) / max(len(positives), 1)
            m["docs_per_s"] = args.docs / m["seconds"]
            results[side] = m

    print()
    print(f"{'side':<20}{'docs/s':>10}{'seconds':>10}{'peak RSS MB':>13}{'pairs':>10}{'precision':>11}{'recall':>8}")
    for side, m in results.items():
        print(f"{side:<20}{m['docs_per_s']:>10.0f}{m['seconds']:>10.1f}{m['peak_rss_mb']:>13.0f}"
              f"{m['pairs']:>10}{m['precision']:>11.4f}{m['recall']:>8.4f}")
    print()
    for ours in ("ours", "ours+verify"):
        for peer in ("datasketch", "datasketch+xxhash"):
            if ours in results and peer in results:
                a, b = results[ours], results[peer]
                print(f"{ours} vs {peer}: throughput {a['docs_per_s'] / b['docs_per_s']:.2f}x, "
                      f"peak RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x, "
                      f"recall {a['recall']:.4f} vs {b['recall']:.4f}")


if __name__ == "__main__":
    main()
