"""Stopping and checkpointing, the same in every training loop (the shared loop, the RL loop).

A stop is asked for by SIGTERM (a pre-empted job, a scheduler's time limit), by Ctrl-C (SIGINT:
the same graceful stop; a second Ctrl-C aborts at once) or by a callback (early stopping, a test
that simulates a crash). Several processes must stop at the same step,
so the request of any one is agreed on by all (one small all-reduce per step) before the loop
writes its checkpoint and returns; the same command resumes from it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence

import torch


class RunControl:
    """Mixed into a loop that has `accelerator`, `callbacks` and `save()`."""

    accelerator: object
    callbacks: Sequence[Callable]
    _stop_requested: bool = False

    def _handle_stop_signal(self, signum, _frame) -> None:
        self._stop_requested = True  # finish the current step, checkpoint, return
        if signum == signal.SIGINT:  # a second Ctrl-C is not patient: abort at once
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextlib.contextmanager
    def sigterm_stops(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the loop gracefully (checkpoint first) while it runs."""
        prev = {s: signal.signal(s, self._handle_stop_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, handler in prev.items():
                signal.signal(s, handler)

    def _stop_agreed(self) -> bool:
        local = any([cb(self) for cb in self.callbacks]) or self._stop_requested
        if self.accelerator.num_processes == 1:
            return local
        flag = torch.tensor([float(local)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item())

    def checkpoint_or_stop(self, step: int, save_every: int | None) -> bool:
        """After a step: a checkpoint every `save_every` steps; True (after a checkpoint) when a stop
        was asked for on any process."""
        if save_every and step % save_every == 0:
            self.save()
        if self._stop_agreed():
            self.save()
            return True
        return False
