"""KTO (Ethayarajh et al. 2024): preferences as thumbs up / down on single answers
(`dpo.loss_type: kto`), the format users actually collect.

Each example is one (prompt, completion, desirable?) record. The loss compares the completion's
log-ratio to the reference with a batch estimate of KL(policy || reference), taken on the same
prompts with *mismatched* completions (another example's), as TRL's KTOTrainer does:

    z0 = max(0, mean over the batch of [log pi(y'|x) - log ref(y'|x)])     (no gradient)
    desirable:    w_d * (1 - sigmoid(beta * (log pi(y|x) - log ref(y|x) - z0)))
    undesirable:  w_u * (1 - sigmoid(beta * (z0 - (log pi(y|x) - log ref(y|x)))))

An example is laid out as a DPO pair whose "chosen" is the completion and whose "rejected" is the
mismatched completion, so DPO's tokenization, shared-prompt batches and cached reference log-probs
serve KTO unchanged; only the loss (and the label) differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from ..preference.converters import unpair
from ..preference.records import PreferencePair
from .dpo_data import KTOExample, collate_pairs
from .response_logps import ReferenceFn, sequence_logps


def as_kto_pairs(pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
    """Pairs (unpaired first) or already laid-out KTO records -> KTO records laid out as pairs."""
    if pairs and all("label" in p.meta for p in pairs):
        return list(pairs)
    return with_mismatched_completions(unpair(pairs))


def with_mismatched_completions(records: Sequence[tuple]) -> list[PreferencePair]:
    """(prompt, completion, label, where) records as pairs whose "rejected" slot holds the next
    record's completion: the mismatched answer the KL estimate is taken on."""
    n = len(records)
    return [PreferencePair(prompt, completion, records[(i + 1) % n][1], meta={"label": label, "source": where})
            for i, (prompt, completion, label, where) in enumerate(records)]


def kto_losses(logratio: torch.Tensor, kl: torch.Tensor, labels: torch.Tensor, beta: float,
               desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    good = desirable_weight * (1 - torch.sigmoid(beta * (logratio - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - logratio)))
    return torch.where(labels, good, bad)


class KTOObjective:
    """KTO on the shared `Trainer`; `cfg` is a `DPOConfig` with loss_type kto."""

    def __init__(self, pad_id: int, cfg, reference: ReferenceFn | None = None):
        self.pad_id, self.cfg, self.reference = pad_id, cfg, reference

    def collate(self, examples: list[KTOExample]) -> dict:
        batch = collate_pairs(examples, self.pad_id, self.cfg.share_prompt)
        batch["label"] = torch.tensor([e.label for e in examples], dtype=torch.bool)
        return batch

    def loss(self, model, batch):
        cfg = self.cfg
        pc, p_kl = sequence_logps(model, batch)  # the completion, and the mismatched one
        if "ref_chosen" in batch:
            rc, r_kl = batch["ref_chosen"].to(pc.device), batch["ref_rejected"].to(pc.device)
        else:
            with torch.no_grad():
                rc, r_kl = self.reference(model, batch)
        kl = (p_kl - r_kl).detach().mean()
        if dist.is_available() and dist.is_initialized():  # the estimate over the global batch, as TRL gathers it
            dist.all_reduce(kl)
            kl = kl / dist.get_world_size()
        kl = kl.clamp(min=0)
        labels = batch["label"].to(pc.device)
        logratio = pc - rc
        losses = kto_losses(logratio, kl, labels, cfg.beta, cfg.kto_desirable_weight, cfg.kto_undesirable_weight)
        with torch.no_grad():
            rewards = cfg.beta * logratio
            good, bad = rewards[labels], rewards[~labels]
            metrics = {"kto_loss": losses.mean().item(), "kl": kl.item(),
                       "reward_desirable": good.mean().item() if len(good) else 0.0,
                       "reward_undesirable": bad.mean().item() if len(bad) else 0.0,
                       # the share of answers the implicit reward sorts onto the right side of z0
                       "reward_accuracy": ((rewards > cfg.beta * kl) == labels).float().mean().item(),
                       "n_tokens": batch["n_tokens"]}
        return losses.mean(), metrics

