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

from ..config import RLConfig
from .group_objective import run_group
from .reinforce_pp import ReinforcePPObjective
from .rl_loop import RLResult, RLSetup
from .rloo import RLOOObjective

OBJECTIVES: dict[str, Callable] = {"rloo": RLOOObjective, "reinforce_pp": ReinforcePPObjective}


def run_objective(name: str, s: RLSetup, cfg: RLConfig, output_dir: str | os.PathLike, seed: int = 0, *,
                  full_config=None, save: bool = True, callbacks=()) -> RLResult:
    """Train `s.policy` with algorithm `name` of `OBJECTIVES` (resuming from the run's latest checkpoint)."""
    return run_group(name, OBJECTIVES[name](cfg), s, cfg, output_dir, seed, full_config=full_config, save=save,
                     callbacks=callbacks)
