"""Dedup at scale: peak memory of exact and fuzzy dedup as the corpus grows, in memory vs spilled.

    python benchmarks/dedup_scale.py                                  # 1M and 3M docs, both levels and modes
    python benchmarks/dedup_scale.py --docs 10000000 --modes spill    # the 10M run

Each (level, mode, N) runs in a fresh subprocess that does what an executor does with the step,
minus the file I/O: `observe` per batch of generated documents (never the whole corpus at once),
`fit` over the streamed partials, then `process` per batch (regenerated). Reported: peak RSS
(`ru_maxrss`) and its growth over the process's RSS before the first batch, docs/s over
observe + fit + process, and recall / false drops against the generator's truth.

Corpus (deterministic, generated in batches): document i is unique when i % 10 < 7 (30 words
from a 20k-word vocabulary, about 200 characters), an exact copy of an earlier unique document
when i % 10 == 7, and a near copy of one (one word of 30 replaced: char 5-gram Jaccard ~0.9)
when i % 10 is 8 or 9. Exact dedup should drop the 10% exact copies; fuzzy dedup all 30% copies.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

WORDS, VOCAB = 30, 20_000


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a deterministic pseudo-random uint64 per input."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def vocabulary() -> list[str]:
    rng = np.random.default_rng(0)
    return ["".join(chr(97 + c) for c in rng.integers(0, 26, n)) for n in rng.integers(3, 10, VOCAB)]


def batch(vocab: list[str], start: int, n: int) -> tuple[np.ndarray, list[dict]]:
    """(kind per doc: 0 unique, 1 exact copy, 2 near copy; the documents) of docs start..start+n."""
    i = np.arange(start, start + n, dtype=np.uint64)
    digit = i % np.uint64(10)
    kind = np.where(digit < 7, 0, np.where(digit == 7, 1, 2))
    # a copy's source: an earlier document whose last digit is < 7 (doc 0 for the first ten)
    tens = i // np.uint64(10)
    src_tens = np.where(tens > 0, _mix(i) % np.maximum(tens, np.uint64(1)), 0).astype(np.uint64)
    src = np.where(kind == 0, i, src_tens * np.uint64(10) + np.where(tens > 0, _mix(i + np.uint64(1)) % np.uint64(7), 0))
    words = _mix(src[:, None] * np.uint64(64) + np.arange(WORDS, dtype=np.uint64)) % np.uint64(VOCAB)
    near = np.flatnonzero(kind == 2)
    words[near, (_mix(i[near] ^ np.uint64(0xABCD)) % np.uint64(WORDS)).astype(np.intp)] = \
        _mix(i[near] ^ np.uint64(0x1234)) % np.uint64(VOCAB)
    docs = [{"id": f"doc-{d:010d}", "text": " ".join(vocab[w] for w in row), "source": "web"}
            for d, row in zip(i.tolist(), words.tolist(), strict=True)]
    return kind, docs


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    from llm_recipe.data.dedup.steps import ExactDedupStep, FuzzyDedupStep
    from llm_recipe.data.pipeline import run_steps

    vocab = vocabulary()
    make = ExactDedupStep if args.worker == "exact" else FuzzyDedupStep
    step = make(spill=args.mode == "spill", workdir=args.workdir)
    starts = range(0, args.n, args.batch_size)
    base = _rss_mb()
    t0 = time.perf_counter()
    step.fit(step.observe(batch(vocab, s, min(args.batch_size, args.n - s))[1]) for s in starts)
    t_fit = time.perf_counter()
    dropped, total = np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64)
    for s in starts:
        kind, docs = batch(vocab, s, min(args.batch_size, args.n - s))
        kept = {d["id"] for d in run_steps([step], docs).kept}
        gone = np.array([d["id"] not in kept for d in docs])
        dropped += np.bincount(kind[gone], minlength=3)
        total += np.bincount(kind, minlength=3)
    secs = time.perf_counter() - t0
    print(json.dumps({"peak_rss_mb": _rss_mb(), "base_rss_mb": base, "seconds": secs,
                      "fit_seconds": t_fit - t0, "dropped": dropped.tolist(), "total": total.tolist()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", default="1000000,3000000", help="comma-separated corpus sizes")
    ap.add_argument("--levels", default="exact,fuzzy")
    ap.add_argument("--modes", default="ram,spill")
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--worker", choices=["exact", "fuzzy"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"{'level':<7}{'mode':<7}{'docs':>11}{'peak RSS MB':>13}{'growth MB':>11}{'docs/s':>9}"
          f"{'recall':>8}{'false drops':>13}", flush=True)
    for n in (int(x) for x in args.docs.split(",")):
        for level in args.levels.split(","):
            for mode in args.modes.split(","):
                with tempfile.TemporaryDirectory(prefix="dedup-scale-") as work:
                    cmd = [sys.executable, __file__, "--worker", level, "--mode", mode, "--n", str(n),
                           "--workdir", work, "--batch-size", str(args.batch_size)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:])
                    raise SystemExit(f"{level}/{mode}/{n} failed")
                m = json.loads(proc.stdout.strip().splitlines()[-1])
                dropped, total = np.array(m["dropped"]), np.array(m["total"])
                # exact dedup should drop the exact copies (kind 1), fuzzy both kinds of copies
                target = [1] if level == "exact" else [1, 2]
                recall = dropped[target].sum() / max(total[target].sum(), 1)
                print(f"{level:<7}{mode:<7}{n:>11}{m['peak_rss_mb']:>13.0f}"
                      f"{m['peak_rss_mb'] - m['base_rss_mb']:>11.0f}{n / m['seconds']:>9.0f}"
                      f"{recall:>8.4f}{int(dropped[0]):>13}", flush=True)


if __name__ == "__main__":
    main()
