"""Reward-model training throughput: llm-recipe's RM objective on the shared loop vs TRL's
RewardTrainer (trl 1.16), side by side.

Same model (the tiny preset as a sequence classifier, same initial weights), same tokenized
pairs (TRL gets them pre-tokenized, so its tokenization is not timed), same batch size,
optimizer (fused AdamW, lr, betas, weight decay, clipping), warmup and step count; fp32, no
gradient checkpointing on either side. Each variant runs `--repeats` times, interleaved; the
best wall time of each is compared (least disturbed by other load on the machine).

Variants of ours: `default` (shared-prompt rows + length-grouped batches, the recipe's
settings), `shared` (shared-prompt rows, random batches like TRL), `plain` (TRL's layout: a
chosen row and a rejected row per pair, random batches) to show where the speed comes from.
Peers: TRL with its defaults (random batches) and TRL with transformers' length-grouped sampler
(`train_sampling_strategy="group_by_length"`), the closest TRL gets to our batching.
`--context-turns K` prepends K earlier exchanges to every prompt (hh-rlhf-like long shared
context).

    python benchmarks/rm_throughput.py [--steps 30] [--batch-size 16] [--context-turns 0]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from llm_recipe.config import RMConfig
from llm_recipe.demo.style import single_turn_examples, style_preference_pairs
from llm_recipe.models.presets import build_preset_model, count_parameters
from llm_recipe.models.reward_io import reward_format
from llm_recipe.preference.records import PreferencePair
from llm_recipe.tokenizer.train import train_bpe_tokenizer
from llm_recipe.train.loop import Trainer
from llm_recipe.train.reward_model import RewardObjective, build_reward_model, tokenize_pairs

VARIANTS = {"default": (True, True), "shared": (True, False), "plain": (False, False)}


def make_pairs(n: int, context_turns: int, seed: int = 0) -> list[PreferencePair]:
    pairs = style_preference_pairs(n, seed)
    if context_turns:
        r = random.Random(seed)
        history = single_turn_examples(4000, seed=seed + 1)
        for p in pairs:
            msgs = []
            for q, a in r.sample(history, context_turns):
                msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            p.prompt = [*msgs, {"role": "user", "content": p.prompt}]
    return pairs


def rm_cfg(args) -> RMConfig:
    return RMConfig(max_steps=args.steps, batch_size=args.batch_size, lr=5e-4, warmup_steps=3, log_every=10,
                    max_length=4096, eval_every=10**6)


def run_ours(base, tok, pairs, args, variant: str) -> float:
    share, group = VARIANTS[variant]
    cfg = rm_cfg(args).model_copy(update={"share_prompt": share, "group_by_length": group})
    model = build_reward_model(base, tok, seed=0)
    lengths = [len(p.chosen_ids) + len(p.rejected_ids) for p in pairs] if group else None
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, RewardObjective(tok.pad_token_id, share_prompt=share), pairs, cfg, tmp, seed=0,
                          group_by_length=lengths)
        t = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t


def run_trl(base, tok, pairs, args, grouped: bool = False) -> float:
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    cfg = rm_cfg(args)
    model = build_reward_model(base, tok, seed=0)
    data = Dataset.from_list([{"chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids,
                               "length": len(p.chosen_ids) + len(p.rejected_ids)} for p in pairs])
    with tempfile.TemporaryDirectory() as tmp:
        targs = RewardConfig(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps,
            learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=cfg.warmup_steps,
            weight_decay=cfg.weight_decay, adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1],
            max_grad_norm=cfg.max_grad_norm, optim="adamw_torch_fused", logging_steps=cfg.log_every,
            save_strategy="no", report_to=[], dataloader_num_workers=0, disable_tqdm=True, seed=0,
            bf16=False, gradient_checkpointing=False, max_length=None, use_cpu=not torch.cuda.is_available(),
            # The stronger peer: transformers' length-grouped sampler (less padding), like our default.
            train_sampling_strategy="group_by_length" if grouped else "random",
            remove_unused_columns=not grouped,  # keep `length` for the sampler (TRL's collator ignores it)
        )
        trainer = RewardTrainer(model=model, args=targs, train_dataset=data, processing_class=tok)
        trainer.remove_callback(PrinterCallback)  # its per-log print is not part of the work
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--context-turns", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--variants", default="default,shared,plain")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    texts = [f"{q}\n{a}" for q, a in single_turn_examples(6000, seed=99)]
    tok = train_bpe_tokenizer(texts, vocab_size=4096)
    n_pairs = args.steps * args.batch_size
    raw = make_pairs(n_pairs, args.context_turns)
    pairs = tokenize_pairs(raw, tok, reward_format(tok), max_length=4096)
    tokens_plain = sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    with tempfile.TemporaryDirectory() as base:
        model = build_preset_model(args.preset, tok, seed=0)
        model.save_pretrained(base)
        tok.save_pretrained(base)
        print(f"model={args.preset} ({count_parameters(model) / 1e6:.2f}M params as LM) pairs={len(pairs)} "
              f"steps={args.steps} batch={args.batch_size} context_turns={args.context_turns} "
              f"mean tokens/pair={tokens_plain / len(pairs):.0f} threads={torch.get_num_threads()} "
              f"device={'cuda' if torch.cuda.is_available() else 'cpu'}")
        variants = [v for v in args.variants.split(",") if v]
        peers = ["trl", "trl-grouped"]
        times: dict[str, list[float]] = {v: [] for v in [*variants, *peers]}
        runs = [*variants, *peers]
        for r in range(args.repeats):
            for v in runs[r % len(runs):] + runs[: r % len(runs)]:  # rotate: no variant always first
                t = (run_trl(base, tok, pairs, args, grouped=v == "trl-grouped") if v in peers
                     else run_ours(base, tok, pairs, args, v))
                times[v].append(t)
    pps = {k: args.steps * args.batch_size / min(v) for k, v in times.items()}
    names = {"trl": "TRL RewardTrainer", "trl-grouped": "TRL (group_by_length)"}
    for k, v in times.items():
        print(f"{names.get(k, f'llm-recipe ({k})'):<24}: {pps[k]:8.1f} pairs/s  "
              f"(runs: {', '.join(f'{t:.1f}s' for t in v)})")
    ratios = {f"{v}/{peer}": pps[v] / pps[peer] for v in variants for peer in peers}
    for name, r in ratios.items():
        print(f"ratio {name}: {r:.3f}x" + ("   (goal >= 1.3)" if name == "default/trl" else ""))
    if args.json:
        args.json.write_text(json.dumps({"pairs_per_s": pps, "ratios": ratios,
                                         "args": vars(args) | {"json": str(args.json)}}, indent=1))


if __name__ == "__main__":
    main()
