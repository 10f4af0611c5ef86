"""Learning-rate schedules: linear warmup, then cosine decay to a floor (the default), linear decay
to the floor (TRL's / transformers' default shape), or constant.

A pure function of the step (as in nanoGPT), so resuming needs no scheduler state at all:
the LR after a resume is the LR an uninterrupted run would have used, by construction.
"""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """LR for optimizer step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = lr * min_lr_ratio
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))


def linear_with_warmup(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return lr - (lr - lr * min_lr_ratio) * progress


def constant_with_warmup(step: int, *, lr: float, warmup_steps: int, **_decay) -> float:
    return lr * (step + 1) / warmup_steps if warmup_steps > 0 and step < warmup_steps else lr


SCHEDULES = {"cosine": cosine_with_warmup, "linear": linear_with_warmup, "constant": constant_with_warmup}


def scheduled_lr(step: int, cfg, max_steps: int) -> float:
    """The LR of `step` under the section's `scheduler` (an `OptimConfig`)."""
    ratio = getattr(cfg, "warmup_ratio", None)
    warmup = math.ceil(ratio * max_steps) if ratio is not None else cfg.warmup_steps  # TRL rounds up too
    return SCHEDULES[cfg.scheduler](step, lr=cfg.lr, warmup_steps=warmup, max_steps=max_steps,
                                    min_lr_ratio=cfg.min_lr_ratio)
