"""GPU check: SFT, DPO and GRPO on a 0.1-0.5B model, through the project's own training code,
printing tokens/s, MFU and peak memory per stage.

The model is built locally (random init, no hub) from a real architecture: SmolLM2-360M's
Llama shape (32 layers, hidden 960, 15 query / 5 key-value heads, SwiGLU 2560, tied embeddings)
with the vocabulary of a BPE tokenizer trained here on the bundled corpus. The data is the bundled
JA/EN SFT set (packed into `--seq` token rows) and the "Let me explain." style pairs built from it.

    python benchmarks/gpu_check.py                     # one CUDA GPU, bf16 (goal: >= 40% MFU for SFT and DPO)
    python benchmarks/gpu_check.py --tiny              # any machine: the micro preset, a few steps (the suite runs this)

MFU = model FLOPs per second / the device's peak dense bf16 FLOPs. Model FLOPs of a trained token:
6 x parameters (forward + backward of every matmul, the LM head included, the embedding lookup
not) + 12 x layers x hidden x context (attention scores and values, causal half counted once);
generated tokens (GRPO rollouts) count 2 x parameters (forward only). Peak memory is
`torch.cuda.max_memory_allocated` per stage. Prints one JSON line per stage, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from llm_recipe.config import ComputeConfig, DPOConfig, GRPOConfig, SamplingConfig, SFTConfig  # noqa: E402
from llm_recipe.demo.sample_corpus import iter_sample_docs  # noqa: E402
from llm_recipe.demo.sft_set import sft_records  # noqa: E402
from llm_recipe.demo.style import single_turn_examples  # noqa: E402
from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format  # noqa: E402
from llm_recipe.tokenizer.train import train_bpe_tokenizer  # noqa: E402
from llm_recipe.train.dpo import DPOObjective  # noqa: E402
from llm_recipe.train.dpo_data import tokenize_dpo_pairs  # noqa: E402
from llm_recipe.train.grpo import run_grpo  # noqa: E402
from llm_recipe.train.loop import Trainer  # noqa: E402
from llm_recipe.train.rl_loop import RLSetup  # noqa: E402
from llm_recipe.train.sft import SFTObjective, load_sft_data  # noqa: E402
from llm_recipe.train.sft_data import (
    pack_examples,  # noqa: E402
    split_sft_data,  # noqa: E402
)
from llm_recipe.train.style_data import style_pairs_from_sft  # noqa: E402

# Peak dense bf16 tensor FLOP/s (no sparsity) by device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12,
             "RTX 4090": 165e12}


def device_peak() -> tuple[str, float | None]:
    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name()
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def build_model(vocab: int, tiny: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                          tie_word_embeddings=True)
    else:  # SmolLM2-360M's shape
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                          num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
                          rope_theta=100000.0, tie_word_embeddings=True, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def matmul_params(model) -> int:
    """Parameters that do a matmul per token: all but the input embedding (the tied LM head does)."""
    emb = model.get_input_embeddings().weight.numel()
    tied = model.config.tie_word_embeddings
    return sum(p.numel() for p in model.parameters()) - (0 if tied else emb)


def train_flops_per_token(model, context: int) -> float:
    c = model.config
    return 6 * matmul_params(model) + 12 * c.num_hidden_layers * c.hidden_size * context


def measure(trainer: Trainer, warmup: int, steps: int) -> float:
    """Seconds per optimizer step over `steps` steps after `warmup` untimed ones."""
    trainer.cfg = trainer.cfg.model_copy(update={"max_steps": warmup})
    trainer.fit()
    sync()
    t = time.perf_counter()
    trainer.cfg = trainer.cfg.model_copy(update={"max_steps": warmup + steps})
    trainer.fit()
    sync()
    return (time.perf_counter() - t) / steps


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_gb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def report(stage: str, tokens_per_s: float, flops_per_s: float, peak: float | None, extra: dict) -> dict:
    name, peak_flops = device_peak()
    row = {"stage": stage, "device": name, "tokens_per_s": round(tokens_per_s, 1),
           "model_tflops_per_s": float(f"{flops_per_s / 1e12:.4g}"),  # significant digits: a tiny CPU model is < 0.001
           "mfu": round(flops_per_s / peak_flops, 4) if peak_flops else None,
           "peak_memory_gb": round(peak, 2) if peak is not None else None, **extra}
    print(json.dumps(row), flush=True)
    return row


def main() -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="micro model, a few steps: runs anywhere (CPU)")
    ap.add_argument("--seq", type=int, default=2048, help="SFT packed row length")
    ap.add_argument("--sft-batch", type=int, default=16)
    ap.add_argument("--dpo-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--stages", default="sft,dpo,grpo")
    args = ap.parse_args()
    if args.tiny:
        args.seq, args.sft_batch, args.dpo_batch, args.steps, args.warmup = 256, 4, 8, 2, 1
    on_gpu = torch.cuda.is_available() and not args.tiny
    compute = ComputeConfig(dtype="bfloat16" if on_gpu else "float32", device="auto" if on_gpu else "cpu")
    stages = args.stages.split(",")

    docs = list(iter_sample_docs(60 if args.tiny else 1000, seed=0))
    tok = train_bpe_tokenizer((d["text"] for d in docs), vocab_size=512 if args.tiny else 16384)
    apply_chat_format(tok, get_chat_format("chatml"))
    fmt = get_chat_format("chatml")
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    rows_out: list[dict] = []
    n_examples = 400 if args.tiny else 20000

    if "sft" in stages:
        model = build_model(len(tok), args.tiny)
        cfg = SFTConfig(bundled_examples=n_examples, max_length=args.seq, batch_size=args.sft_batch, lr=1e-4,
                        warmup_steps=0, eval_every=10**6, log_every=10**6, compute=compute)
        data = load_sft_data(cfg, tok, fmt, 0, sft_records(cfg, 0))
        rows = pack_examples(data.train, args.seq)
        reset_peak()
        trainer = Trainer(model, SFTObjective(tok.pad_token_id), rows, cfg, work / "sft")
        sec = measure(trainer, args.warmup, args.steps)
        n_tok = sum(len(r) for r in rows) / len(rows) * args.sft_batch  # real tokens per step
        flops = train_flops_per_token(trainer.unwrapped_model(), args.seq) * n_tok / sec
        rows_out.append(report("sft", n_tok / sec, flops, peak_memory_gb(),
                               {"params_m": round(matmul_params(model) / 1e6, 1), "seq": args.seq,
                                "batch": args.sft_batch}))
        del trainer, model

    if "dpo" in stages:
        model = build_model(len(tok), args.tiny)
        cfg = DPOConfig(style_pairs=n_examples // 4, batch_size=args.dpo_batch, max_length=512, lr=1e-5,
                        warmup_steps=0, eval_every=10**6, log_every=10**6, compute=compute)
        sft_cfg = SFTConfig(bundled_examples=n_examples)
        pairs = style_pairs_from_sft(split_sft_data(sft_cfg, 0, sft_records(sft_cfg, 0)), cfg, 0)
        examples = tokenize_dpo_pairs(pairs.train, tok, fmt, cfg.max_length)
        for e in examples:  # reference log-probs as if precomputed (their values do not change the cost)
            e.ref_chosen, e.ref_rejected = -50.0, -50.0
        reset_peak()
        trainer = Trainer(model, DPOObjective(tok.pad_token_id, cfg), examples, cfg, work / "dpo")
        sec = measure(trainer, args.warmup, args.steps)
        n_tok = sum(len(e) for e in examples) / len(examples) * args.dpo_batch
        ctx = int(sum(len(e) for e in examples) / len(examples))
        flops = train_flops_per_token(trainer.unwrapped_model(), ctx) * n_tok / sec
        rows_out.append(report("dpo", n_tok / sec, flops, peak_memory_gb(),
                               {"pairs_per_s": round(args.dpo_batch / sec, 1), "batch": args.dpo_batch}))
        del trainer, model

    if "grpo" in stages:
        model = build_model(len(tok), args.tiny).to(torch.bfloat16 if on_gpu else torch.float32)
        model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
        prompts = [p for p, _ in single_turn_examples(800, seed=1)][:200]
        G, batch = (4, 16) if args.tiny else (8, 256)
        iters = 2 if args.tiny else 4
        cfg = GRPOConfig(iterations=iters, rollout_batch_size=batch, minibatch_size=batch // 2, group_size=G,
                         sampling=SamplingConfig(max_new_tokens=16 if args.tiny else 256), lr=1e-6, beta=0.04,
                         eval_prompts=1, compute=compute)

        class Length:  # a cheap reward: the cost is the policy's, not the scorer's
            def score(self, prompts, responses, normalize=True):
                return [len(r) / 100 for r in responses]

        s = RLSetup.build(model, tok, Length(), prompts[1:], prompts[:1], "chatml")
        reset_peak()
        t = time.perf_counter()
        res = run_grpo(s, cfg, work / "grpo", seed=0, save=False)
        sec = time.perf_counter() - t
        n_tok = sum(h["response_len"] for h in res.history) * batch
        fpt_train = train_flops_per_token(model, 256)
        # each response token: generated once (2N), then scored by the reference (2N) and trained (6N)
        flops = n_tok * (fpt_train + 4 * matmul_params(model)) / sec
        rows_out.append(report("grpo", n_tok / sec, flops, peak_memory_gb(),
                               {"iterations": iters, "rollout": batch, "group": G,
                                "mean_iteration_s": round(sec / iters, 2)}))

    name, peak = device_peak()
    print(f"\n{name} (peak bf16 {peak / 1e12:.0f} TFLOP/s)" if peak else f"\n{name} (no known peak: MFU n/a)")
    for r in rows_out:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_memory_gb']:.1f} GiB" if r["peak_memory_gb"] is not None else "n/a"
        print(f"  {r['stage']:>5}: {r['tokens_per_s']:>10.0f} tokens/s  MFU {mfu:>6}  peak memory {mem}")
    return rows_out


if __name__ == "__main__":
    main()
