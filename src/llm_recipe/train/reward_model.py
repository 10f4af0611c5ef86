"""The reward model (stage 5a), trained on the shared loop.

Model: the (SFT) causal LM's backbone with a scalar head, i.e. transformers'
`*ForSequenceClassification` with num_labels=1, so the saved directory loads with
`AutoModelForSequenceClassification.from_pretrained(dir)` anywhere. The reward of a sequence is
the head applied to the last non-pad token (what that class computes), or optionally to the mean
of all token states (`pooling="mean"`, recorded in `reward_model.json`; use our scorer then).

Loss (Bradley-Terry): -log sigmoid(r_chosen - r_rejected - margin), margin from graded data when
present, plus the optional centering term c * mean((r_chosen + r_rejected)^2) that keeps rewards
near zero (both as in TRL's RewardTrainer, whose loss this matches to float precision).

Why it is faster than a plain pairwise batch: chosen and rejected share their prompt. With
`share_prompt` each pair is ONE row, prefix + chosen tail + rejected tail, where the rejected
tail attends to the prefix but not to the chosen tail and restarts its position ids where the
prefix ends. Every token then sees exactly the context it would see alone (so rewards are the
same), but the prompt is encoded once instead of twice and the batch has half the rows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import distributed
from ..files import write_complete, write_json
from ..models.reward_io import (
    RM_INFO_FILE,
    collate_plain,
    encode,
    last_non_pad,
    pool_rewards,
    render_response,
    reward_format,
    score_token_ids,
    sequence_rewards,
    token_rewards,
)
from ..preference.records import PreferencePair, SkipLog
from ..report.model_card import write_model_card
from ..tokenizer.chat_formats import ChatFormat, apply_chat_format
from .defaults import fit_stage
from .loop import StepCallback
from .shared_prompt import attention_mask_for, common_prefix_length, shared_rows
from .training_run import Plot, Prepared, RunSpec, TrainResult, run_training


# ---- text and tokens ----------------------------------------------------------------------
@dataclass
class TokenizedPair:
    chosen_ids: list[int]
    rejected_ids: list[int]
    margin: float = 0.0


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer, fmt: ChatFormat, max_length: int,
                   log: SkipLog | None = None) -> list[TokenizedPair]:
    """Render and tokenize; pairs longer than `max_length` tokens are skipped and counted."""
    log = log if log is not None else SkipLog()
    out = []
    bs = 256
    for i in tqdm(range(0, len(pairs), bs), desc="tokenize pairs", leave=False, disable=len(pairs) < 4096):
        chunk = pairs[i : i + bs]
        ids_c = encode(tokenizer, [render_response(fmt, tokenizer, p.prompt, p.chosen) for p in chunk])
        ids_r = encode(tokenizer, [render_response(fmt, tokenizer, p.prompt, p.rejected) for p in chunk])
        for p, c, r in zip(chunk, ids_c, ids_r, strict=True):
            if max(len(c), len(r)) > max_length:
                log.skip("too_long", str(p.meta.get("source", "?")), f"{max(len(c), len(r))} > {max_length} tokens")
            elif c == r:
                log.skip("chosen_equals_rejected", str(p.meta.get("source", "?")), "identical after rendering")
            else:
                out.append(TokenizedPair(c, r, float(p.margin or 0.0)))
                log.kept += 1
    return out


# ---- batches ------------------------------------------------------------------------------
def shared_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Common token prefix, leaving each side at least its last token (its reward position)."""
    return max(0, min(common_prefix_length(a, b), min(len(a), len(b)) - 1))


def collate_shared(pairs: Sequence[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """One row per pair: shared prefix, chosen tail, rejected tail (see `train.shared_prompt`)."""
    prefixes, chosen, rejected, idx_c, idx_r = [], [], [], [], []
    for p in pairs:
        c, r = p.chosen_ids, p.rejected_ids
        k = shared_prefix_len(c, r)
        prefixes.append(c[:k])
        chosen.append(c[k:])
        rejected.append(r[k:])
        idx_c.append(last_non_pad(c, pad_id))
        j = last_non_pad(r, pad_id)
        idx_r.append(j if j < k else len(c) + j - k)
    return {**shared_rows(prefixes, chosen, rejected, pad_id),
            "chosen_index": torch.tensor(idx_c), "rejected_index": torch.tensor(idx_r)}


class RewardObjective:
    """Bradley-Terry reward-model objective for the shared `Trainer`."""

    def __init__(self, pad_id: int, pooling: str = "last", share_prompt: bool = True,
                 center_coef: float | None = None, use_margin: bool = True):
        if pooling not in ("last", "mean"):
            raise ValueError(f"unknown pooling '{pooling}' (last, mean)")
        self.pad_id = pad_id
        self.pooling = pooling
        self.share_prompt = share_prompt
        self.center_coef = center_coef
        self.use_margin = use_margin

    def collate(self, examples: list[TokenizedPair]) -> dict[str, torch.Tensor]:
        if self.share_prompt:
            batch = collate_shared(examples, self.pad_id)
        else:  # chosen rows then rejected rows, as TRL's DataCollatorForPreference
            batch = collate_plain([e.chosen_ids for e in examples] + [e.rejected_ids for e in examples], self.pad_id)
        batch["margin"] = torch.tensor([e.margin for e in examples], dtype=torch.float32)
        batch["loss_tokens"] = len(examples)  # the loss is a mean over pairs: weight batches by pairs
        return batch

    def rewards(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if "allowed" in batch:
            return shared_rewards(model, batch, self.pooling)
        r = sequence_rewards(model, batch["input_ids"], batch["attention_mask"], self.pooling)
        return torch.chunk(r, 2)

    def loss(self, model, batch):
        rc, rr = self.rewards(model, batch)
        diff = rc - rr
        if self.use_margin:
            diff = diff - batch["margin"].to(diff.dtype)
        loss = -F.logsigmoid(diff).mean()
        if self.center_coef:
            loss = loss + self.center_coef * ((rc + rr) ** 2).mean()
        with torch.no_grad():
            real = batch["segments"] >= 0 if "segments" in batch else batch["attention_mask"].bool()
            metrics = {
                "accuracy": (rc > rr).float().mean().item(),
                "reward_margin": (rc - rr).mean().item(),
                "reward_mean": torch.cat([rc, rr]).mean().item(),
                "n_tokens": int(real.sum().item()),
            }
        return loss, metrics


def shared_rewards(model, batch, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of both sides of every pair from the shared-prefix rows (one forward pass)."""
    with token_rewards(model) as captured:
        model(input_ids=batch["input_ids"], attention_mask=attention_mask_for(model, batch["allowed"], "rm.share_prompt"),
              position_ids=batch["position_ids"], use_cache=False)
    r = captured[-1].squeeze(-1).float()  # [pairs, row length]
    if pooling == "last":
        rows = torch.arange(r.shape[0], device=r.device)
        return r[rows, batch["chosen_index"]], r[rows, batch["rejected_index"]]
    seg = batch["segments"]
    return pool_rewards(r, (seg == 0) | (seg == 1)), pool_rewards(r, (seg == 0) | (seg == 2))


# ---- model ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is the point here
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def build_reward_model(base: str | os.PathLike, tokenizer, dtype: str = "float32", seed: int = 0,
                       trust_remote_code: bool = False):
    """A causal LM (dir or hub id) -> its `*ForSequenceClassification` with a fresh scalar head
    (or an existing reward model, unchanged). The head's init is fixed by `seed`."""
    from transformers import AutoModelForSequenceClassification

    from ..models.loading import DTYPES

    if (os.path.sep in str(base) or str(base).startswith(".")) and not os.path.isdir(base):
        raise FileNotFoundError(f"{base}: no such model directory")
    with _quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(base), num_labels=1, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
        except OSError as e:
            raise FileNotFoundError(f"{base}: cannot load a reward model base ({str(e).splitlines()[0]})") from None
    # The head reads the last token that is not padding: the model must know the pad id.
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.id2label, model.config.label2id = {0: "reward"}, {"reward": 0}
    return model


def save_reward_model(model, tokenizer, out_dir: str | os.PathLike, info: dict) -> Path:
    """HF directory (safetensors + tokenizer with its chat format) + `reward_model.json` with the
    pooling and the normalization statistics."""
    def write(d: Path) -> None:
        model.save_pretrained(d, safe_serialization=True)
        tokenizer.save_pretrained(d)
        write_json(d / RM_INFO_FILE, info)
        write_model_card(d, name=out_dir)

    return write_complete(out_dir, write)


# ---- training ------------------------------------------------------------------------------
def pairwise_accuracy(model, tokenizer, fmt: ChatFormat, pairs: Sequence[PreferencePair], pooling: str,
                      batch_size: int = 32) -> dict:
    """Share of pairs whose chosen response gets the higher reward (ties count as wrong)."""
    if not pairs:
        return {"pairs": 0, "accuracy": None}
    texts = [render_response(fmt, tokenizer, p.prompt, t) for p in pairs for t in (p.chosen, p.rejected)]
    r = score_token_ids(model, encode(tokenizer, texts), tokenizer.pad_token_id, pooling, batch_size)
    rc, rr = r[0::2], r[1::2]
    return {"pairs": len(pairs), "accuracy": float(np.mean(rc > rr)), "ties": int(np.sum(rc == rr)),
            "mean_margin": float(np.mean(rc - rr)), "mean_chosen": float(rc.mean()),
            "mean_rejected": float(rr.mean()), "reward_mean": float(r.mean()), "reward_std": float(r.std())}


def run_reward_model(
    *,
    base: str | os.PathLike,
    train_pairs: Sequence[PreferencePair],
    eval_pairs: Sequence[PreferencePair],
    cfg,  # config.RMConfig
    output_dir: str | os.PathLike,
    seed: int = 0,
    resume: bool = True,
    callbacks: Sequence[StepCallback] = (),
    read_log: SkipLog | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    full_config=None,
) -> TrainResult:
    """Train a reward model from `base` (usually the SFT model) and save `output_dir/model`, with
    `reward_model.json` (pooling, normalization statistics); `rm_report.json` holds the held-out and
    training-set pairwise accuracy (also `result.report["eval"]`, `["train"]`, `["normalization"]`)."""
    from ..models.loading import load_tokenizer

    out = Path(output_dir)
    tokenizer = load_tokenizer(base, cfg.trust_remote_code)
    fmt = reward_format(tokenizer, cfg.chat_format)
    model = build_reward_model(base, tokenizer, cfg.compute.dtype, seed, cfg.trust_remote_code)
    cfg, fitted = fit_stage("rm", cfg, model, lora=False)
    if apply_chat_format(tokenizer, fmt):  # the format is saved with the RM and reused by scorers
        model.resize_token_embeddings(len(tokenizer))
    tok_log = SkipLog()
    train = tokenize_pairs(train_pairs, tokenizer, fmt, cfg.max_length, tok_log)
    evals = tokenize_pairs(eval_pairs, tokenizer, fmt, cfg.max_length, tok_log)
    objective = RewardObjective(tokenizer.pad_token_id, cfg.pooling, cfg.share_prompt, cfg.center_rewards,
                                cfg.use_margin)
    lengths = [len(p.chosen_ids) + len(p.rejected_ids) for p in train] if cfg.group_by_length else None
    report = {"read": read_log.to_json() if read_log else None, "tokenize": tok_log.to_json(),
              "train_pairs": len(train), "eval_pairs": len(evals), "format": fmt.name}
    prepared = Prepared(model, tokenizer, objective, train, evals or None, cfg, report, fitted=fitted, lengths=lengths)

    def accuracy_and_normalization(trainer, data_report: dict):
        """Held-out and training-set pairwise accuracy; the reward normalization (mean/std over the
        responses of a sample of the training set), saved with the model."""
        final = trainer.unwrapped_model()
        eval_acc = pairwise_accuracy(final, tokenizer, fmt, list(eval_pairs), cfg.pooling)
        train_acc = pairwise_accuracy(final, tokenizer, fmt, list(train_pairs[: cfg.norm_samples]), cfg.pooling)
        mean, std = train_acc.pop("reward_mean"), train_acc.pop("reward_std") or 1.0
        rm_report.update({"eval": eval_acc, "train": train_acc,
                          "normalization": {"mean": mean, "std": std, "responses": 2 * train_acc["pairs"]},
                          "data": data_report})
        info = {"pooling": cfg.pooling, "normalization": rm_report["normalization"], "format": fmt.name,
                "max_length": cfg.max_length, "eval_accuracy": eval_acc.get("accuracy"), "base": str(base)}
        return lambda d: write_json(d / RM_INFO_FILE, info)

    rm_report: dict = {}
    plot = Plot("loss.png", ("loss", "eval_loss", "eval_accuracy"), "reward model: loss and held-out pairwise accuracy")
    spec = RunSpec("reward_model", inputs=inputs, init_from=base, plots=[plot], before_save=accuracy_and_normalization)
    res = run_training(prepared, spec, out, seed=seed, resume=resume, callbacks=callbacks, full_config=full_config)
    if not res.stopped_early:
        rm_report = {"eval": rm_report["eval"], "train": rm_report["train"],
                     "initial_eval_accuracy": res.initial_eval.get("eval_accuracy"), "history": res.history,
                     "normalization": rm_report["normalization"], "data": rm_report["data"]}
        if distributed.is_main():
            write_json(out / "rm_report.json", rm_report)
        res.report = rm_report
    distributed.barrier()  # the reward model is complete for every process
    return res
