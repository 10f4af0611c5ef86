"""Pretraining data from token shards: memory, tokenization throughput, data time per step.

    python benchmarks/pretrain_data.py                 # all three parts, 3 repeats each
    python benchmarks/pretrain_data.py --only rss --sizes 10e6 100e6 1e9
    /work/bin/heavy --exclusive python benchmarks/pretrain_data.py   # the figures that get reported

(a) rss: peak RSS of pretraining the demo model (`tiny` preset, 256-token windows, batch 8) for
    a few steps on synthetic token shards of 10M, 100M and 1B tokens (random ids of the demo
    tokenizer, documents of 100-900 tokens, 100M tokens per shard file, 5% held out). Each run is
    `run_pretrain` in a fresh process; goal: flat, at most +100 MB from 10M to 1B.
(b) throughput: the tokenize curation step (`tokenize_corpus`: read the JSONL shards, encode,
    write token shards; one worker process, tokenizers' own threads off) vs `tokenizers`'
    `encode_batch_fast` over the same texts already in memory (its fastest call: no offsets), per
    CPU second (user + sys of the process); goal >= 0.9x. datatrove's `DocumentTokenizer` (no
    document shuffle: its fastest setting, and ours does not shuffle either) joins when datatrove is
    importable (the `bench` extra, or `--datatrove-python` of a side venv), else it is not run.
(c) data time: share of each logged window of steps spent making batches (`data_share` in
    metrics.jsonl: reading windows from the memory maps, collating) while pretraining the demo
    model on the sample corpus's shards; goal < 5%.

Contenders run in separate processes, interleaved, `--repeats` times (>= 3); reported: median and
range, CPU seconds, peak RSS, and the machine's load average before each part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "2",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _tokenizer(work: Path):
    """The demo tokenizer (4096 ids), trained once on the sample corpus."""
    from transformers import AutoTokenizer

    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
        from llm_recipe.tokenizer.train import train_and_save

        files = sample_corpus_files(generate_sample_corpus(work / "corpus", docs_per_source=1000, seed=0))
        texts = _texts([str(f) for f in files])
        train_and_save(texts, tok_dir, vocab_size=4096)
    return AutoTokenizer.from_pretrained(tok_dir)


def synthetic_shards(out: Path, n_tokens: int, tokenizer, per_file: int = 100_000_000) -> Path:
    """Random documents (ids < vocab, EOS-terminated) as token shards; reused when already there."""
    from llm_recipe.data.token_shards import TokenShardWriter, shard_meta

    if (out / "done").exists():
        return out
    meta = shard_meta(tokenizer, val_fraction=0.05, split_seed=0)
    rng = np.random.default_rng(0)
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    for k, start in enumerate(range(0, n_tokens, per_file)):
        left = min(per_file, n_tokens - start)
        with TokenShardWriter(out / "data", f"{k:05d}-synthetic", meta) as w:
            while left > 0:
                lengths = rng.integers(100, 900, 4096)
                lengths = lengths[np.cumsum(lengths) <= left] if lengths.sum() > left else lengths
                if not len(lengths):
                    break
                ids = rng.integers(3, vocab, int(lengths.sum()), dtype=np.int64).astype(np.uint16)
                ids[np.cumsum(lengths) - 1] = eos
                pieces = np.split(ids, np.cumsum(lengths)[:-1])
                split = np.where(rng.random(len(pieces)) < 0.05, "val", "train")
                w.write([{"source": "synthetic", "split": s, "tokens": p, "text": "", "text_tokens": len(p) - 1}
                         for p, s in zip(pieces, split, strict=True)])
                left -= int(lengths.sum())
    (out / "done").write_text("")
    return out


def _child(args: list[str], python: str = sys.executable) -> dict:
    """Run this script's worker in a fresh process; its JSON result plus the child's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([python, __file__, "--worker", *args], capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise RuntimeError(f"worker {args} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out.setdefault("wall_s", wall)
    out["process_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker_pretrain(shards: str, work: str, steps: int) -> dict:
    import torch

    from llm_recipe.config import ModelConfig, PretrainConfig
    from llm_recipe.train.pretrain import run_pretrain

    torch.set_num_threads(2)
    tok = _tokenizer(Path(work))
    base = _rss_mb()
    cfg = PretrainConfig(max_steps=steps, batch_size=8, block_size=256, eval_every=steps, eval_batches=2,
                         log_every=max(1, steps // 6), warmup_steps=2, save_every=None)
    with tempfile.TemporaryDirectory(dir=work) as out:
        t0, c0 = time.perf_counter(), _cpu()
        run_pretrain(token_data=shards, tokenizer=tok, model_cfg=ModelConfig(preset="tiny"), cfg=cfg, output_dir=out)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        recs = [json.loads(ln) for ln in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    shares = [r["data_share"] for r in recs if "data_share" in r]
    return {"peak_rss_mb": _rss_mb(), "rss_before_mb": base, "wall_s": wall, "cpu_s": cpu,
            "data_share_median": statistics.median(shares) if shares else None, "data_shares": shares}


def _texts(files: list[str]) -> list[str]:
    return [json.loads(line)["text"] for f in files for line in Path(f).read_text(encoding="utf-8").splitlines()]


def worker_tokenize(kind: str, work: str, files: list[str]) -> dict:
    tok = _tokenizer(Path(work))
    chars = sum(len(t) for t in _texts(files))
    base = _rss_mb()
    t0, c0 = time.perf_counter(), _cpu()
    if kind == "ours":
        from llm_recipe.data.tokenize import tokenize_corpus

        with tempfile.TemporaryDirectory(dir=work) as out:
            t0, c0 = time.perf_counter(), _cpu()  # the whole step: read, encode, write, stats
            stats = tokenize_corpus(files, out, tok, val_fraction=0.05, seed=0)
            tokens = stats["tokens"]["total"]["tokens"]
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
    elif kind == "tokenizers":
        texts = _texts(files)
        backend = tok.backend_tokenizer
        t0, c0 = time.perf_counter(), _cpu()  # encode only: the texts are in memory, nothing is written
        tokens = sum(len(e.ids) for i in range(0, len(texts), 1000)
                     for e in backend.encode_batch_fast(texts[i : i + 1000], add_special_tokens=True))
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
    else:
        tokens, wall, cpu = _datatrove(tok, files, Path(work))
    return {"chars": chars, "tokens": tokens, "wall_s": wall, "cpu_s": cpu, "chars_per_cpu_s": chars / cpu,
            "peak_rss_mb": _rss_mb(), "rss_before_mb": base}


def _datatrove(tok, files: list[str], work: Path):
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    with tempfile.TemporaryDirectory(dir=work) as out:
        tok.save_pretrained(Path(out) / "tok")
        reader = JsonlReader(str(Path(files[0]).parent), glob_pattern="*.jsonl")
        step = DocumentTokenizer(output_folder=str(Path(out) / "tokens"),
                                 tokenizer_name_or_path=str(Path(out) / "tok" / "tokenizer.json"),
                                 eos_token=tok.eos_token, shuffle_documents=False)
        t0, c0 = time.perf_counter(), _cpu()
        for _ in step.run(reader.run(None, 0, 1), 0, 1) or ():  # a plain function in datatrove 0.10
            pass
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        tokens = sum(p.stat().st_size for p in (Path(out) / "tokens").rglob("*.ds")) // 2
        if not tokens:
            raise RuntimeError("datatrove wrote no tokens")
    return tokens, wall, cpu


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} (range {min(values):.4g}-{max(values):.4g})"


def part_rss(args, work: Path, tok) -> dict:
    sizes = [int(float(s)) for s in args.sizes]
    dirs = {n: synthetic_shards(work / f"shards-{n}", n, tok) for n in sizes}
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(args.repeats):  # interleaved: each size once per round
        for n in sizes:
            runs[n].append(_child(["pretrain", str(dirs[n]), str(work), str(args.steps)]))
    out = {}
    for n in sizes:
        peaks = [r["peak_rss_mb"] for r in runs[n]]
        out[n] = {"peak_rss_mb": statistics.median(peaks), "range": [min(peaks), max(peaks)],
                  "wall_s": statistics.median(r["wall_s"] for r in runs[n]),
                  "cpu_s": statistics.median(r["cpu_s"] for r in runs[n])}
        print(f"  {n / 1e6:>6.0f}M tokens: peak RSS {_summary(peaks)} MB, "
              f"{out[n]['wall_s']:.1f} s wall / {out[n]['cpu_s']:.1f} s CPU for {args.steps} steps", flush=True)
    grow = out[sizes[-1]]["peak_rss_mb"] - out[sizes[0]]["peak_rss_mb"]
    print(f"  growth {sizes[0] / 1e6:.0f}M -> {sizes[-1] / 1e6:.0f}M tokens: {grow:+.1f} MB (goal <= +100 MB)")
    return {"runs": {str(k): v for k, v in runs.items()}, "summary": {str(k): v for k, v in out.items()},
            "growth_mb": grow}


def part_throughput(args, work: Path) -> dict:
    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files

    files = [str(f) for f in sample_corpus_files(generate_sample_corpus(work / "tp_corpus", args.tp_docs, seed=1))]
    kinds = ["ours", "tokenizers"]
    python = {k: sys.executable for k in kinds}
    dt = args.datatrove_python or sys.executable
    if subprocess.run([dt, "-c", "import datatrove.pipeline.tokens"], capture_output=True).returncode == 0:
        kinds.append("datatrove")
        python["datatrove"] = dt
    else:
        print("  datatrove: not run (not importable: pip install 'llm-recipe[bench]', or --datatrove-python)")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for k in kinds:
            runs[k].append(_child(["tokenize", k, str(work), *files], python[k]))
    med = {k: statistics.median(r["chars_per_cpu_s"] for r in runs[k]) for k in kinds}
    for k in kinds:
        rs = runs[k]
        print(f"  {k:>10}: {_summary([r['chars_per_cpu_s'] / 1e6 for r in rs])} M chars per CPU second; "
              f"CPU {_summary([r['cpu_s'] for r in rs])} s, wall {_summary([r['wall_s'] for r in rs])} s, "
              f"peak RSS {_summary([r['peak_rss_mb'] for r in rs])} MB ({rs[0]['chars'] / 1e6:.1f}M chars, "
              f"{rs[0]['tokens']:,} tokens)", flush=True)
    ratio = med["ours"] / med["tokenizers"]
    pairs = _paired_ratios(runs)
    print(f"  tokenize step / tokenizers encode_batch_fast: {ratio:.2f}x per CPU second (goal >= 0.9x); per repeat "
          f"{statistics.median(pairs):.2f}x [{min(pairs):.2f}-{max(pairs):.2f}]")
    return {"runs": runs, "ratio_vs_tokenizers": ratio,
            "ratio_vs_datatrove": med["ours"] / med["datatrove"] if "datatrove" in med else None}


def part_data_time(args, work: Path, tok) -> dict:
    from llm_recipe.data.tokenize import tokenize_corpus
    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files

    shards = work / "demo_tokens"
    if not (shards / "stats.json").exists():
        files = sample_corpus_files(generate_sample_corpus(work / "corpus", docs_per_source=1000, seed=0))
        tokenize_corpus(files, shards, tok, val_fraction=0.05, seed=0)
    runs = [_child(["pretrain", str(shards), str(work), str(args.data_steps)]) for _ in range(args.repeats)]
    shares = [r["data_share_median"] for r in runs]
    print(f"  data time / step time: {_summary([s * 100 for s in shares])} % over {args.data_steps} steps "
          f"(goal < 5%); {statistics.median(r['wall_s'] for r in runs):.1f} s per run")
    return {"runs": runs, "data_share_median": statistics.median(shares)}


def _paired_ratios(runs: dict[str, list[dict]]) -> list[float]:
    """Ours / tokenizers per repeat: the two ran back to back, so machine drift cancels in each pair."""
    return [a["chars_per_cpu_s"] / b["chars_per_cpu_s"] for a, b in zip(runs["ours"], runs["tokenizers"], strict=True)]


def figures_text(r: dict) -> str:
    """The README block, from the JSON this script writes with --out."""
    lines = []
    if "rss" in r:
        sm = r["rss"]["summary"]
        sizes = sorted(sm, key=float)
        peaks = ", ".join(f"{float(n) / 1e6:.0f}M {sm[n]['peak_rss_mb']:.0f} MB ({sm[n]['range'][0]:.0f}-"
                          f"{sm[n]['range'][1]:.0f})" for n in sizes)
        lines.append(f"- peak RSS of pretraining the demo model for a few steps on token shards of {peaks}: "
                     f"{r['rss']['growth_mb']:+.0f} MB from {float(sizes[0]) / 1e6:.0f}M to "
                     f"{float(sizes[-1]) / 1e6:.0f}M tokens (goal <= +100 MB; median of 3 runs, range)")
    if "throughput" in r:
        t = r["throughput"]
        med = {k: statistics.median(x["chars_per_cpu_s"] for x in v) / 1e6 for k, v in t["runs"].items()}
        dt = (f"; datatrove's DocumentTokenizer {med['datatrove']:.2f} ({t['ratio_vs_datatrove']:.2f}x)"
              if t.get("ratio_vs_datatrove") else "; datatrove not installed here (not run)")
        pairs = _paired_ratios(t["runs"])
        lines.append(f"- tokenization, M characters per CPU second (one process, {len(pairs)} interleaved repeats): the "
                     f"tokenize step (read JSONL, encode, write shards) {med['ours']:.2f} vs `tokenizers` "
                     f"`encode_batch_fast` on the same texts in memory {med['tokenizers']:.2f}: "
                     f"{t['ratio_vs_tokenizers']:.2f}x (goal >= 0.9x; each repeat's pair, run back to back: median "
                     f"{statistics.median(pairs):.2f}x, range {min(pairs):.2f}-{max(pairs):.2f}x){dt}")
    if "data_time" in r:
        d = r["data_time"]
        shares = [x["data_share_median"] * 100 for x in d["runs"]]
        lines.append(f"- data time per step (reading windows from the memory maps + collating) while pretraining "
                     f"the demo model: {statistics.median(shares):.3f}% of step time (runs: "
                     f"{', '.join(f'{x:.3f}' for x in shares)}; goal < 5%)")
    loads = ", ".join(f"{k} {v['load_before'][0]:.1f}" for k, v in r.items() if "load_before" in v)
    return "\n".join(lines) + f"\n\nLoad average (1 min) before each part: {loads} (2 CPUs).\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["rss", "throughput", "data_time"], action="append")
    p.add_argument("--sizes", nargs="+", default=["10e6", "100e6", "1e9"])
    p.add_argument("--steps", type=int, default=5, help="pretraining steps per RSS run")
    p.add_argument("--data-steps", type=int, default=60)
    p.add_argument("--tp-docs", type=int, default=4000, help="sample corpus docs per source for throughput")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--datatrove-python", help="an interpreter that can import datatrove (e.g. a side venv)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "llm-recipe-pretrain-data")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(args.work)
    parts = args.only or ["rss", "throughput", "data_time"]
    results = {}
    for name, fn in (("rss", lambda: part_rss(args, args.work, tok)), ("throughput", lambda: part_throughput(args, args.work)),
                     ("data_time", lambda: part_data_time(args, args.work, tok))):
        if name in parts:
            print(f"[{name}] load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
            results[name] = {"load_before": os.getloadavg(), **fn()}
            if args.out:  # after each part: a long run stopped later keeps what it measured
                args.out.write_text(json.dumps(results, indent=1, default=str))
    print(figures_text(results))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        res = worker_pretrain(rest[0], rest[1], int(rest[2])) if kind == "pretrain" else \
            worker_tokenize(rest[0], rest[1], rest[2:])
        print(json.dumps(res))
    else:
        main()
