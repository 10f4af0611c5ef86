"""The RL algorithms of the shared loop, each registered once: name -> its objective.

    ALGORITHMS[name](cfg, setup, critic)   the `RLObjective` of recipe section `name`
                                           (config.RL_SECTIONS holds its settings class)
    run_rl(name, setup, cfg, out, seed)    train with it on `rl_loop.RLTrainer`

ppo (value head / critic, GAE), grpo (group-normalised advantages, optional GSPO sequence ratio),
rloo (leave-one-out baseline, TRL's RLOOTrainer loss), reinforce_pp (REINFORCE++ and its group
baseline variant). The critic-free ones sample groups of `group_size` per prompt and take DAPO's
dynamic sampling (`dynamic_sampling`); all take `mask_truncated` (DAPO's overlong filtering).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import RL_SECTIONS, RLConfig
from .grpo import GRPOObjective
from .ppo import PPOObjective
from .reinforce_pp import ReinforcePPObjective
from .rl_loop import RLResult, RLSetup, RLTrainer
from .rloo import RLOOObjective, check_groups

ALGORITHMS: dict[str, Callable] = {
    "ppo": lambda cfg, s, critic=None: PPOObjective(cfg, s.policy.config.hidden_size, critic),
    "grpo": lambda cfg, s, critic=None: GRPOObjective(cfg),
    "rloo": lambda cfg, s, critic=None: RLOOObjective(cfg),
    "reinforce_pp": lambda cfg, s, critic=None: ReinforcePPObjective(cfg),
}
if set(ALGORITHMS) != set(RL_SECTIONS):  # one list of algorithms: the config's sections and these objectives
    raise ImportError(f"RL algorithms {sorted(ALGORITHMS)} and config sections {sorted(RL_SECTIONS)} differ")


def run_rl(name: str, s: RLSetup, cfg: RLConfig, output_dir: str | os.PathLike, seed: int = 0, *,
           critic: torch.nn.Module | None = None, full_config=None, save: bool = True, callbacks=()) -> RLResult:
    """Train `s.policy` with algorithm `name` (resuming from the run's latest checkpoint)."""
    group = getattr(cfg, "group_size", None)
    if group is not None and cfg.rollout_batch_size % group:
        raise ValueError(f"{name}.rollout_batch_size ({cfg.rollout_batch_size}) must be a multiple of "
                         f"{name}.group_size ({group})")
    torch.manual_seed(seed)
    trainer = RLTrainer(s, ALGORITHMS[name](cfg, s, critic), cfg, Path(output_dir), seed, full_config=full_config,
                        callbacks=callbacks)
    if group is not None:
        check_groups(trainer, group, name)
    return trainer.fit(save)
