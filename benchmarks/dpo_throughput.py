"""DPO training throughput (pairs/s): ours vs TRL 1.16's DPOTrainer at every precision, against
TRL's best setting, with each run's held-out DPO loss beside its speed.

Same initial model, the same pairs (the "Let me explain." style set, ChatML), batch size, steps
(one epoch: --steps x --batch pairs), lr, cosine schedule without warmup, beta, max length. TRL
reads the pairs in the order our length-grouped sampler draws them (its sequential sampler), so
both take the same steps. The timed window is everything from "pairs in hand" to "training done":
tokenization, the reference log-probs (precomputed or per step) and the updates. After it, untimed,
each run scores the held-out pairs against the reference log-probs the parent computed once (fp32):
equal held-out losses say both trained the same.

Grid (`benchmarks/harness.py`: own process per run, interleaved repeats, pruning rule):
  ours  reference precomputed once (the default), one row per pair, LM head at response tokens,
        length-grouped batches; fp32 | bf16 autocast | bf16 weights
  TRL   the three precisions x gradient checkpointing on/off x precompute_ref_log_probs on/off;
        its defaults: bf16 autocast, checkpointing on, a reference forward every step.
        padding_free: TRL 1.16 disables it for DPO ("temporarily unavailable"); use_liger_kernel:
        its Triton kernels need a GPU (not on this CPU).

    python benchmarks/dpo_throughput.py [--model tiny|HF-DIR] [--steps 24] [--batch 16]
    SmolLM2-135M-Instruct: benchmarks/real_model.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Contender  # noqa: E402

DTYPE = {"fp32": "float32", "bf16-autocast": "float32", "bf16-weights": "bfloat16"}
BETA = 0.1


def contenders() -> list[Contender]:
    return harness.grid("TRL", {"gradient_checkpointing": (True, False), "precompute_ref_log_probs": (False, True)},
                        {"precision": "bf16-autocast", "gradient_checkpointing": True, "precompute_ref_log_probs": False},
                        lambda prec, kw: harness.gc(kw["gradient_checkpointing"])
                        + (" precompute" if kw["precompute_ref_log_probs"] else ""))


# ---- the fixture (parent, once): init model + tokenizer, pairs in our batch order, reference ----
def build_fixture(args, work: Path) -> dict:
    from llm_recipe.config import DPOConfig, SFTConfig
    from llm_recipe.demo.sft_set import sft_records
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer
    from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format
    from llm_recipe.train.sft_data import split_sft_data
    from llm_recipe.train.style_data import style_pairs_from_sft

    if args.model == "tiny":
        from llm_recipe.demo.sample_corpus import generate_sample_corpus, sample_corpus_files
        from llm_recipe.models.presets import build_preset_model
        from llm_recipe.tokenizer.train import train_and_save

        corpus = generate_sample_corpus(work / "corpus", docs_per_source=200, seed=args.seed)
        texts = [json.loads(ln)["text"] for f in sample_corpus_files(corpus)
                 for ln in Path(f).read_text(encoding="utf-8").splitlines()]
        tok = train_and_save(texts, work / "tok", vocab_size=2048)
        apply_chat_format(tok, get_chat_format("chatml"))
        model = build_preset_model("tiny", tok, seed=args.seed)
    else:
        tok = load_tokenizer(args.model)
        added = apply_chat_format(tok, get_chat_format("chatml"))
        model = load_causal_lm(args.model)
        if added:
            model.resize_token_embeddings(len(tok))
    model.save_pretrained(work / "init", safe_serialization=True)
    tok.save_pretrained(work / "init")
    n = args.steps * args.batch
    sft_cfg = SFTConfig(bundled_examples=8 * n)
    data = style_pairs_from_sft(split_sft_data(sft_cfg, args.seed, sft_records(sft_cfg, args.seed)),
                                DPOConfig(style_pairs=int(n / 0.85) + 2, eval_fraction=0.15), args.seed)
    train = data.train[:n]
    if len(train) < n:
        raise SystemExit(f"only {len(train)} training pairs for {n}")
    order, lengths = our_order(tok, train, args)
    rows = [{**p.to_json(), "len": lengths[i]} for i, p in enumerate(train)]
    (work / "train.jsonl").write_text("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in order))
    (work / "eval.jsonl").write_text("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in data.eval))
    ref = reference_eval(work, tok, data.eval, args.max_length)
    (work / "eval_ref.json").write_text(json.dumps(ref))
    from roof import Shapes, train_flops

    shapes = Shapes.of(model.config)
    flops = [pair_flops(shapes, train_flops, tok, p, args.max_length) for p in train]
    return {"pairs": n, "eval_pairs": len(data.eval), "shapes": vars(shapes), "flops_per_pair": sum(flops) / n,
            "mean_tokens_per_pair": sum(lengths) / n}


def our_order(tok, train, args) -> tuple[list[int], list[int]]:
    """The pairs in the order our loop draws them in epoch 0 (seed, lengths)."""
    import numpy as np

    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo_data import tokenize_dpo_pairs
    from llm_recipe.train.loop import length_grouped_batches

    ex = tokenize_dpo_pairs(train, tok, resolve_chat_format(tok), args.max_length)
    if len(ex) != len(train):
        raise SystemExit("pairs were dropped in tokenization: the batch order would not carry over to TRL")
    lengths = np.asarray([len(e) for e in ex])
    order = np.random.default_rng([args.seed, 0]).permutation(len(ex))
    batches = length_grouped_batches(order, lengths, args.batch, seed=[args.seed, 0, 1])
    return [int(i) for b in batches for i in b], lengths.tolist()


def pair_flops(shapes, train_flops, tok, pair, max_length) -> float:
    """Policy training (3x forward) + the reference (1x forward): the prompt once, each response after
    it with the LM head at its tokens (`roof.py`)."""
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo_data import tokenize_dpo_pairs

    (e,) = tokenize_dpo_pairs([pair], tok, resolve_chat_format(tok), max_length)
    p, c, r = len(e.prompt_ids), len(e.chosen_ids), len(e.rejected_ids)
    return 4 / 3 * (train_flops(shapes, p) + train_flops(shapes, c, p, c) + train_flops(shapes, r, p, r))


def reference_eval(work: Path, tok, pairs, max_length: int) -> list[list[float]]:
    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo_data import collate_shared, tokenize_dpo_pairs
    from llm_recipe.train.reference_logps import compute_reference_logps

    ex = tokenize_dpo_pairs(pairs, tok, resolve_chat_format(tok), max_length)
    return compute_reference_logps(load_causal_lm(work / "init"), lambda b: collate_shared(b, tok.pad_token_id),
                                   ex, 16).tolist()


def heldout_loss(model, tok, work: Path, max_length: int) -> float:
    """Mean DPO loss on the held-out pairs (fp32 forward of the trained policy; the parent's reference)."""
    import torch

    from llm_recipe.preference.records import PreferencePair
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo import preference_loss, sequence_logps
    from llm_recipe.train.dpo_data import collate_shared, tokenize_dpo_pairs

    pairs = [PreferencePair(**{k: v for k, v in json.loads(ln).items() if k in ("prompt", "chosen", "rejected")})
             for ln in (work / "eval.jsonl").read_text().splitlines()]
    ref = torch.tensor(json.loads((work / "eval_ref.json").read_text()))
    ex = tokenize_dpo_pairs(pairs, tok, resolve_chat_format(tok), max_length)
    model = model.float().eval()
    with torch.no_grad():
        pc, pr = sequence_logps(model, collate_shared(ex, tok.pad_token_id))
    return preference_loss(pc, pr, ref[:, 0], ref[:, 1], beta=BETA)[0].mean().item()


# ---- the contenders (each in its own process) -------------------------------------------------------
def work(c: Contender, args, clock: harness.Clock) -> dict:
    from llm_recipe.models.loading import load_tokenizer
    from llm_recipe.preference.records import PreferencePair

    wdir = Path(args.work)
    tok = load_tokenizer(wdir / "init")
    pairs = [PreferencePair(**{k: v for k, v in json.loads(ln).items() if k in ("prompt", "chosen", "rejected")})
             for ln in (wdir / "train.jsonl").read_text().splitlines()]
    run = run_ours if c.side == "ours" else run_trl
    with tempfile.TemporaryDirectory() as d:
        model = run(wdir / "init", tok, pairs, args, c, Path(d), clock)
        return {"heldout_loss": heldout_loss(model, tok, wdir, args.max_length)}


def run_ours(init: Path, tok, pairs, args, c: Contender, out: Path, clock):
    from llm_recipe.config import ComputeConfig, DPOConfig
    from llm_recipe.models.finetuning import disable_dropout
    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.tokenizer.chat_formats import resolve_chat_format
    from llm_recipe.train.dpo import DPOObjective
    from llm_recipe.train.dpo_data import tokenize_dpo_pairs
    from llm_recipe.train.loop import Trainer, make_accelerator
    from llm_recipe.train.reference_logps import attach_reference_logps

    cfg = DPOConfig(batch_size=args.batch, max_steps=args.steps, lr=args.lr, warmup_steps=0, min_lr_ratio=0.0,
                    betas=(0.9, 0.999), weight_decay=0.0, max_grad_norm=1.0, max_length=args.max_length, beta=BETA,
                    log_every=args.steps, eval_every=10**6,
                    compute=ComputeConfig(mixed_precision="bf16" if c.precision == "bf16-autocast" else "no",
                                          dtype=DTYPE[c.precision]))
    policy = load_causal_lm(init, DTYPE[c.precision])
    disable_dropout(policy)
    accelerator = make_accelerator(cfg.compute)
    clock.mark("start", 0)
    train = tokenize_dpo_pairs(pairs, tok, resolve_chat_format(tok), cfg.max_length)
    objective = DPOObjective(tok.pad_token_id, cfg)
    attach_reference_logps(policy, objective, train, [], out / "reference", batch_size=cfg.batch_size,
                           accelerator=accelerator)
    trainer = Trainer(policy, objective, train, cfg, out, seed=args.seed, group_by_length=[len(e) for e in train],
                      accelerator=accelerator)
    trainer.fit()
    clock.mark("end", args.steps * args.batch)
    return trainer.unwrapped_model()


def run_trl(init: Path, tok, pairs, args, c: Contender, out: Path, clock):
    import datasets
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer

    from llm_recipe.models.loading import load_causal_lm

    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_list([{"prompt": p.messages(), "chosen": [{"role": "assistant", "content": p.chosen}],
                                      "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs])
    targs = TRLConfig(output_dir=str(out), report_to="none", beta=BETA, per_device_train_batch_size=args.batch,
                      max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0,
                      train_sampling_strategy="sequential", weight_decay=0.0, max_grad_norm=1.0,
                      max_length=args.max_length, use_cpu=True, bf16=c.precision == "bf16-autocast",
                      save_strategy="no", logging_steps=10**6, seed=args.seed, dataloader_num_workers=0,
                      disable_tqdm=True, **c.settings)
    policy = load_causal_lm(init, DTYPE[c.precision])
    ref = None if c.settings["precompute_ref_log_probs"] else load_causal_lm(init, DTYPE[c.precision])
    clock.mark("start", 0)
    trainer = DPOTrainer(model=policy, ref_model=ref, args=targs, train_dataset=ds, processing_class=tok)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    clock.mark("end", args.steps * args.batch)
    return trainer.model


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny (a fresh preset model) or an HF model folder")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    harness.add_args(ap, "dpo_throughput")
    return ap


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)

    def describe(setup: dict) -> dict:
        print(f"{setup['pairs']} pairs (one epoch), {setup['eval_pairs']} held out, "
              f"{setup['mean_tokens_per_pair']:.0f} tokens per pair; model FLOPs "
              f"{setup['flops_per_pair'] / 1e9:.2f} GFLOP per pair")
        tokens = int(args.batch * setup["mean_tokens_per_pair"])
        return {"flops_per_unit": setup["flops_per_pair"], "roof_shapes": setup["shapes"],
                "roof_tokens": (tokens, tokens // 2)}

    harness.main_with_fixture(
        args, argv, build_fixture, describe, name=args.name, title=f"DPO ({args.model}, {args.steps} steps x batch "
        f"{args.batch})", unit="pairs/s", script=__file__, contenders=contenders(), work=work,
        flops_formula="per pair: the prompt once, chosen and rejected after it, LM head at response tokens; policy "
                      "3x forward + reference 1x forward (benchmarks/roof.py)")


if __name__ == "__main__":
    main()
