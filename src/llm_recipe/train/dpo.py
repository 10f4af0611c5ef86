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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import distributed
from ..files import write_json
from ..models.finetuning import disable_dropout, merge_lora, with_lora
from ..preference.records import PreferencePair, SkipLog
from .defaults import fit_stage
from .dpo_data import DPOExample, TruncationStats, collate_pairs, tokenize_dpo_pairs
from .kto import KTOObjective, as_kto_pairs
from .loop import StepCallback, make_accelerator
from .reference_free import REFERENCE_FREE, ReferenceFreeObjective
from .reference_logps import attach_reference_logps, reference_for
from .response_logps import ReferenceFn, sequence_logps, token_logps
from .training_run import Plot, Prepared, RunSpec, TrainResult, run_training

# The reference-based pairwise losses, each registered once (`pair_loss`); with the reference-free
# ones (`reference_free`) and KTO they make `LOSSES`, where `dpo.loss_type`'s choices come from.
PairLoss = Callable[..., torch.Tensor]  # (chosen_ratio, rejected_ratio, *, beta, eps, n_chosen, n_rejected) -> [B]
PAIR_LOSSES: dict[str, PairLoss] = {}
SMOOTHED: set[str] = set()  # losses that read `label_smoothing` (an assumed label-flip rate)


def pair_loss(name: str, *, label_smoothing: bool = False) -> Callable[[PairLoss], PairLoss]:
    def register(fn: PairLoss) -> PairLoss:
        PAIR_LOSSES[name] = fn
        if label_smoothing:
            SMOOTHED.add(name)
        return fn

    return register


@pair_loss("sigmoid")
def _sigmoid(chosen_ratio, rejected_ratio, *, beta, **_):
    return -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))


@pair_loss("cdpo", label_smoothing=True)
def _cdpo(chosen_ratio, rejected_ratio, *, beta, eps, **_):
    z = beta * (chosen_ratio - rejected_ratio)
    return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


@pair_loss("robust", label_smoothing=True)
def _robust(chosen_ratio, rejected_ratio, *, beta, eps, **_):
    z = beta * (chosen_ratio - rejected_ratio)
    return (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)


@pair_loss("ipo")
def _ipo(chosen_ratio, rejected_ratio, *, beta, n_chosen, n_rejected, **_):
    if n_chosen is None or n_rejected is None:
        raise ValueError("ipo needs the response lengths (n_chosen, n_rejected)")
    delta = chosen_ratio / n_chosen.clamp(min=1) - rejected_ratio / n_rejected.clamp(min=1)
    return (delta - 1 / (2 * beta)) ** 2


def preference_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                    ref_rejected: torch.Tensor, *, beta: float = 0.1, loss_type: str = "sigmoid",
                    label_smoothing: float = 0.0, n_chosen: torch.Tensor | None = None,
                    n_rejected: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and the implicit rewards (chosen, rejected) of a batch of sequence log-probs."""
    if loss_type not in PAIR_LOSSES:
        raise ValueError(f"unknown DPO loss '{loss_type}' (choose from {', '.join(PAIR_LOSSES)})")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    losses = PAIR_LOSSES[loss_type](chosen_ratio, rejected_ratio, beta=beta, eps=label_smoothing,
                                    n_chosen=n_chosen, n_rejected=n_rejected)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


class DPOObjective:
    """DPO-family objective for the shared `Trainer`; `cfg` is a `DPOConfig` (or anything with its
    loss fields)."""

    def __init__(self, pad_id: int, cfg, reference: ReferenceFn | None = None):
        if cfg.loss_type not in PAIR_LOSSES:
            raise ValueError(f"unknown DPO loss '{cfg.loss_type}' (choose from {', '.join(PAIR_LOSSES)})")
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


@dataclass(frozen=True)
class LossSpec:
    """A DPO-family loss: its objective on the shared loop, whether it needs a reference model,
    and the data it trains on ("pairs", or "unpaired" thumbs-up/down records)."""

    objective: Callable[..., object]  # (pad_id, cfg) -> Objective
    reference: bool = True
    data: str = "pairs"


LOSSES: dict[str, LossSpec] = {
    **{name: LossSpec(DPOObjective) for name in PAIR_LOSSES},
    **{name: LossSpec(ReferenceFreeObjective, reference=False) for name in REFERENCE_FREE},
    "kto": LossSpec(KTOObjective, data="unpaired"),
}


def loss_spec(cfg) -> LossSpec:
    """The registered loss of `cfg.loss_type` (a `DPOObjectiveConfig`); one line naming the choices
    for an unknown one, or for `label_smoothing` with a loss that does not read it."""
    spec = LOSSES.get(cfg.loss_type)
    if spec is None:
        raise ValueError(f"dpo.loss_type '{cfg.loss_type}': choose from {', '.join(LOSSES)}")
    if cfg.label_smoothing and cfg.loss_type not in SMOOTHED:
        raise ValueError(f"label_smoothing is used by loss_type {' or '.join(sorted(SMOOTHED))}, "
                         f"not '{cfg.loss_type}'")
    return spec


DPO_PLOTS = (Plot("loss.png", ("loss", "eval_loss"), "DPO loss"),
             Plot("rewards.png", ("reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"),
                  "DPO implicit rewards (train)"))


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
) -> TrainResult:
    """DPO-train the (SFT) model at `init` on pairs and save `output_dir/model` (a plain HF dir,
    LoRA merged, with the chat format and generation config of `init`). The reference is `init`
    itself unless `reference_init` names another model (online DPO: the initial SFT model while
    the policy starts from the previous round's). `dpo_report.json` holds the data report and the
    evaluation history."""
    out = Path(output_dir)
    p = _prepare(init, train_pairs, eval_pairs, cfg, out, seed, read_log, reference_init)
    res = run_training(p, RunSpec(stage, inputs=inputs, init_from=init, plots=DPO_PLOTS), out, seed=seed,
                       resume=resume, callbacks=callbacks, full_config=full_config)
    res.report["history"] = res.history
    if distributed.is_main():
        write_json(out / "dpo_report.json", res.report)
    return res


def _prepare(init, train_pairs, eval_pairs, cfg, out: Path, seed: int, read_log, reference_init) -> Prepared:
    from ..models.loading import load_causal_lm, load_tokenizer
    from ..tokenizer.chat_formats import resolve_chat_format

    tokenizer = load_tokenizer(init, cfg.trust_remote_code)
    fmt = resolve_chat_format(tokenizer, cfg.chat_format)
    torch.manual_seed(seed)
    model = load_causal_lm(init, cfg.compute.dtype, cfg.trust_remote_code)
    cfg, fitted = fit_stage("dpo", cfg, model, lora=cfg.lora is not None)
    disable_dropout(model)
    spec = loss_spec(cfg)
    if spec.data == "unpaired":  # one example per answer, with its label (pairs are unpaired)
        train_pairs, eval_pairs = as_kto_pairs(train_pairs), as_kto_pairs(eval_pairs)
    tok_log, trunc = SkipLog(), TruncationStats()
    train = tokenize_dpo_pairs(train_pairs, tokenizer, fmt, cfg.max_length, tok_log, trunc)
    evals = tokenize_dpo_pairs(eval_pairs, tokenizer, fmt, cfg.max_length, tok_log, trunc)
    if not train:
        raise ValueError(f"no usable DPO pairs ({tok_log.summary()})")
    if cfg.lora is not None:
        model = with_lora(model, cfg.lora, seed=seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    objective = spec.objective(pad_id, cfg)
    # The device first: the reference pass runs there, before the loop wraps the model.
    accelerator = make_accelerator(cfg.compute, cfg.report_to, out)
    model.to(accelerator.device)
    ref_report = _attach_reference(spec, model, objective, train, evals, cfg, out, accelerator, init, reference_init)
    report = {"read": read_log.to_json() if read_log else None, "tokenize": tok_log.to_json(),
              "truncated": asdict(trunc), "train_pairs": len(train), "eval_pairs": len(evals), "format": fmt.name,
              "loss_type": cfg.loss_type, "reference": ref_report,
              "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    return Prepared(model, tokenizer, objective, train, evals or None, cfg, report, fitted=fitted,
                    lengths=[len(e) for e in train] if cfg.group_by_length else None, accelerator=accelerator,
                    finalize=lambda m, out: merge_lora(m, out, cfg.lora.save if cfg.lora else "both", tokenizer))


def _attach_reference(spec: LossSpec, model, objective, train, evals, cfg, out: Path, accelerator, init,
                      reference_init) -> dict:
    """The reference log-probs: precomputed once (with the policy's start, or `reference_init`), or a
    reference called every step; nothing for a reference-free loss. Returns the report's entry."""
    if not spec.reference:
        return {"mode": "none (reference-free loss)"}
    ref_report = {"mode": cfg.reference, "model": str(reference_init or init)}
    ref_model = model
    if reference_init is not None and str(reference_init) != str(init):
        if cfg.lora is not None:  # a LoRA policy's reference is its own base weights
            raise ValueError("a reference model other than the policy's start needs full fine-tuning (lora: null)")
        from ..models.loading import load_causal_lm

        ref_model = load_causal_lm(reference_init, cfg.compute.dtype, cfg.trust_remote_code).to(accelerator.device)
        disable_dropout(ref_model)
    if cfg.reference == "precompute":
        ref_report.update(attach_reference_logps(ref_model, objective, train, evals, out / "reference",
                                                 batch_size=cfg.batch_size, lora=cfg.lora is not None,
                                                 accelerator=accelerator))
    else:
        objective.reference = reference_for(ref_model, lora=cfg.lora is not None)
    return ref_report
