"""GRPO: the RL loop without a value model (the memory-light variant).

Each iteration samples G responses for each of `rollout_batch_size / G` prompts (groups stay whole
on one process), scores them, and uses the group-normalized reward (r - mean_group) /
(std_group + 1e-4) as the advantage of every token of the response. The KL to the reference is a
term of the loss (k3, weight beta), not a reward shaping; the loss and its aggregation are TRL's
GRPOTrainer's (`rl_math.grpo_loss`), so a test can check both give the same number on the same
tokens. The loop (rollout, reward checks, evaluation, checkpoints) is `rl_loop.RLTrainer`.
"""

from __future__ import annotations

import os

import torch

from ..config import GRPOConfig
from .group_objective import GroupObjective, run_group
from .rl_loop import RLResult, RLSetup, RLTrainer
from .rl_math import group_advantages, grpo_loss, kl_estimate, masked_mean


class GRPOObjective(GroupObjective):
    name = "GRPO"
    old_logp_in_loss_only = True  # log pi_old: the ratio's denominator and the KL metric, nothing in `prepare`

    def __init__(self, cfg: GRPOConfig):
        super().__init__(cfg)
        self.needs_reference = cfg.beta != 0  # beta 0: no reference pass (and no KL metric), as in TRL

    def prepare(self, loop: RLTrainer, r, scores, keep, old, ref_logp) -> dict:
        cfg, G = self.cfg, self.cfg.group_size
        lo, hi = loop.rank * loop.rows, (loop.rank + 1) * loop.rows
        # The whole batch's rewards: group statistics (and 'batch' scaling) as one process sees them.
        adv = group_advantages(loop.gather(scores), G, cfg.scale_rewards)[lo:hi]
        # A group with a bad reward is masked whole: its mean/std would be wrong for the others.
        group_ok = keep.reshape(-1, G).all(1).repeat_interleave(G)
        n_dropped = int(loop.sum(torch.tensor(float((~group_ok).sum()) / G)).item())
        if n_dropped:
            loop.state["counts"]["dropped_groups"] = loop.state["counts"].get("dropped_groups", 0) + n_dropped
        mask = r.response_mask.to(scores.device) * group_ok[:, None]
        n_items = float(loop.sum(mask.sum())) / loop.world  # dapo: the token count a process normalises by
        return {"mask": mask, "kept": group_ok, "adv": adv, "old_logp": old["logp"], "ref_logp": ref_logp,
                "n_items": n_items}

    def loss(self, cur, data, i, n_rows):
        cfg, m = self.cfg, data["mask"][i]
        # dapo: each minibatch's token sum over the rollout's tokens, times the number of
        # minibatches, so one minibatch's loss has the scale of a token mean.
        loss, st = grpo_loss(cur["logp"], data["old_logp"][i], data["ref_logp"][i] if cfg.beta else None,
                             data["adv"][i], m, beta=cfg.beta, eps_low=cfg.eps_low, eps_high=cfg.eps_high,
                             loss_type=cfg.loss_type, max_completion_length=cfg.sampling.max_new_tokens,
                             num_items=data["n_items"] * len(i) / n_rows, importance_sampling=cfg.importance_sampling)
        ent = masked_mean(cur["entropy"], m)
        loss = loss - cfg.ent_coef * ent
        st.pop("kl", None)
        return loss, {"loss": loss.item(), "entropy": ent.item(), **{k: float(v) for k, v in st.items()}}

    def end_iteration(self, loop: RLTrainer, data) -> dict[str, float]:
        mask = data["mask"]
        if not self.needs_reference:
            return {"kl": float("nan")}
        row_kl = (kl_estimate(data["old_logp"], data["ref_logp"], "k1") * mask).sum(1)[data["kept"]]
        return {"kl": float(row_kl.mean())}


def run_grpo(s: RLSetup, cfg: GRPOConfig, output_dir: str | os.PathLike, seed: int = 0, *,
             full_config=None, save: bool = True, callbacks=()) -> RLResult:
    return run_group("grpo", GRPOObjective(cfg), s, cfg, output_dir, seed, full_config=full_config, save=save,
                     callbacks=callbacks)
