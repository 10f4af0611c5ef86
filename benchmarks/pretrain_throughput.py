"""Pretraining throughput (tokens/s): our shared loop vs `transformers.Trainer` at every precision,
against the Trainer's best setting.

Same model (tiny preset, same initial weights), the same packed blocks, batch size, sequence
length, optimizer (fused AdamW, lr, betas, weight decay, clipping), warmup and cosine schedule.
Throughput = tokens trained per second between the end of step `--warmup` and the end of step
`--warmup + --steps`.

Grid (`benchmarks/harness.py`: own process per run, interleaved repeats, pruning rule):
  ours          fp32 | bf16 autocast | bf16 weights
  transformers  the three precisions x gradient checkpointing on/off; its defaults: fp32, no
                checkpointing (fused AdamW is already its default optimizer).

    python benchmarks/pretrain_throughput.py [--steps 40] [--batch 8] [--block-size 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Contender  # noqa: E402

DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}


def contenders() -> list[Contender]:
    return harness.grid("HF Trainer", {"gradient_checkpointing": (False, True)},
                        {"precision": "fp32", "gradient_checkpointing": False},
                        lambda prec, kw: harness.gc(kw["gradient_checkpointing"]))


def build_fixture(args, work: Path) -> dict:
    import numpy as np
    from roof import Shapes, train_flops

    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.train import train_bpe_tokenizer
    from llm_recipe.train.pretrain import read_documents, tokenize_and_pack

    docs, _ = read_documents(sample_corpus_files(generate_sample_corpus(work / "corpus", docs_per_source=400)))
    texts = [t for _, t in docs]
    tok = train_bpe_tokenizer(texts, vocab_size=4096)
    blocks, _ = tokenize_and_pack(texts, tok, args.block_size)
    np.save(work / "blocks.npy", np.stack(list(blocks)))
    model = build_preset_model(args.preset, tok, seed=0)
    model.save_pretrained(work / "init")
    shapes = Shapes.of(model.config)
    return {"blocks": len(blocks), "shapes": vars(shapes),
            "flops_per_token": train_flops(shapes, args.block_size, head=args.block_size) / args.block_size}


def _cfg(args, c: Contender):
    from llm_recipe.config import ComputeConfig, PretrainConfig

    return PretrainConfig(max_steps=args.warmup + args.steps, batch_size=args.batch, block_size=args.block_size,
                          warmup_steps=4, log_every=10**6, save_every=None, eval_every=10**6,
                          compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                                dtype=DTYPE[c.precision]))


def work(c: Contender, args, clock: harness.Clock) -> dict:
    import numpy as np
    import torch

    from llm_recipe.models.loading import load_causal_lm

    wdir = Path(args.work)
    blocks = list(np.load(wdir / "blocks.npy"))
    model = load_causal_lm(wdir / "init", DTYPE[c.precision])
    cfg = _cfg(args, c)
    tokens_per_step = args.batch * args.block_size

    def at(step: int) -> None:
        if step in (args.warmup, args.warmup + args.steps):
            clock.mark("start" if step == args.warmup else "end", step * tokens_per_step)

    with tempfile.TemporaryDirectory() as tmp:
        if c.side == "ours":
            from llm_recipe.train.loop import Trainer
            from llm_recipe.train.pretrain import CausalLMObjective

            Trainer(model, CausalLMObjective(), blocks, cfg, tmp, seed=0, callbacks=[lambda tr: at(tr.state.step)]).fit()
            return {}
        from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

        class Tick(TrainerCallback):
            def on_step_end(self, a, state, control, **kw):
                at(state.global_step)

        data = [{"input_ids": torch.from_numpy(b).long(), "labels": torch.from_numpy(b).long()} for b in blocks]
        targs = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, max_steps=cfg.max_steps, learning_rate=cfg.lr,
            lr_scheduler_type="cosine", warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
            adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1], max_grad_norm=cfg.max_grad_norm, logging_steps=10**6,
            save_strategy="no", report_to=[], dataloader_num_workers=0, disable_tqdm=True, seed=0, use_cpu=True,
            bf16=c.precision == "bf16-autocast", **c.settings)
        trainer = Trainer(model=model, args=targs, train_dataset=data, callbacks=[Tick()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return {}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--preset", default="tiny")
    harness.add_args(ap, "pretrain_throughput")
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    tokens = args.batch * args.block_size
    harness.main_with_fixture(
        args, argv, build_fixture, lambda setup: {"flops_per_unit": setup["flops_per_token"],
                                                  "roof_shapes": setup["shapes"], "roof_tokens": (tokens, tokens)},
        name=args.name, title=f"Pretraining ({args.preset}, batch {args.batch} x {args.block_size})", unit="tokens/s",
        script=__file__, contenders=contenders(), work=work,
        flops_formula="3 x forward per token: 2*P_linear + attention 4*L*h*d*(causal positions) + LM head 2*D*V at "
                      "every token (benchmarks/roof.py)")


if __name__ == "__main__":
    main()
