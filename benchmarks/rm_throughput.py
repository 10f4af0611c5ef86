"""Reward-model training throughput (pairs/s): ours vs TRL 1.16's RewardTrainer at every precision,
against TRL's best setting.

Same model (the tiny preset as a sequence classifier, same initial weights), the same tokenized
pairs (TRL gets them pre-tokenized: neither side's tokenization is timed), batch size, optimizer
(fused AdamW, lr, betas, weight decay, clipping), warmup and cosine schedule. Throughput = pairs
trained per second between the end of step `--warmup` and the end of step `--warmup + --steps`.
`--context-turns K` prepends K earlier exchanges to every prompt (a long shared context, as in hh-rlhf).

Grid (`benchmarks/harness.py`: own process per run, interleaved repeats, pruning rule):
  ours  shared-prompt rows (the prompt encoded once per pair), length-grouped batches (the
        defaults); fp32 | bf16 autocast | bf16 weights
  TRL   the three precisions x gradient checkpointing on/off x random | group_by_length batches
        (transformers' length-grouped sampler, the closest TRL gets to ours); its defaults: bf16
        autocast, checkpointing on, random batches. use_liger_kernel: Triton, GPU only.

    python benchmarks/rm_throughput.py [--steps 30] [--batch 16] [--context-turns 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Contender  # noqa: E402

DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}


def contenders() -> list[Contender]:
    return harness.grid("TRL", {"gradient_checkpointing": (True, False), "grouped": (False, True)},
                        {"precision": "bf16-autocast", "gradient_checkpointing": True, "grouped": False},
                        lambda prec, kw: harness.gc(kw["gradient_checkpointing"])
                        + (" group_by_length" if kw["grouped"] else " random"))


def make_pairs(n: int, context_turns: int, seed: int = 0):
    from llm_recipe.demo.style import single_turn_examples, style_preference_pairs

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


def build_fixture(args, work: Path) -> dict:
    """Tokenizer, the initial model, the tokenized pairs (JSON) and the FLOPs per pair."""
    from roof import Shapes, train_flops

    from llm_recipe.demo.style import single_turn_examples
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.models.reward_io import reward_format
    from llm_recipe.tokenizer.train import train_bpe_tokenizer
    from llm_recipe.train.reward_model import shared_prefix_len, tokenize_pairs

    tok = train_bpe_tokenizer([f"{q}\n{a}" for q, a in single_turn_examples(6000, seed=99)], vocab_size=4096)
    n = (args.warmup + args.steps) * args.batch
    pairs = tokenize_pairs(make_pairs(n, args.context_turns), tok, reward_format(tok), max_length=4096)
    base = build_preset_model(args.preset, tok, seed=0)
    base.save_pretrained(work / "base")
    tok.save_pretrained(work / "base")
    (work / "pairs.json").write_text(json.dumps([[p.chosen_ids, p.rejected_ids, p.margin] for p in pairs]))
    shapes = Shapes.of(base.config)
    flops = []
    for p in pairs:  # the prompt (shared prefix) once, each answer after it; no LM head
        k = shared_prefix_len(p.chosen_ids, p.rejected_ids)
        flops.append(train_flops(shapes, k) + train_flops(shapes, len(p.chosen_ids) - k, k)
                     + train_flops(shapes, len(p.rejected_ids) - k, k))
    return {"pairs": len(pairs), "shapes": {**vars(shapes), "vocab": 0}, "flops_per_pair": sum(flops) / len(flops),
            "mean_tokens_per_pair": sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs) / len(pairs)}


def load(work: Path, precision: str):
    from transformers import AutoTokenizer

    from llm_recipe.train.reward_model import TokenizedPair, build_reward_model

    tok = AutoTokenizer.from_pretrained(work / "base")
    model = build_reward_model(work / "base", tok, DTYPE[precision], seed=0)
    pairs = [TokenizedPair(c, r, m) for c, r, m in json.loads((work / "pairs.json").read_text())]
    return tok, model, pairs


def work(c: Contender, args, clock: harness.Clock) -> dict:
    tok, model, pairs = load(Path(args.work), c.precision)
    (run_ours if c.side == "ours" else run_trl)(tok, model, pairs, args, c, clock)
    return {}


def _cfg(args, c: Contender):
    from llm_recipe.config import ComputeConfig, RMConfig

    return RMConfig(max_steps=args.warmup + args.steps, batch_size=args.batch, lr=5e-4, warmup_steps=3, log_every=10**6,
                    max_length=4096, eval_every=10**6,
                    compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                          dtype=DTYPE[c.precision]))


def run_ours(tok, model, pairs, args, c: Contender, clock) -> None:
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.reward_model import RewardObjective

    def tick(tr):
        if tr.state.step in (args.warmup, args.warmup + args.steps):
            clock.mark("start" if tr.state.step == args.warmup else "end", tr.state.step * args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        Trainer(model, RewardObjective(tok.pad_token_id), pairs, _cfg(args, c), tmp, seed=0, callbacks=[tick],
                group_by_length=[len(p.chosen_ids) + len(p.rejected_ids) for p in pairs]).fit()


def run_trl(tok, model, pairs, args, c: Contender, clock) -> None:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    class Tick(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step in (args.warmup, args.warmup + args.steps):
                clock.mark("start" if state.global_step == args.warmup else "end", state.global_step * args.batch)

    cfg = _cfg(args, c)
    grouped = c.settings["grouped"]
    data = Dataset.from_list([{"chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids,
                               "length": len(p.chosen_ids) + len(p.rejected_ids)} for p in pairs])
    with tempfile.TemporaryDirectory() as tmp:
        targs = RewardConfig(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps, learning_rate=cfg.lr,
            lr_scheduler_type="cosine", warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
            adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1], max_grad_norm=cfg.max_grad_norm,
            optim="adamw_torch_fused", logging_steps=10**6, save_strategy="no", report_to=[],
            dataloader_num_workers=0, disable_tqdm=True, seed=0, bf16=c.precision == "bf16-autocast",
            gradient_checkpointing=c.settings["gradient_checkpointing"], max_length=None, use_cpu=True,
            train_sampling_strategy="group_by_length" if grouped else "random",
            remove_unused_columns=not grouped)  # keep `length` for the sampler (TRL's collator ignores it)
        trainer = RewardTrainer(model=model, args=targs, train_dataset=data, processing_class=tok, callbacks=[Tick()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--context-turns", type=int, default=0)
    harness.add_args(ap, "rm_throughput")
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)

    def describe(setup: dict) -> dict:
        print(f"{setup['pairs']} pairs, {setup['mean_tokens_per_pair']:.0f} tokens per pair (both answers); "
              f"model FLOPs {setup['flops_per_pair'] / 1e6:.1f} MFLOP per pair")
        return {"flops_per_unit": setup["flops_per_pair"], "roof_shapes": setup["shapes"],
                "roof_tokens": (int(args.batch * setup["mean_tokens_per_pair"]), 1)}

    harness.main_with_fixture(
        args, argv, build_fixture, describe, name=args.name, title=f"Reward model ({args.preset}, batch "
        f"{args.batch}, context turns {args.context_turns})", unit="pairs/s", script=__file__,
        contenders=contenders(), work=work,
        flops_formula="per pair: 3x forward of the prompt once and each answer after it, no LM head (benchmarks/roof.py)")


if __name__ == "__main__":
    main()
