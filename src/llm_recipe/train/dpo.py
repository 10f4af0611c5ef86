"""Stage 6: Direct Preference Optimization on the shared training loop.

    δ = [log π(y_w|x) − log π_ref(y_w|x)] − [log π(y_l|x) − log π_ref(y_l|x)]   (sums over response tokens)

    sigmoid   −log σ(βδ)                                               (DPO, Rafailov et al. 2023)
    cdpo      −(1−ε)·log σ(βδ) − ε·log σ(−βδ)                          (conservative DPO: labels flipped w.p. ε)
    robust    [−(1−ε)·log σ(βδ) + ε·log σ(−βδ)] / (1−2ε)               (Chowdhury et al. 2024, unbiased under noise)
    ipo       (Δ_w/|y_w| − Δ_l/|y_l| − 1/(2β))²                        (IPO, per-side length-normalised as TRL)
  + α · NLL(chosen)   optional SFT term (mean over chosen tokens), against falling chosen log-probs.

Implicit rewards are β·(log π − log π_ref) per side; reward accuracy counts pairs whose chosen
reward is strictly higher (ties are not wins, as TRL). The reference log-probs come either with
the batch (precomputed once, see `reference_logps`) or from a reference called per step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..files import write_json
from ..models.finetuning import disable_dropout, merge_lora, with_lora
from ..preference.records import PreferencePair, SkipLog
from ..provenance import write_run_manifest
from .defaults import fit_stage
from .dpo_data import DPOExample, TruncationStats, collate_pairs, tokenize_dpo_pairs
from .kto import KTOObjective, as_kto_pairs
from .loop import StepCallback, Trainer, make_accelerator
from .reference_free import REFERENCE_FREE, ReferenceFreeObjective
from .reference_logps import attach_reference_logps, reference_for
from .response_logps import ReferenceFn, sequence_logps, token_logps

LOSS_TYPES = ("sigmoid", "cdpo", "robust", "ipo")  # with a reference; `reference_free`: simpo, orpo


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, *, beta: float = 0.1, loss_type: str = "sigmoid",
                    label_smoothing: float = 0.0, n_chosen: torch.Tensor | None = None,
                    n_rejected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and the implicit rewards (chosen, rejected) of a batch of sequence log-probs."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    z = beta * (chosen_ratio - rejected_ratio)
    eps = label_smoothing
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(z)
    elif loss_type == "cdpo":
        losses = -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)
    elif loss_type == "robust":
        losses = (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)
    elif loss_type == "ipo":
        if n_chosen is None or n_rejected is None:
            raise ValueError("ipo needs the response lengths (n_chosen, n_rejected)")
        delta = chosen_ratio / n_chosen.clamp(min=1) - rejected_ratio / n_rejected.clamp(min=1)
        losses = (delta - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss '{loss_type}' (choose from {', '.join(LOSS_TYPES)})")
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


class DPOObjective:
    """DPO-family objective for the shared `Trainer`; `cfg` is a `DPOConfig` (or anything with its
    loss fields)."""

    def __init__(self, pad_id: int, cfg, reference: ReferenceFn | None = None):
        if cfg.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown DPO loss '{cfg.loss_type}' (choose from {', '.join(LOSS_TYPES)})")
        self.pad_id = pad_id
        self.cfg = cfg
        self.reference = reference

    def collate(self, examples: list[DPOExample]) -> dict:
        return collate_pairs(examples, self.pad_id, self.cfg.share_prompt)

    def loss(self, model, batch):
        cfg = self.cfg
        tok = token_logps(model, batch)
        pc, pr = sequence_logps(model, batch, tok)
        if "ref_chosen" in batch:
            rc, rr = batch["ref_chosen"].to(pc.device), batch["ref_rejected"].to(pc.device)
        elif self.reference is not None:
            with torch.no_grad():
                rc, rr = self.reference(model, batch)
        else:
            raise ValueError("batch carries no reference log-probs and no reference model was given")
        losses, r_c, r_r = preference_loss(pc, pr, rc, rr, beta=cfg.beta, loss_type=cfg.loss_type,
                                           label_smoothing=cfg.label_smoothing, n_chosen=batch["n_chosen"].to(pc.device),
                                           n_rejected=batch["n_rejected"].to(pc.device))
        loss = losses.mean()
        metrics = {"dpo_loss": loss.item()}  # without the SFT term: log 2 at step 0 whatever α is
        if cfg.sft_alpha:
            nll = -tok[batch["seq"] < len(pc)].mean()
            loss = loss + cfg.sft_alpha * nll
            metrics["sft_nll"] = nll.item()
        with torch.no_grad():
            metrics.update({
                "reward_chosen": r_c.mean().item(),
                "reward_rejected": r_r.mean().item(),
                "reward_accuracy": (r_c > r_r).float().mean().item(),
                "reward_margin": (r_c - r_r).mean().item(),
                "logps_chosen": pc.detach().mean().item(),
                "logps_rejected": pr.detach().mean().item(),
                "response_len": (batch["n_chosen"].mean().item() + batch["n_rejected"].mean().item()) / 2,
                "n_tokens": batch["n_tokens"],
            })
        return loss, metrics


@dataclass
class DPOResult:
    model_dir: Path
    steps: int
    stopped_early: bool
    history: list[dict]
    report: dict

    @property
    def initial_eval(self) -> dict:
        return next((h for h in self.history if h["step"] == 0), {})

    @property
    def final_eval(self) -> dict:
        return self.history[-1] if self.history else {}


def run_dpo(
    *,
    init: str | os.PathLike,
    train_pairs: Sequence[PreferencePair],
    eval_pairs: Sequence[PreferencePair] = (),
    cfg,  # config.DPOConfig
    output_dir: str | os.PathLike,
    seed: int = 0,
    resume: bool = True,
    callbacks: Sequence[StepCallback] = (),
    read_log: SkipLog | None = None,
    inputs: Sequence[str | os.PathLike] = (),
    full_config=None,
    reference_init: str | os.PathLike | None = None,
    stage: str = "dpo",
) -> DPOResult:
    """DPO-train the (SFT) model at `init` on pairs and save `output_dir/model` (a plain HF dir,
    LoRA merged, with the chat format and generation config of `init`). The reference is `init`
    itself unless `reference_init` names another model (online DPO: the initial SFT model while
    the policy starts from the previous round's)."""
    from ..models.loading import load_causal_lm, load_tokenizer
    from ..tokenizer.chat_formats import resolve_chat_format

    out = Path(output_dir)
    if cfg.lora is not None and cfg.save_every:
        raise ValueError("dpo.save_every with LoRA: checkpoints hold full weights, not adapters; unset one of them")
    tokenizer = load_tokenizer(init, cfg.trust_remote_code)
    fmt = resolve_chat_format(tokenizer, cfg.chat_format)
    torch.manual_seed(seed)
    model = load_causal_lm(init, cfg.compute.dtype, cfg.trust_remote_code)
    cfg, fitted = fit_stage("dpo", cfg, model, lora=cfg.lora is not None)
    disable_dropout(model)
    if cfg.loss_type == "kto":  # one example per answer, with its label (pairs are unpaired)
        train_pairs, eval_pairs = as_kto_pairs(train_pairs), as_kto_pairs(eval_pairs)
    tok_log, trunc = SkipLog(), TruncationStats()
    train = tokenize_dpo_pairs(train_pairs, tokenizer, fmt, cfg.max_length, tok_log, trunc)
    evals = tokenize_dpo_pairs(eval_pairs, tokenizer, fmt, cfg.max_length, tok_log, trunc)
    if not train:
        raise ValueError(f"no usable DPO pairs ({tok_log.summary()})")
    if cfg.lora is not None:
        model = with_lora(model, cfg.lora, seed=seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    reference_free = cfg.loss_type in REFERENCE_FREE
    if cfg.loss_type == "kto":
        objective = KTOObjective(pad_id, cfg)
    else:
        objective = ReferenceFreeObjective(pad_id, cfg) if reference_free else DPOObjective(pad_id, cfg)
    # The device first: the reference pass runs there, before the loop wraps the model.
    accelerator = make_accelerator(cfg.compute, cfg.report_to, out)
    model.to(accelerator.device)
    ref_report = ({"mode": "none (reference-free loss)"} if reference_free
                  else {"mode": cfg.reference, "model": str(reference_init or init)})
    ref_model = model
    if not reference_free and reference_init is not None and str(reference_init) != str(init):
        if cfg.lora is not None:  # a LoRA policy's reference is its own base weights
            raise ValueError("a reference model other than the policy's start needs full fine-tuning (lora: null)")
        ref_model = load_causal_lm(reference_init, cfg.compute.dtype, cfg.trust_remote_code).to(accelerator.device)
        disable_dropout(ref_model)
    if cfg.reference == "precompute" and not reference_free:  # SimPO / ORPO have no reference at all
        ref_report.update(attach_reference_logps(ref_model, objective, train, evals, out / "reference",
                                                 batch_size=cfg.batch_size, lora=cfg.lora is not None,
                                                 accelerator=accelerator))
    elif not reference_free:
        objective.reference = reference_for(ref_model, lora=cfg.lora is not None)
    del ref_model  # precomputed: the second model is freed before training
    lengths = [len(e) for e in train] if cfg.group_by_length else None
    trainer = Trainer(model, objective, train, cfg, out, eval_data=evals or None, seed=seed,
                      callbacks=callbacks, group_by_length=lengths, accelerator=accelerator, tokenizer=tokenizer)
    resumed = resume and trainer.resume("latest")
    report = {
        "read": read_log.to_json() if read_log else None,
        "tokenize": tok_log.to_json(),
        "truncated": asdict(trunc),
        "train_pairs": len(train),
        "eval_pairs": len(evals),
        "dropped_pairs_per_epoch": trainer.dropped_per_epoch,
        "run_length_warnings": trainer.warnings,
        "format": fmt.name,
        "loss_type": cfg.loss_type,
        "reference": ref_report,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "resumed_from_step": trainer.state.step if resumed else None,
        "defaults_for_model": fitted, "max_steps": trainer.cfg.max_steps,
    }
    if trainer.is_main:
        write_json(out / "data_report.json", report)
        write_run_manifest(out, stage=stage, config=full_config or cfg, inputs=inputs,
                           extra={"data_report": report, "base_model": str(init)}, init_from=init)
    result = trainer.fit()
    model_dir = out / "model"
    if not result["stopped_early"]:
        trainer.save_model(model_dir, lambda m: merge_lora(m, out), tokenizer)
    if trainer.is_main and not result["stopped_early"]:
        from ..report.plots import plot_metrics

        plot_metrics(out / "metrics.jsonl", out / "loss.png", keys=("loss", "eval_loss"), title="DPO loss")
        plot_metrics(out / "metrics.jsonl", out / "rewards.png",
                     keys=("reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"),
                     title="DPO implicit rewards (train)")
    report["history"] = result["history"]
    if trainer.is_main:
        write_json(out / "dpo_report.json", report)
    return DPOResult(model_dir, result["step"], result["stopped_early"], result["history"], report)

