"""The critic-free algorithms of the shared RL loop that have no `run_*` of their own: name -> objective.

    OBJECTIVES[name](cfg)                  the `RLObjective` of recipe section `name` (rloo, reinforce_pp)
    run_objective(name, setup, cfg, out, seed)   train with it on `rl_loop.RLTrainer`

rloo (leave-one-out baseline, TRL's RLOOTrainer loss), reinforce_pp (REINFORCE++ and its group
baseline variant). PPO (`ppo.run_ppo`, value model) and GRPO (`grpo.run_grpo`, optional GSPO
sequence ratio) keep their own entry points; `stages.rl.ALGORITHMS` has one row for every algorithm.
The group algorithms sample groups of `group_size` per prompt and take DAPO's dynamic sampling
(`dynamic_sampling`); all take `mask_truncated` (DAPO's overlong filtering).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import RLConfig
from .reinforce_pp import ReinforcePPObjective
from .rl_loop import RLResult, RLSetup, RLTrainer
from .rloo import RLOOObjective, check_groups

OBJECTIVES: dict[str, Callable] = {"rloo": RLOOObjective, "reinforce_pp": ReinforcePPObjective}


def run_objective(name: str, s: RLSetup, cfg: RLConfig, output_dir: str | os.PathLike, seed: int = 0, *,
                  full_config=None, save: bool = True, callbacks=()) -> RLResult:
    """Train `s.policy` with algorithm `name` of `OBJECTIVES` (resuming from the run's latest checkpoint)."""
    group = cfg.group_size
    if cfg.rollout_batch_size % group:
        raise ValueError(f"{name}.rollout_batch_size ({cfg.rollout_batch_size}) must be a multiple of "
                         f"{name}.group_size ({group})")
    torch.manual_seed(seed)
    trainer = RLTrainer(s, OBJECTIVES[name](cfg), cfg, Path(output_dir), seed, full_config=full_config,
                        callbacks=callbacks)
    check_groups(trainer, group, name)
    return trainer.fit(save)
