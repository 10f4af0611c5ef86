"""REINFORCE++ (Hu 2025) and REINFORCE++-baseline, as OpenRLHF's `advantage_estimator` reinforce /
reinforce_baseline: no critic, no group normalisation of the reward.

  prepare   baseline 'group' (REINFORCE++-baseline): the score minus its group's mean score;
            per-token rewards r_t = -kl_coef * KL_t (k1/k2/k3 to the reference), the score added at
            the last token; returns G_t = sum_{s>=t} gamma^(s-t) r_s; advantages = the returns
            whitened over every response token of the batch (all processes): the global
            normalisation that replaces GRPO's per-prompt one
  loss      PPO's clipped surrogate, token mean (`rl_math.clipped_policy_loss`) - ent_coef * entropy

With `group_size: 1` it is plain REINFORCE++ (one sample per prompt).
"""

from __future__ import annotations

from ..config import ReinforcePPConfig
from .group_objective import GroupObjective
from .rl_loop import RLTrainer
from .rl_math import (
    clipped_policy_loss,
    discounted_returns,
    masked_mean,
    masked_whiten,
    shaped_rewards,
)


def group_baseline(scores, keep, group_size: int):
    """Each score minus the mean score of the kept rows of its group."""
    s, k = scores.view(-1, group_size), keep.view(-1, group_size).to(scores.dtype)
    mean = (s * k).sum(1, keepdim=True) / k.sum(1, keepdim=True).clamp(min=1)
    return (s - mean).view(-1)


class ReinforcePPObjective(GroupObjective):
    name = "REINFORCE++"
    cfg: ReinforcePPConfig

    def prepare(self, loop: RLTrainer, r, scores, keep, old, ref_logp) -> dict:
        cfg = self.cfg
        mask = r.response_mask.to(scores.device) * keep[:, None]
        if cfg.baseline == "group":
            lo, hi = loop.rank * loop.rows, (loop.rank + 1) * loop.rows
            scores = group_baseline(loop.gather(scores), loop.gather(keep), cfg.group_size)[lo:hi]
        rewards, kl = shaped_rewards(scores, old["logp"], ref_logp, mask, cfg.kl_coef, cfg.kl_estimator)
        returns = discounted_returns(rewards, mask, cfg.gamma)
        adv = masked_whiten(returns, mask, sum_fn=loop.sum if loop.world > 1 else None)
        return {"mask": mask, "kept": keep, "adv": adv, "old_logp": old["logp"], "kl": kl}

    def loss(self, cur, data, i, n_rows):
        cfg, m = self.cfg, data["mask"][i]
        pg, st = clipped_policy_loss(cur["logp"], data["old_logp"][i], data["adv"][i], m, cfg.clip_eps)
        ent = masked_mean(cur["entropy"], m)
        loss = pg - cfg.ent_coef * ent
        return loss, {"loss": loss.item(), "entropy": ent.item(), **{k: float(v) for k, v in st.items()}}

    def end_iteration(self, loop: RLTrainer, data) -> dict[str, float]:
        row_kl = (data["kl"] * data["mask"]).sum(1)[data["kept"]]
        return {"kl": float(row_kl.mean()) if len(row_kl) else float("nan")}
