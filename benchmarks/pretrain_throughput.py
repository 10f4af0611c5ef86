"""Pretraining throughput: llm-recipe's shared loop vs `transformers.Trainer`, side by side.

Same model (tiny preset, same initial weights), same packed blocks, same batch size, sequence
length, optimizer settings and step count. Each trainer runs `--repeats` times, interleaved,
and the best wall time of each is compared (least disturbed by other load on the machine).

    python benchmarks/pretrain_throughput.py [--steps 40] [--batch-size 8] [--block-size 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from llm_recipe.config import PretrainConfig
from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
from llm_recipe.models.presets import build_preset_model, count_parameters
from llm_recipe.tokenizer.train import train_bpe_tokenizer
from llm_recipe.train.loop import Trainer as RecipeTrainer
from llm_recipe.train.pretrain import CausalLMObjective, read_documents, tokenize_and_pack


def run_ours(blocks, tokenizer, cfg: PretrainConfig, preset: str) -> float:
    model = build_preset_model(preset, tokenizer, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = RecipeTrainer(model, CausalLMObjective(), blocks, cfg, tmp, seed=0)
        t = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t


def run_hf(blocks, tokenizer, cfg: PretrainConfig, preset: str) -> float:
    model = build_preset_model(preset, tokenizer, seed=0)
    data = [{"input_ids": torch.from_numpy(b).long(), "labels": torch.from_numpy(b).long()} for b in blocks]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
            max_steps=cfg.max_steps, learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=cfg.warmup_steps,
            weight_decay=cfg.weight_decay, adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1],
            max_grad_norm=cfg.max_grad_norm, logging_steps=cfg.log_every, save_strategy="no", report_to=[],
            dataloader_num_workers=0, disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(model=model, args=args, train_dataset=data)
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    corpus = generate_sample_corpus(docs_per_source=400)
    docs, _ = read_documents(sample_corpus_files(corpus))
    texts = [t for _, t in docs]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=4096)
    blocks, _ = tokenize_and_pack(texts, tokenizer, args.block_size)
    cfg = PretrainConfig(max_steps=args.steps, batch_size=args.batch_size, block_size=args.block_size,
                         warmup_steps=4, log_every=10, save_every=None)
    blocks = list(blocks)
    tokens = args.steps * args.batch_size * args.block_size
    n_params = count_parameters(build_preset_model(args.preset, tokenizer))
    print(f"model={args.preset} ({n_params / 1e6:.2f}M params) steps={args.steps} batch={args.batch_size} "
          f"block={args.block_size} threads={torch.get_num_threads()} device={'cuda' if torch.cuda.is_available() else 'cpu'}")

    ours, hf = [], []
    for _ in range(args.repeats):
        ours.append(run_ours(blocks, tokenizer, cfg, args.preset))
        hf.append(run_hf(blocks, tokenizer, cfg, args.preset))
    ours_tps, hf_tps = tokens / min(ours), tokens / min(hf)
    print(f"llm-recipe loop      : {ours_tps:10.0f} tokens/s  (runs: {', '.join(f'{t:.1f}s' for t in ours)})")
    print(f"transformers.Trainer : {hf_tps:10.0f} tokens/s  (runs: {', '.join(f'{t:.1f}s' for t in hf)})")
    print(f"ratio (ours / Trainer): {ours_tps / hf_tps:.3f}x   (goal >= 1.0)")
    if args.json:
        args.json.write_text(json.dumps({"ours_tokens_per_s": ours_tps, "hf_tokens_per_s": hf_tps,
                                         "ratio": ours_tps / hf_tps}, indent=1))


if __name__ == "__main__":
    main()
