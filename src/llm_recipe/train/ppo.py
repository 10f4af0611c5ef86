"""RLHF with PPO: policy, frozen reference, frozen reward (model or rules), value head / critic.

The rollout -> score -> update loop is `rl_loop.RLTrainer` (shared with GRPO); PPO supplies its
`RLObjective` (all the arithmetic is in `rl_math`):
  prepare   r_t = -kl_coef * KL_t (k1/k2/k3), the score added at the last token; GAE (gamma,
            lambda) over the values of the rollout; advantages whitened over the whole batch (all
            processes)
  loss      clipped surrogate (or the KL-penalty objective) + vf_coef * clipped value loss
            - ent_coef * entropy
  end       the adaptive KL controller moves `kl_coef` toward `kl_target` (with the KL over all
            processes, so every process keeps the same coefficient)
The value model is a zero-initialised head on the policy's last hidden state, or a separate
critic (`value_model: reward_model`, initialised from the reward model).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..config import PPOConfig
from .rl_loop import RL_PLOT_KEYS, RLResult, RLSetup, RLTrainer, critic_values, prompt_batch
from .rl_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    gae,
    kl_penalty_policy_loss,
    masked_mean,
    masked_whiten,
    shaped_rewards,
)

__all__ = ["PPOObjective", "ValueHead", "critic_values", "load_critic", "run_ppo"]

class ValueHead(torch.nn.Module):
    """Scalar value per position on the policy's last hidden state (zero-initialised: V=0 at start)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.v = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.v.weight)
        torch.nn.init.zeros_(self.v.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.v(h.float()).squeeze(-1)


def load_critic(path: str | os.PathLike) -> torch.nn.Module:
    """A critic initialised from a reward model directory (or any causal LM dir: fresh score head)."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)


class PPOObjective:
    name = "PPO"
    plot_keys = RL_PLOT_KEYS

    def __init__(self, cfg: PPOConfig, hidden_size: int, critic: torch.nn.Module | None = None):
        self.cfg = cfg
        if cfg.value_model == "head":
            self.value_kind, self.value = "head", ValueHead(hidden_size)
        else:
            if critic is None:
                raise ValueError("value_model 'reward_model' needs a critic (load_critic(reward model dir))")
            self.value_kind, self.value = "critic", critic
        self.kl_ctl = AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)

    def value_module(self) -> torch.nn.Module:
        return self.value

    def rollout_indices(self, n_prompts: int, seed: int, it: int) -> np.ndarray:
        return prompt_batch(n_prompts, self.cfg.rollout_batch_size, seed, it)

    def prepare(self, loop: RLTrainer, r, scores, keep, old, ref_logp) -> dict:
        cfg = self.cfg
        mask = r.response_mask.to(scores.device) * keep[:, None]
        rewards, kl = shaped_rewards(scores, old["logp"], ref_logp, mask, self.kl_ctl.beta, cfg.kl_estimator)
        adv, returns = gae(rewards, old["values"], mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            adv = masked_whiten(adv, mask, sum_fn=loop.sum if loop.world > 1 else None)
        return {"mask": mask, "kept": keep, "old_logp": old["logp"], "old_values": old["values"], "adv": adv,
                "returns": returns, "kl": kl}

    def loss(self, cur, data, i, n_rows):
        cfg, m = self.cfg, data["mask"][i]
        if cfg.objective == "clip":
            pg, pst = clipped_policy_loss(cur["logp"], data["old_logp"][i], data["adv"][i], m, cfg.clip_eps)
        else:
            pg, pst = kl_penalty_policy_loss(cur["logp"], data["old_logp"][i], data["adv"][i], m, cfg.penalty_beta)
        vf, vst = clipped_value_loss(cur["values"], data["old_values"][i], data["returns"][i], m, cfg.vf_clip)
        ent = masked_mean(cur["entropy"], m)
        loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
        return loss, {"pg_loss": pg.item(), "vf_loss": vf.item(), "entropy": ent.item(),
                      **{k: float(v) for k, v in {**pst, **vst}.items()}}

    def end_iteration(self, loop: RLTrainer, data) -> dict[str, float]:
        mask = data["mask"]
        # KL per sequence over the kept rows (of every process): what the controller sees
        row_kl = (data["kl"] * mask).sum(1)[data["kept"]]
        if loop.world == 1:
            seq_kl, n = float(row_kl.mean()), len(row_kl)
        else:
            total, n = loop.sum(torch.stack([row_kl.sum(), torch.tensor(float(len(row_kl)))])).tolist()
            seq_kl = total / max(n, 1.0)
        self.kl_ctl.update(seq_kl, int(n))
        return {"kl": seq_kl, "kl_coef": self.kl_ctl.beta,
                "explained_var": explained_variance(data["old_values"], data["returns"], mask)}

    def state(self) -> dict:
        return {"kl_coef": self.kl_ctl.beta}

    def load_state(self, state: dict) -> None:
        self.kl_ctl.beta = state["kl_coef"]


def run_ppo(s: RLSetup, cfg: PPOConfig, output_dir: str | os.PathLike, seed: int = 0, *,
            critic: torch.nn.Module | None = None, full_config=None, save: bool = True,
            callbacks=()) -> RLResult:
    """Train `s.policy` with PPO (resuming from the run's latest checkpoint); returns before/after
    held-out evaluations and per-iteration metrics. `critic`: the separate value model for
    `value_model='reward_model'` (see `load_critic`)."""
    torch.manual_seed(seed)
    objective = PPOObjective(cfg, s.policy.config.hidden_size, critic)
    trainer = RLTrainer(s, objective, cfg, Path(output_dir), seed, full_config=full_config, callbacks=callbacks)
    return trainer.fit(save)
