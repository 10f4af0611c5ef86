"""Supervised fine-tuning (stage 3) on the shared training loop.

records -> conversations (bad ones counted) -> train/eval split by prompt hash -> render with the
chat format, tokenize once with offsets, mask non-assistant tokens -> pack (or length-group)
-> shared `Trainer` with `SFTObjective` -> HF model dir whose tokenizer carries the chat format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import SFTConfig
from ..models.finetuning import merge_lora, with_lora
from ..models.loading import load_causal_lm
from ..models.presets import count_parameters
from ..record_sources import check_skips
from ..tokenizer.chat_formats import apply_chat_format, resolve_chat_format, stop_token_ids
from .defaults import fit_stage
from .loop import StepCallback
from .response_logps import MASK_LOGITS_TO_KEEP
from .sft_coverage import coverage_report
from .sft_data import (
    IGNORE,
    Conversation,
    DataStats,
    Example,
    collate_rows,
    pack_examples,
    padding_report,
    single_rows,
    split_sft_data,
    tokenize_examples,
)
from .training_run import Plot, Prepared, RunSpec, TrainResult, run_training


class SFTObjective:
    """Mean next-token cross-entropy over assistant tokens only.

    The LM head runs only on positions whose next token carries a loss (`logits_to_keep` as a
    boolean mask), inside the model's own forward (so DDP/FSDP/peft wrappers see a normal call):
    prompt and padding positions cost no vocabulary projection.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.compact = MASK_LOGITS_TO_KEEP

    def collate(self, rows) -> dict:
        return collate_rows(rows, self.pad_id)

    def loss(self, model, batch):
        labels = batch["labels"]
        target_mask = labels[:, 1:] != IGNORE
        target = labels[:, 1:][target_mask]
        kw = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
        if self.compact:
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = target_mask
            logits = model(**kw, logits_to_keep=keep).logits
        else:
            logits = model(**kw).logits[:, :-1][target_mask]
        if target.numel() == 0:  # a batch without answers: a differentiable zero, not NaN
            return logits.sum() * 0.0, {"n_tokens": batch["n_tokens"], "token_acc": 0.0}
        loss = F.cross_entropy(logits.float(), target)
        acc = (logits.detach().argmax(-1) == target).float().mean().item()
        return loss, {"n_tokens": batch["n_tokens"], "token_acc": acc,
                      "pad_fraction": batch["pad_tokens"] / max(labels.numel(), 1)}


@dataclass
class SFTData:
    train: list[Example]
    eval: list[Example]
    held_out: list[Conversation]  # held-out conversations (for generation checks)
    stats: DataStats
    inferred_categories: int


def load_sft_data(cfg: SFTConfig, tokenizer, fmt, seed: int = 0,
                  records: Iterable[tuple[str, dict]] | None = None) -> SFTData:
    """Conversations -> train/held-out split by prompt -> tokenized examples, every record counted.
    `records` ((where, record) pairs) replace reading `cfg.data` files: the SFT stage passes the
    bundled set that way (`demo.sft_set.sft_records`)."""
    split = split_sft_data(cfg, seed, records)
    stats, train_c, held = split.stats, split.train, split.held_out
    kw = dict(max_length=cfg.max_length, overlong=cfg.overlong, train_on=cfg.train_on)
    train = tokenize_examples(train_c, tokenizer, fmt, stats=stats, **kw)
    held_stats = DataStats()
    evals = tokenize_examples(held, tokenizer, fmt, stats=held_stats, **kw)
    for k, v in held_stats.skipped.items():  # one account of every record, whichever side it fell on
        stats.skipped[k] = stats.skipped.get(k, 0) + v
    for k, v in held_stats.modified.items():
        stats.modify(k, v)
    stats.examples += held_stats.examples[: max(0, 20 - len(stats.examples))]
    stats.kept = len(train) + len(evals)
    return SFTData(train, evals, held, stats, split.inferred_categories)


def _rows(examples, cfg: SFTConfig):
    return pack_examples(examples, cfg.max_length) if cfg.packing else single_rows(examples)


def run_sft(
    *,
    init: str | os.PathLike | torch.nn.Module,
    tokenizer,
    cfg: SFTConfig,
    output_dir: str | os.PathLike,
    seed: int = 0,
    resume: bool = True,
    callbacks: Sequence[StepCallback] = (),
    full_config=None,
    records: Iterable[tuple[str, dict]] | None = None,
) -> TrainResult:
    """Fine-tune `init` (model dir / hub id / module) and save `output_dir/model`, whose tokenizer
    carries the chat format as `chat_template` and whose generation config stops at end of turn.
    Data: `records` ((where, record) pairs) if given, else the files of `cfg.data`."""
    p = _prepare(init, tokenizer, cfg, seed, records)
    spec = RunSpec("sft", inputs=[] if records is not None else cfg.data, init_from=init,
                   plots=[Plot("loss.png", ("loss", "eval_loss"), "SFT loss (assistant tokens)")])
    return run_training(p, spec, output_dir, seed=seed, resume=resume, callbacks=callbacks, full_config=full_config)


def _prepare(init, tokenizer, cfg: SFTConfig, seed: int, records) -> Prepared:
    fmt = resolve_chat_format(tokenizer, cfg.format)  # warns if the model was trained on another format
    model = init if isinstance(init, torch.nn.Module) else load_causal_lm(init, cfg.compute.dtype)
    cfg, fitted = fit_stage("sft", cfg, model, lora=cfg.lora is not None)
    added = apply_chat_format(tokenizer, fmt)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    data = load_sft_data(cfg, tokenizer, fmt, seed, records)
    check_skips("SFT data", data.stats.kept, data.stats.skipped, data.stats.examples, cfg.max_bad_records,
                "sft.max_bad_records")
    if not data.train:
        raise ValueError(f"no usable SFT examples (skipped: {data.stats.skipped})")
    train_rows, eval_rows = _rows(data.train, cfg), _rows(data.eval, cfg)
    if cfg.lora is not None:  # the rows of added tokens are trained too
        model = with_lora(model, cfg.lora, tokenizer.convert_tokens_to_ids(added), seed=seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if not cfg.max_length <= tokenizer.model_max_length < 1 << 20:  # a placeholder, or less than trained on
        tokenizer.model_max_length = cfg.max_length
    report = {
        "format": fmt.name,
        "data": asdict(data.stats),
        "coverage": coverage_report(data.train, cfg.skew_ratio, data.inferred_categories),
        "padding": padding_report(data.train, train_rows if cfg.packing else None, cfg.batch_size,
                                  cfg.max_length, seed),
        "train_examples": len(data.train),
        "eval_examples": len(data.eval),
        "train_rows": len(train_rows),
        "parameters": count_parameters(model),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }

    def finalize(model, out: Path):
        final = merge_lora(model, out, cfg.lora.save if cfg.lora else "both", tokenizer)
        # Generation (ours or anyone's `model.generate`) stops at the end of an assistant turn.
        final.generation_config.eos_token_id = stop_token_ids(tokenizer, fmt)
        final.generation_config.pad_token_id = pad_id
        return final

    lengths = None if cfg.packing or not cfg.group_by_length else [len(r) for r in train_rows]
    return Prepared(model, tokenizer, SFTObjective(pad_id), train_rows, eval_rows or None, cfg, report,
                    fitted=fitted, lengths=lengths, finalize=finalize)
