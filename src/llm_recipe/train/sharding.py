"""Data-parallel training over several processes: a full replica per process (DDP, through
accelerate) or the model sharded across them (torch FSDP2, `compute.fsdp`).

FSDP2 (`fully_shard`) shards every decoder block (the classes a transformers model lists in
`_no_split_modules`) and the root, so each process holds 1/N of the parameters, gradients and
optimizer state and gathers one block's weights at a time. It runs on CUDA and, with gloo, on the
CPU, which is how the test suite exercises it. accelerate's own FSDP plugin (`accelerate launch
--use_fsdp`) shards the same way on GPUs; both give FSDP2 modules, which the functions below read.

    shard_model(model, device)         fully_shard the blocks and the root (FSDP2)
    is_sharded(model)                  its parameters are DTensors (FSDP2, ours or accelerate's)
    gradient_sync(model, enabled)      skip the gradient all-reduce on accumulation micro-batches
    full_state_dicts(model, opt)       full (unsharded) model and optimizer state on rank 0, keyed
                                       by parameter name (collective: every process calls it)
    load_full_state_dicts(...)         the reverse, each process keeping its shard
"""

from __future__ import annotations

import contextlib

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)


def shard_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or [])
    if not blocks:
        raise ValueError(f"compute.fsdp: {type(model).__name__} names no decoder block class (_no_split_modules)")
    model.to(device)
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(next(model.parameters(), None), DTensor)


@contextlib.contextmanager
def gradient_sync(model: torch.nn.Module, enabled: bool, accelerator=None):
    """No gradient all-reduce inside the block when `enabled` is False (gradient accumulation)."""
    if enabled:
        yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    elif accelerator is not None:
        with accelerator.no_sync(model):
            yield
    else:
        yield


_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _without_tied_copies(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A weight shared by several names (an LM head tied to the embedding) once, under its first
    name, as `save_pretrained` stores it (the gathered copies no longer share memory)."""
    seen: set[int] = set()
    core = getattr(model, "module", model)  # names without DDP's "module." (as the state dict has them)
    for name, p in core.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            sd.pop(name, None)
        seen.add(id(p))
    return sd


def full_model_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return _without_tied_copies(model, get_model_state_dict(model, options=_FULL))


def full_state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    model_sd, optim_sd = get_state_dict(model, optimizer, options=_FULL)
    return _without_tied_copies(model, model_sd), optim_sd


def load_full_state_dicts(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, model_sd: dict,
                          optim_sd: dict | None) -> None:
    """Every process passes the full dicts (read from the shared checkpoint); `strict=False`: tied
    weights (an LM head that is the embedding) are saved once."""
    opts = StateDictOptions(full_state_dict=True, strict=False)
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, model_sd, options=opts)
    else:
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd, options=opts)
