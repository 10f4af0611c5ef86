"""The optimizer every trainer uses (the shared loop, PPO, GRPO): AdamW over the trainable
parameters, no weight decay on norms and biases (1-D tensors), fused into one kernel per step where
torch has one (CPU and CUDA, fp32/bf16/fp16, not sharded DTensors); the LR is set per step from
`schedule.scheduled_lr` (a function of the step: nothing to resume)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..config import OptimConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    first = (decay + no_decay)[0]
    fused = (first.device.type in ("cpu", "cuda") and first.dtype in (torch.float32, torch.bfloat16, torch.float16)
             and type(first).__name__ != "DTensor")
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
