"""This machine's matmul roof at the GEMM shapes of the model being trained, and the model FLOPs
every training benchmark divides by it (MFU).

    python benchmarks/roof.py --model /work/models/smollm2 --tokens 1024 --loss-tokens 400 [--threads 2]
    python benchmarks/roof.py --model /work/models/smollm2 --profile-sft [--precision bf16-autocast]

The roof: one training step of `tokens` tokens runs, for every linear layer (q, k, v, o, gate, up,
down; SmolLM2-135M: hidden 576, intermediate 1536, 9 heads / 3 KV heads of 64), three GEMMs:
forward Y = X W^T [T x in] x [in x out], backward dX = dY W and dW = dY^T X; and the LM head the
same three at the `loss-tokens` positions (vocab 49152). Each distinct GEMM is timed in fp32 and in
bf16 (bf16 inputs, the kernel autocast and bf16 weights both run) with torch's threads as set for
training, best of several runs; the roof of a precision is the step's GEMM mix at those speeds:
sum of FLOPs / sum of best times (each GEMM weighted by how often a step runs it). The per-shape
peaks are printed too. Nothing but these GEMMs is in the roof: attention's batched matmuls,
softmax, norms, the loss and the optimizer are what MFU below 100% is made of.

Model FLOPs (`train_flops`): what the task requires, counted from the shapes, for every trainer alike:
a segment of n new tokens after c tokens already in context costs, forward,
    2 n P                      every linear layer (P = its weights, the LM head excluded)
  + 4 L h d sum_{i=1..n} (c+i) attention scores and values (causal: token i sees c+i positions;
                               L layers, h query heads of d)
  + 2 D V k                    the LM head at the k positions where a loss or a log-prob is taken
and training is 3x forward (backward = 2x forward). Work a trainer does beyond this (padding, the LM
head at positions without a loss, a prompt encoded twice) earns it no FLOPs: MFU is what the task
needed per second, over what the matmul units can do at these shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Shapes:
    """What the FLOP count and the GEMMs need from a decoder's config."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config) -> Shapes:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                   config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
                   head_dim, config.vocab_size)

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one block."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        d, ff = self.hidden, self.intermediate
        return {"q": (d, q), "k": (d, kv), "v": (d, kv), "o": (q, d), "gate": (d, ff), "up": (d, ff), "down": (ff, d)}

    @property
    def block_params(self) -> int:
        return sum(i * o for i, o in self.linears().values())


def forward_flops(s: Shapes, n: int, context: int = 0, head: int = 0) -> float:
    """Forward FLOPs of `n` new tokens after `context` tokens, the LM head at `head` positions."""
    linear = 2 * n * s.layers * s.block_params
    attention = 4 * s.layers * s.heads * s.head_dim * (n * context + n * (n + 1) / 2)
    return linear + attention + 2 * s.hidden * s.vocab * head


def train_flops(s: Shapes, n: int, context: int = 0, head: int = 0) -> float:
    return 3 * forward_flops(s, n, context, head)


# ---- the roof ---------------------------------------------------------------------------------
def step_gemms(s: Shapes, tokens: int, loss_tokens: int) -> list[tuple[str, int, int, int, int]]:
    """(name, M, K, N, times per step) of every GEMM of one training step: out[M,N] = A[M,K] B[K,N]."""
    out = []
    head = [("lm_head", (s.hidden, s.vocab))] if s.vocab and loss_tokens else []  # none for a reward model
    for name, (i, o) in [*s.linears().items(), *head]:
        t, n = (loss_tokens, 1) if name == "lm_head" else (tokens, s.layers)
        out += [(f"{name} fwd", t, i, o, n), (f"{name} dX", t, o, i, n), (f"{name} dW", o, t, i, n)]
    merged: dict[tuple[int, int, int], list] = {}
    for name, m, k, n_, times in out:  # q/o, k/v, gate/up share shapes: time each shape once
        key = (m, k, n_)
        if key in merged:
            merged[key][0] += f", {name}"
            merged[key][4] += times
        else:
            merged[key] = [name, m, k, n_, times]
    return [tuple(v) for v in merged.values()]


def time_gemm(m: int, k: int, n: int, dtype: torch.dtype, min_time: float = 0.3, runs: int = 5) -> float:
    """Best seconds of one [m,k] x [k,n] product (F.linear's layout for the forward: x W^T)."""
    a = torch.randn(m, k, dtype=dtype)
    w = torch.randn(n, k, dtype=dtype)  # as a weight is stored: [out, in]
    F.linear(a, w)  # warm-up: oneDNN picks and caches its kernel
    best = float("inf")
    reps = 1
    t0 = time.perf_counter()
    F.linear(a, w)
    one = time.perf_counter() - t0
    reps = max(1, int(min_time / runs / max(one, 1e-6)))
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(reps):
            F.linear(a, w)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def measure_roof(s: Shapes, tokens: int, loss_tokens: int, threads: int | None = None) -> dict:
    """fp32 and bf16 roof (FLOP/s) of one training step's GEMM mix, with every shape's peak."""
    if threads:
        torch.set_num_threads(threads)
    gemms = step_gemms(s, tokens, loss_tokens)
    res: dict = {"threads": torch.get_num_threads(), "tokens": tokens, "loss_tokens": loss_tokens,
                 "shapes": asdict(s), "gemms": []}
    for prec, dtype in DTYPES.items():
        total_flops = total_time = 0.0
        for name, m, k, n, times in gemms:
            t = time_gemm(m, k, n, dtype)
            flops = 2.0 * m * k * n
            total_flops += flops * times
            total_time += t * times
            res["gemms"].append({"gemm": name, "m": m, "k": k, "n": n, "per_step": times, "precision": prec,
                                 "seconds": t, "flops_per_s": flops / t})
        res[prec] = total_flops / total_time
        res[f"{prec}_step_gemm_seconds"] = total_time
    return res


def shapes_of_model(model: str) -> Shapes:
    """From an HF model folder (config.json) or a preset name with a 4096-token vocabulary."""
    if Path(model, "config.json").is_file():
        from transformers import AutoConfig

        return Shapes.of(AutoConfig.from_pretrained(model))
    from llm_recipe.models.presets import PRESETS

    hidden, layers, heads, kv, inter = PRESETS[model]
    return Shapes(hidden, inter, layers, heads, kv, hidden // heads, 4096)


def print_roof(r: dict) -> None:
    print(f"matmul roof at the step's GEMM mix ({r['tokens']} tokens, LM head at {r['loss_tokens']}, "
          f"{r['threads']} threads): fp32 {r['fp32'] / 1e9:.1f} GFLOP/s, bf16 {r['bf16'] / 1e9:.1f} GFLOP/s")
    for g in r["gemms"]:
        print(f"  {g['precision']:5} {g['gemm']:<28} [{g['m']:>5} x {g['k']:>5}] x [{g['k']:>5} x {g['n']:>5}] "
              f"x{g['per_step']:<3} {g['flops_per_s'] / 1e9:7.1f} GFLOP/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/work/models/smollm2", help="HF model folder or a preset name (tiny)")
    ap.add_argument("--shapes", help="the shapes as JSON (`Shapes` fields) instead of --model")
    ap.add_argument("--tokens", type=int, default=1024, help="tokens per training step (batch x length)")
    ap.add_argument("--loss-tokens", type=int, default=None, help="positions with an LM-head output (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the measurement here")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    shapes = Shapes(**json.loads(a.shapes)) if a.shapes else shapes_of_model(a.model)
    r = measure_roof(shapes, a.tokens, a.loss_tokens or a.tokens, a.threads)
    r["model"] = a.model
    print_roof(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
