"""DPO training throughput (pairs/s): llm-recipe vs TRL 1.16's DPOTrainer, side by side.

Same model (the `tiny` preset, same initial weights), same pairs (the style set, rendered with the
same ChatML template, so both train on identical tokens), same batch size, steps, lr, schedule,
β and max length. Apples to apples for the final loss: both see the pairs in the same order (the
batches llm-recipe's length-grouped sampler draws are handed to TRL in that order, with TRL's
sequential sampler) and the same cosine schedule without warmup (HF's linear warmup starts at
lr 0, ours at lr/warmup_steps, so with warmup the two runs would take different steps).
Three runs:
  trl            TRL defaults: a reference model forward every step
  trl+precompute TRL with precompute_ref_log_probs=True (its fastest setting here)
  llm-recipe     defaults: reference log-probs precomputed once, one row per pair (prompt encoded
                 once), LM head only on response positions, length-grouped batches
Each time covers everything between "pairs tokenized" and "training done", reference
precomputation included. Final quality: the DPO loss of each trained model on held-out pairs
(same reference log-probs, same code), with its standard error, and the difference to
llm-recipe's with the paired standard error (same pairs: per-pair loss differences).

    python benchmarks/dpo_throughput.py [--pairs 512] [--steps 24] [--batch 16] [--threads 2]
    quick check: --pairs 96 --steps 3 --batch 8
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch


def build(tmp: Path, n_pairs: int, seed: int, model: str | None = None):
    """The init model dir (the `tiny` preset, or `model`: an HF dir, then with ChatML's template),
    its tokenizer, and the style pairs (train, held out)."""
    from llm_recipe.config import DPOConfig, SFTConfig
    from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
    from llm_recipe.demo.sft_set import sft_records
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format
    from llm_recipe.tokenizer.train import train_and_save
    from llm_recipe.train.sft_data import split_sft_data
    from llm_recipe.train.style_data import style_pairs_from_sft

    if model:
        from llm_recipe.models.loading import load_causal_lm, load_tokenizer

        tok = load_tokenizer(model)
        added = apply_chat_format(tok, get_chat_format("chatml"))
        model = load_causal_lm(model)
        if added:
            model.resize_token_embeddings(len(tok))
    else:
        corpus = generate_sample_corpus(tmp / "corpus", docs_per_source=200, seed=seed)
        texts = [json.loads(ln)["text"] for f in sample_corpus_files(corpus)
                 for ln in Path(f).read_text(encoding="utf-8").splitlines()]
        tok = train_and_save(texts, tmp / "tok", vocab_size=2048)
        apply_chat_format(tok, get_chat_format("chatml"))
        model = build_preset_model("tiny", tok, seed=seed)
    model_dir = tmp / "init"
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    sft_cfg = SFTConfig(bundled_examples=4 * n_pairs)
    data = style_pairs_from_sft(split_sft_data(sft_cfg, seed, sft_records(sft_cfg, seed)),
                                DPOConfig(style_pairs=n_pairs, eval_fraction=0.15), seed)
    return model_dir, tok, data.train, data.eval


def run_trl(model_dir: Path, tok, pairs, args, precompute: bool, out: Path):
    """`pairs` already in llm-recipe's batch order; TRL reads them sequentially."""
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    from llm_recipe.models.loading import load_causal_lm

    ds = Dataset.from_list([{"prompt": p.messages(), "chosen": [{"role": "assistant", "content": p.chosen}],
                             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs])
    targs = TRLConfig(output_dir=str(out), report_to="none", beta=0.1, per_device_train_batch_size=args.batch,
                      max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0,
                      train_sampling_strategy="sequential",
                      weight_decay=0.0, max_grad_norm=1.0, max_length=args.max_length, use_cpu=True,
                      bf16=getattr(args, "bf16", False),
                      save_strategy="no", logging_steps=args.steps, precompute_ref_log_probs=precompute,
                      seed=args.seed, dataloader_num_workers=0, disable_tqdm=True)
    policy = load_causal_lm(model_dir)
    ref = None if precompute else load_causal_lm(model_dir)
    # Timed: TRL's constructor (tokenization, reference precompute) and its training loop.
    t0 = time.perf_counter()
    trainer = DPOTrainer(model=policy, ref_model=ref, args=targs, train_dataset=ds, processing_class=tok)
    t_init = time.perf_counter() - t0
    t1 = time.perf_counter()
    trainer.train()
    t_train = time.perf_counter() - t1
    return trainer.model, t_init, t_train


def run_ours(model_dir: Path, tok, pairs, args, out: Path):
    from llm_recipe.config import ComputeConfig, DPOConfig
    from llm_recipe.models.finetuning import disable_dropout
    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo import DPOObjective
    from llm_recipe.train.dpo_data import tokenize_dpo_pairs
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.reference_logps import attach_reference_logps

    cfg = DPOConfig(batch_size=args.batch, max_steps=args.steps, lr=args.lr, warmup_steps=0, min_lr_ratio=0.0,
                    betas=(0.9, 0.999), weight_decay=0.0, max_grad_norm=1.0, max_length=args.max_length,
                    log_every=args.steps, eval_every=10**6,
                    compute=ComputeConfig(mixed_precision="bf16" if getattr(args, "bf16", False) else "no"))
    policy = load_causal_lm(model_dir)
    disable_dropout(policy)
    t0 = time.perf_counter()
    train = tokenize_dpo_pairs(pairs, tok, resolve_chat_format(tok), cfg.max_length)
    objective = DPOObjective(tok.pad_token_id, cfg)
    attach_reference_logps(policy, objective, train, [], out / "reference", batch_size=cfg.batch_size)
    trainer = Trainer(policy, objective, train, cfg, out, seed=args.seed, group_by_length=[len(e) for e in train])
    t_init = time.perf_counter() - t0
    t1 = time.perf_counter()
    trainer.fit()
    t_train = time.perf_counter() - t1
    if len(train) != len(pairs):
        raise RuntimeError("pairs were dropped in tokenization: the batch order would not carry over to TRL")
    order, epoch = [], 0
    while len(order) < args.steps * args.batch:  # the pairs in the order our loop drew them
        order += [int(i) for b in trainer._epoch_batches(epoch) for i in b]
        epoch += 1
    return trainer.unwrapped_model(), t_init, t_train, order[: args.steps * args.batch]


@torch.no_grad()
def heldout_losses(model, ref_dir: Path, tok, pairs, max_length: int) -> torch.Tensor:
    """Per-pair DPO loss (β=0.1) on held-out pairs."""
    from llm_recipe.config import DPOConfig
    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo import preference_loss, sequence_logps
    from llm_recipe.train.dpo_data import collate_shared, tokenize_dpo_pairs
    from llm_recipe.train.reference_logps import compute_reference_logps

    ex = tokenize_dpo_pairs(pairs, tok, resolve_chat_format(tok), max_length)
    collate = lambda b: collate_shared(b, tok.pad_token_id)  # noqa: E731
    ref = torch.from_numpy(compute_reference_logps(load_causal_lm(ref_dir), collate, ex, 32))
    model.eval()
    pol = []
    for i in range(0, len(ex), 32):
        c, r = sequence_logps(model, collate(ex[i : i + 32]))
        pol.append(torch.stack([c, r], 1))
    pol = torch.cat(pol)
    losses, _, _ = preference_loss(pol[:, 0], pol[:, 1], ref[:, 0], ref[:, 1], beta=DPOConfig().beta)
    return losses


def mean_se(x: torch.Tensor) -> tuple[float, float]:
    return x.mean().item(), (x.std() / math.sqrt(len(x))).item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model_dir, tok, train, evals = build(tmp, args.pairs, args.seed)
        print(f"pairs: {len(train)} train, {len(evals)} held out; batch {args.batch}, {args.steps} steps, "
              f"{args.threads} threads, torch {torch.__version__}")
        # Untimed warm-up (one-time torch/allocator initialisation), so the first timed run,
        # which is ours, does not pay it.
        run_ours(model_dir, tok, train, argparse.Namespace(**{**vars(args), "steps": 2}), tmp / "warmup")
        results, losses = {}, {}
        for name in ("llm-recipe", "trl", "trl+precompute"):  # ours first: it fixes the data order
            torch.manual_seed(args.seed)
            if name == "llm-recipe":
                model, t_init, t_train, order = run_ours(model_dir, tok, train, args, tmp / "ours")
            else:
                model, t_init, t_train = run_trl(model_dir, tok, [train[i] for i in order], args,
                                                 name.endswith("precompute"), tmp / name)
            losses[name] = heldout_losses(model, model_dir, tok, evals, args.max_length)
            total = t_init + t_train
            results[name] = args.steps * args.batch / total
            loss, se = mean_se(losses[name])
            print(f"{name:>15}: {results[name]:7.2f} pairs/s  (setup+reference {t_init:6.1f} s, "
                  f"train {t_train:6.1f} s)  held-out DPO loss {loss:.4f} ± {se:.4f}")
        for name in ("trl", "trl+precompute"):
            d, se = mean_se(losses[name] - losses["llm-recipe"])  # paired: same held-out pairs
            print(f"held-out loss {name} - llm-recipe: {d:+.2e} ± {se:.2e} (paired SE)")
        ours = results["llm-recipe"]
        print(f"ratio vs TRL defaults:        {ours / results['trl']:.2f}x  (goal >= 1.5x)")
        print(f"ratio vs TRL precompute_ref:  {ours / results['trl+precompute']:.2f}x  (goal >= 1.1x)")


if __name__ == "__main__":
    main()
