"""Reference-free preference objectives: SimPO and ORPO (`dpo.loss_type: simpo | orpo`).

Both compare the policy's *average* log-probability per response token of the chosen and the
rejected answer, with no reference model at all (no reference pass, no cached reference
log-probs, half the memory of DPO):

    SimPO (Meng et al. 2024)   -logsigmoid(beta * (avg_c - avg_r) - gamma), gamma the target margin
                               (TRL's CPOTrainer, loss_type "simpo": gamma = simpo_gamma)
    ORPO (Hong et al. 2024)    NLL(chosen) - lambda * logsigmoid(log_odds_c - log_odds_r), where
                               log_odds = avg - log(1 - exp(avg)); lambda is `beta` (TRL's ORPOTrainer)

The data, batching and shared-prompt layout are DPO's (`train.dpo_data`); only the loss differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dpo_data import collate_pairs
from .response_logps import sequence_logps, token_logps

REFERENCE_FREE = ("simpo", "orpo")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable at both ends."""
    return torch.where(x > -0.693, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def simpo_losses(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor, beta: float, gamma: float,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    z = beta * (avg_chosen - avg_rejected) - gamma
    return -F.logsigmoid(z) * (1 - label_smoothing) - F.logsigmoid(-z) * label_smoothing


def orpo_log_odds(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor) -> torch.Tensor:
    """log odds(chosen) - log odds(rejected), odds = p / (1 - p) with p the mean token probability."""
    return (avg_chosen - avg_rejected) - (log1mexp(avg_chosen) - log1mexp(avg_rejected))


class ReferenceFreeObjective:
    """SimPO or ORPO on the shared `Trainer`; `cfg` is a `DPOConfig` with loss_type simpo | orpo."""

    def __init__(self, pad_id: int, cfg):
        if cfg.loss_type not in REFERENCE_FREE:
            raise ValueError(f"'{cfg.loss_type}' needs a reference model: use DPOObjective")
        self.pad_id, self.cfg = pad_id, cfg

    def collate(self, examples) -> dict:
        return collate_pairs(examples, self.pad_id, self.cfg.share_prompt)

    def loss(self, model, batch):
        cfg = self.cfg
        tok = token_logps(model, batch)
        pc, pr = sequence_logps(model, batch, tok)
        avg_c = pc / batch["n_chosen"].to(pc.device).clamp(min=1)
        avg_r = pr / batch["n_rejected"].to(pr.device).clamp(min=1)
        nll = -tok[batch["seq"] < len(pc)].mean()  # chosen response tokens (ORPO's SFT term)
        if cfg.loss_type == "simpo":
            pref = simpo_losses(avg_c.float(), avg_r.float(), cfg.beta, cfg.simpo_gamma, cfg.label_smoothing).mean()
            loss = pref + cfg.sft_alpha * nll if cfg.sft_alpha else pref
            margin = avg_c - avg_r
        else:
            log_odds = orpo_log_odds(avg_c.float(), avg_r.float())
            pref = -cfg.beta * F.logsigmoid(log_odds).mean()
            loss = nll + pref
            margin = log_odds
        with torch.no_grad():
            metrics = {
                f"{cfg.loss_type}_loss": pref.item(), "sft_nll": nll.item(),
                # rewards as TRL logs them: beta * average log-prob
                "reward_chosen": (cfg.beta * avg_c).mean().item(), "reward_rejected": (cfg.beta * avg_r).mean().item(),
                "reward_accuracy": (avg_c > avg_r).float().mean().item(), "reward_margin": margin.mean().item(),
                "logps_chosen": pc.mean().item(), "logps_rejected": pr.mean().item(),
                "response_len": (batch["n_chosen"].float().mean().item() + batch["n_rejected"].float().mean().item()) / 2,
                "n_tokens": batch["n_tokens"],
            }
        return loss, metrics
