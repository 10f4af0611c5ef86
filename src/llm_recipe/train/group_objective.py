"""What the critic-free group algorithms (GRPO, RLOO, REINFORCE++) share as `RLObjective`s: no
value model, rollouts laid out prompt-major in groups of `group_size` (rows [g*G, (g+1)*G) are the
G samples of one prompt; groups stay whole on one process), no state between iterations."""

from __future__ import annotations

import numpy as np

from .rl_loop import RL_PLOT_KEYS, prompt_batch


class GroupObjective:
    value_kind = "none"
    plot_keys = RL_PLOT_KEYS

    def __init__(self, cfg):
        self.cfg = cfg

    def value_module(self) -> None:
        return None

    def rollout_indices(self, n_prompts: int, seed: int, it: int) -> np.ndarray:
        G = self.cfg.group_size
        return np.repeat(prompt_batch(n_prompts, self.cfg.rollout_batch_size // G, seed, it), G)

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        """No state between iterations (no adaptive KL coefficient): nothing to restore."""
