"""What the critic-free group algorithms (GRPO, RLOO, REINFORCE++) share as `RLObjective`s: no
value model, rollouts laid out prompt-major in groups of `group_size` (rows [g*G, (g+1)*G) are the
G samples of one prompt; groups stay whole on one process), no state between iterations.
`run_group` trains with one of them (`grpo.run_grpo`, `rl_algorithms.run_objective`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .rl_loop import RL_PLOT_KEYS, RLResult, RLSetup, RLTrainer, prompt_batch


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


def run_group(name: str, objective: GroupObjective, s: RLSetup, cfg, output_dir: str | os.PathLike, seed: int = 0,
              *, full_config=None, save: bool = True, callbacks=()) -> RLResult:
    """Train `s.policy` with a group objective (resuming from the run's latest checkpoint); groups of
    `group_size` must divide the batch and each process's share of it."""
    G = cfg.group_size
    if cfg.rollout_batch_size % G:
        raise ValueError(f"{name}.rollout_batch_size ({cfg.rollout_batch_size}) must be a multiple of "
                         f"{name}.group_size ({G})")
    torch.manual_seed(seed)
    trainer = RLTrainer(s, objective, cfg, Path(output_dir), seed, full_config=full_config, callbacks=callbacks)
    if trainer.rows % G:
        raise ValueError(f"{name}: each of the {trainer.world} processes samples {trainer.rows} responses, "
                         f"not a multiple of group_size {G} (groups must stay whole)")
    return trainer.fit(save)
