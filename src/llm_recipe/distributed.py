"""Several processes (`accelerate launch` / `torchrun`): who does what, and waiting for each other.

Training runs on every process (the loops shard the data by rank). Everything else a stage does
(curation, tokenizer training, sampling, evaluation, writing reports) runs on the main process
while the others wait; its result is then broadcast, so every process continues with the same
values. One process (no launcher) is the same code with every call a no-op.

    world_size(), is_main()   from the launcher's environment (no process group needed)
    barrier()                 every process waits here
    on_main(fn, *args)        `fn` on the main process only; its result (or its error) on all
    @main_process_only        the same for every call of a function
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from .console import is_main_process

T = TypeVar("T")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return is_main_process()


def has_accelerator() -> bool:
    """A CUDA / MPS / XPU device to compute on (else the processes compute on the CPU)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


def process_state():
    """accelerate's process state: the process group (gloo on CPU, NCCL on CUDA) and this
    process's device; created once, on first use. (accelerate forms a CPU process group only
    when asked for the CPU, so a machine without an accelerator asks for it.)"""
    from accelerate import PartialState

    state = PartialState(cpu=not has_accelerator())
    if not _SHUTDOWN_REGISTERED:
        atexit.register(leave_process_group)
        _SHUTDOWN_REGISTERED.append(True)
    return state


_SHUTDOWN_REGISTERED: list[bool] = []


def leave_process_group() -> None:
    """At exit, the ranks leave the process group together: a rank whose peer is already gone while
    gloo still holds its connections can abort (SIGABRT) in gloo's teardown."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        process_state().wait_for_everyone()


def on_main(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` on the main process; every process returns its result. An error on the main
    process is raised on every process (the others would otherwise wait forever)."""
    if world_size() == 1:
        return fn(*args, **kwargs)
    from accelerate.utils import broadcast_object_list

    state = process_state()
    box: list[Any] = [None]
    if state.is_main_process:
        try:
            box = [("ok", fn(*args, **kwargs))]
        except Exception as e:  # noqa: BLE001 - re-raised on every process below
            try:
                pickle.dumps(e)
                box = [("error", e)]
            except Exception:  # noqa: BLE001 - an error that cannot travel: its text does
                box = [("error", RuntimeError(f"{type(e).__name__}: {e}"))]
    broadcast_object_list(box, from_process=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def main_process_only(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: every call runs `fn` on the main process and returns its result everywhere."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return on_main(fn, *args, **kwargs)

    return wrapper
