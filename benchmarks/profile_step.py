"""Where one SFT training step's time goes: torch.profiler over our loop, grouped into matmul,
attention, loss, optimizer, data and the rest, with the step's MFU against the measured roof.

    python benchmarks/profile_step.py --model /work/models/smollm2 --precision bf16-autocast [--batch 4]

Runs `--warmup` steps, then profiles `--steps` steps of `Trainer` (ours, packed rows, as
sft_throughput.py runs it) and prints self CPU time per group (ms per step and share), the top
operators, and model FLOP/s / roof. Groups are by operator name (`GROUPS`, first match wins);
everything the trainer does outside an operator (Python, the collate) is in "data + Python".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = [  # (group, substrings of aten operator names): first match wins
    ("optimizer", ("adam", "_foreach", "clip_grad", "norm.Scalar", "zero_")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "_safe_softmax")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "logsumexp")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "aten::baddbmm")),
    ("dtype casts", ("aten::_to_copy", "aten::copy_", "aten::to")),
    ("fused kernels (torch.compile)", ("cpp_fused", "Torch-Compiled", "CompiledFunction", "inductor")),
    ("data + Python", ("collate", "aten::index", "aten::nonzero", "aten::cat", "aten::stack")),
]


def group_of(name: str) -> str:
    return next((g for g, keys in GROUPS if any(k in name for k in keys)), "elementwise, norms, rope, other")


def main() -> None:
    import sft_throughput as sft
    import torch
    from roof import Shapes, train_flops
    from torch.profiler import ProfilerActivity, profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/work/models/smollm2")
    ap.add_argument("--precision", default="bf16-autocast", choices=("fp32", "bf16-autocast", "bf16-weights"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="compute.compile (torch.compile the model)")
    ap.add_argument("--roof", type=Path, help="roof.py --json output for these shapes (MFU)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    args = argparse.Namespace(model=a.model, examples=a.examples, max_length=a.max_length)
    tok, make_model, examples, _ = sft.load_setup(args)
    from llm_recipe.config import ComputeConfig, SFTConfig
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.sft import SFTObjective
    from llm_recipe.train.sft_data import pack_examples

    rows = pack_examples(examples, a.max_length)
    model = make_model(sft.DTYPE[a.precision])
    shapes = Shapes.of(model.config)
    per_token = sum(train_flops(shapes, len(e), head=e.n_trained) for e in examples) / sum(len(e) for e in examples)
    cfg = SFTConfig(max_steps=a.warmup + a.steps, batch_size=a.batch, lr=1e-4, warmup_steps=2, log_every=10**6,
                    eval_every=10**6, save_every=None, packing=True,
                    compute=ComputeConfig(mixed_precision="bf16" if a.precision == "bf16-autocast" else "no",
                                          dtype=sft.DTYPE[a.precision], compile=a.compile))
    state = {}
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=False)

    def tick(tr):
        if tr.state.step == a.warmup:
            state["t0"], state["n0"] = time.perf_counter(), tr.state.tokens
            prof.__enter__()
        elif tr.state.step == a.warmup + a.steps:
            prof.__exit__(None, None, None)
            state["t1"], state["n1"] = time.perf_counter(), tr.state.tokens

    with tempfile.TemporaryDirectory() as d:
        Trainer(model, SFTObjective(tok.pad_token_id), rows, cfg, d, seed=0, callbacks=[tick]).fit()
    wall = (state["t1"] - state["t0"]) / a.steps
    tokens = (state["n1"] - state["n0"]) / a.steps
    groups: dict[str, float] = defaultdict(float)
    ops = []
    for ev in prof.key_averages():
        if ev.key.startswith("ProfilerStep") or ev.key.startswith("Optimizer.step"):
            continue
        us = ev.self_cpu_time_total / a.steps
        groups[group_of(ev.key)] += us
        ops.append((us, ev.key, ev.count // a.steps))
    profiled = sum(groups.values()) / 1e6
    groups["data + Python"] += max(0.0, wall - profiled) * 1e6  # outside any operator
    out = {"model": a.model, "precision": a.precision + (" compile" if a.compile else ""), "batch": a.batch, "max_length": a.max_length,
           "threads": a.threads, "step_s": wall, "tokens_per_step": tokens, "tokens_per_s": tokens / wall,
           "model_flops_per_s": tokens * per_token / wall, "flops_per_token": per_token,
           "groups_ms": {g: us / 1e3 for g, us in sorted(groups.items(), key=lambda x: -x[1])},
           "top_ops": [{"op": k, "ms": us / 1e3, "calls": n} for us, k, n in sorted(ops, reverse=True)[:25]]}
    if a.roof:
        roof = json.loads(a.roof.read_text())
        out["roof"] = roof["bf16" if a.precision != "fp32" else "fp32"]
        out["mfu"] = out["model_flops_per_s"] / out["roof"]
    print(f"{a.model} {a.precision}: {wall:.2f} s/step, {tokens:.0f} tokens/step, {tokens / wall:.0f} tokens/s, "
          f"model {out['model_flops_per_s'] / 1e9:.1f} GFLOP/s" + (f", MFU {out['mfu']:.0%} of {out['roof'] / 1e9:.1f}"
                                                                  if a.roof else ""))
    for g, ms in out["groups_ms"].items():
        print(f"  {g:<34} {ms:8.1f} ms  {ms / 1e3 / wall:5.1%}")
    print("top operators (self CPU ms per step, calls):")
    for o in out["top_ops"][:18]:
        print(f"  {o['op']:<48} {o['ms']:8.1f}  x{o['calls']}")
    if a.json:
        import harness

        out.update(harness.commit(), load=os.getloadavg(), command="python benchmarks/profile_step.py " + " ".join(sys.argv[1:]))
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
