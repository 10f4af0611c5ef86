"""RLOO (REINFORCE Leave-One-Out, Ahmadian et al. 2024) as TRL's RLOOTrainer computes it.

  prepare   reward_i = score_i - beta * sum_t (log pi_old - log pi_ref)   (k1, the KL as a penalty
            in the reward, per sequence); baseline_i = mean of the other k-1 rewards of its group
            (over the scored siblings only); A_i = reward_i - baseline_i, optionally whitened over the
            batch; a completion no reward source scored gets A = 0 and no loss
  loss      sequence-level ratio rho_i = exp(sum_t log pi - sum_t log pi_old), clipped surrogate
            -min(rho A, clip(rho, 1-eps_low, 1+eps_high) A), mean over the completions
            (`rl_math.rloo_loss`, equal to TRL's `_compute_loss` on the same tokens)

The loop (rollouts in groups, checks, evaluation, checkpoints) is `rl_loop.RLTrainer`.
"""

from __future__ import annotations

from ..config import RLOOConfig
from .group_objective import GroupObjective
from .rl_loop import RLTrainer
from .rl_math import kl_estimate, leave_one_out_advantages, masked_mean, masked_sum, rloo_loss


class RLOOObjective(GroupObjective):
    name = "RLOO"
    cfg: RLOOConfig

    def prepare(self, loop: RLTrainer, r, scores, keep, old, ref_logp) -> dict:
        cfg = self.cfg
        mask = r.response_mask.to(scores.device) * keep[:, None]
        seq_kl = masked_sum(kl_estimate(old["logp"], ref_logp, "k1"), mask, 1)
        rewards = scores - cfg.beta * seq_kl
        lo, hi = loop.rank * loop.rows, (loop.rank + 1) * loop.rows
        adv = leave_one_out_advantages(loop.gather(rewards), loop.gather(keep), cfg.group_size,
                                       normalize=cfg.normalize_advantages)[lo:hi]
        return {"mask": mask, "kept": keep, "adv": adv, "old_logp": old["logp"], "ref_logp": ref_logp,
                "seq_kl": seq_kl}

    def loss(self, cur, data, i, n_rows):
        cfg, m = self.cfg, data["mask"][i]
        loss, st = rloo_loss(cur["logp"], data["old_logp"][i], data["adv"][i], m, eps_low=cfg.eps_low,
                             eps_high=cfg.eps_high)
        ent = masked_mean(cur["entropy"], m)
        loss = loss - cfg.ent_coef * ent
        return loss, {"loss": loss.item(), "entropy": ent.item(), **{k: float(v) for k, v in st.items()}}

    def end_iteration(self, loop: RLTrainer, data) -> dict[str, float]:
        return {"kl": float(data["seq_kl"][data["kept"]].mean()) if data["kept"].any() else float("nan")}

