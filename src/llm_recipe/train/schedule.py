"""Learning-rate schedule: linear warmup then cosine decay to a floor.

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
