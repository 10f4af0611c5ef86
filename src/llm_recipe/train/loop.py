"""The one training loop every algorithm shares (pretraining, SFT, reward model, DPO, ...).

An algorithm plugs in an `Objective`: how to turn examples into a batch (`collate`) and how
to compute a loss and metrics from a batch (`loss`). Everything else lives here once:
data order, gradient accumulation, clipping, the LR schedule, evaluation, metrics logging,
checkpoints and exact resume, and `accelerate` for devices, mixed precision and DDP/FSDP
(`accelerate launch` runs this file's loop unchanged on several devices).

Exact resume: the data order is a pure function of (seed, epoch), the LR a pure function of
the step, and the checkpoint carries optimizer and RNG states, so a run interrupted at step
k and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..config import TrainConfig
from .checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from .metrics_log import MetricsLog
from .schedule import cosine_with_warmup


class Objective(Protocol):
    """What an algorithm supplies to the shared loop."""

    def collate(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        """Turn a list of dataset items into a batch of tensors (on CPU)."""
        ...

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar loss to minimise and metrics to log. Metrics may include
        `n_tokens` (used to token-weight evaluation averages)."""
        ...


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # global batches of this epoch already consumed
    tokens: int = 0
    best_eval_loss: float | None = None
    history: list[dict] = field(default_factory=list)  # eval results so far


def length_grouped_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int,
                           seed: Sequence[int] = (0,), megabatch: int = 50) -> list[np.ndarray]:
    """Cut a shuffled order into batches of similar-length items (less padding), still random.

    Standard recipe (as transformers' `group_by_length`): split the order into megabatches of
    `megabatch` batches, sort each megabatch by length, cut it into batches, then shuffle the batch
    order with `seed`. Only full batches are returned.
    """
    n_full = len(order) // batch_size
    span = megabatch * batch_size
    batches = []
    for m in range(0, n_full * batch_size, span):
        chunk = order[m : min(m + span, n_full * batch_size)]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = np.random.default_rng(list(seed)).permutation(len(batches))
    return [batches[i] for i in perm]


# A callback sees the trainer after each optimizer step; returning True asks the loop to
# save a checkpoint and stop (preemption, early stopping, tests that simulate a crash).
StepCallback = Callable[["Trainer"], bool | None]


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        objective: Objective,
        train_data: Sequence[Any],
        cfg: TrainConfig,
        output_dir: str | Path,
        *,
        eval_data: Sequence[Any] | None = None,
        seed: int = 0,
        callbacks: Sequence[StepCallback] = (),
        keep_checkpoints: int = 2,
        accelerator: Accelerator | None = None,
        group_by_length: Sequence[int] | None = None,
    ):
        if len(train_data) == 0:
            raise ValueError("no training examples (after filtering): nothing to train on")
        self.cfg = cfg
        self.objective = objective
        self.train_data = train_data
        self.eval_data = eval_data
        self.seed = seed
        self.callbacks = list(callbacks)
        self.keep_checkpoints = keep_checkpoints
        self.output_dir = Path(output_dir)
        # Item lengths: batches are then drawn from similar lengths (see `length_grouped_batches`).
        self.lengths = np.asarray(group_by_length) if group_by_length is not None else None
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.accelerator = accelerator or Accelerator(mixed_precision=cfg.mixed_precision)
        self.is_main = self.accelerator.is_main_process
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index

        decay, no_decay = [], []
        for p in model.parameters():
            if p.requires_grad:
                # Standard practice: no weight decay on norms, biases (1-D tensors).
                (decay if p.ndim >= 2 else no_decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=cfg.betas,
            # One fused kernel per step instead of a loop over parameters (CPU and CUDA).
            fused=_fused_adamw_supported(model),
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.state = TrainerState()
        self.log = MetricsLog(self.output_dir / "metrics.jsonl", enabled=self.is_main)
        self._stop_requested = False

    # ---- data order -------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Global batches (index arrays) of an epoch; a pure function of (seed, epoch)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train_data))
        global_bs = self.cfg.batch_size * self.world
        n_full = len(order) // global_bs
        if n_full == 0:
            raise ValueError(
                f"{len(self.train_data)} training examples is fewer than one batch "
                f"({self.cfg.batch_size} x {self.world} processes)"
            )
        # The incomplete last batch is dropped (counted in `dropped_per_epoch`), so every
        # step sees the same batch size and the loss scale does not jump once per epoch.
        if self.lengths is not None:
            return length_grouped_batches(order, self.lengths, global_bs, seed=[self.seed, epoch, 1])
        return [order[i * global_bs : (i + 1) * global_bs] for i in range(n_full)]

    @property
    def dropped_per_epoch(self) -> int:
        return len(self.train_data) % (self.cfg.batch_size * self.world)

    def _micro_batches(self):
        """Yield this process's micro-batches from the current data position, forever."""
        while True:
            batches = self._epoch_batches(self.state.epoch)
            while self.state.batch_in_epoch < len(batches):
                idx = batches[self.state.batch_in_epoch]
                self.state.batch_in_epoch += 1
                mine = idx[self.rank :: self.world]
                yield self.objective.collate([self.train_data[int(i)] for i in mine])
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    # ---- checkpoints ------------------------------------------------------------------
    def save(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        if not self.is_main:
            return None
        state = {k: v for k, v in vars(self.state).items()}
        path = self.output_dir / "checkpoints" / f"step-{self.state.step:07d}"
        save_checkpoint(path, self.accelerator.unwrap_model(self.model), self.optimizer.optimizer, state)
        prune_checkpoints(self.output_dir, self.keep_checkpoints)
        return path

    def resume(self, checkpoint: str | Path | None = "latest") -> bool:
        """Restore from a checkpoint dir, or the run's latest one; False if there is none."""
        path = latest_checkpoint(self.output_dir) if checkpoint == "latest" else Path(checkpoint) if checkpoint else None
        if path is None:
            return False
        st = load_checkpoint(path, self.accelerator.unwrap_model(self.model), self.optimizer.optimizer)
        self.state = TrainerState(**st)
        self.log.truncate_after(self.state.step)
        return True

    # ---- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.eval_data:
            return {}
        self.model.eval()
        bs = self.cfg.batch_size
        n_batches = min(self.cfg.eval_batches, math.ceil(len(self.eval_data) / bs))
        totals: dict[str, float] = {}
        weight = 0.0
        for b in range(self.rank, n_batches, self.world):
            batch = self._to_device(self.objective.collate(list(self.eval_data[b * bs : (b + 1) * bs])))
            with self.accelerator.autocast():
                loss, metrics = self.objective.loss(self.model, batch)
            # Token-level mean: weight by the tokens that carry a loss when the batch says so.
            w = float(batch["loss_tokens"]) if "loss_tokens" in batch else float(metrics.get("n_tokens", 1.0))
            weight += w
            totals["loss"] = totals.get("loss", 0.0) + loss.item() * w
            for k, v in metrics.items():
                if k != "n_tokens":
                    totals[k] = totals.get(k, 0.0) + float(v) * w
        summed = self.accelerator.reduce(torch.tensor([weight, *totals.values()], dtype=torch.float64,
                                                      device=self.accelerator.device), reduction="sum")
        weight, *vals = summed.tolist()
        out = {f"eval_{k}": v / max(weight, 1e-12) for k, v in zip(totals.keys(), vals, strict=True)}
        if "eval_loss" in out:
            out["eval_ppl"] = math.exp(min(out["eval_loss"], 50.0))
        self.model.train()
        return out

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _token_weights(self, micro_batches: list[dict]) -> list[float] | None:
        """Loss weights of a step's micro-batches when they carry `loss_tokens` (else None: each
        micro-batch counts 1/grad_accum). Each micro-batch loss is a mean over its own tokens;
        weighting by its share of the step's tokens (over all processes: DDP averages gradients)
        makes the step minimise the mean over all its tokens, not a mean of per-batch means that
        over-weights batches with few trained tokens."""
        if not all("loss_tokens" in b for b in micro_batches):
            return None
        counts = [float(b["loss_tokens"]) for b in micro_batches]
        total = sum(counts)
        if self.world > 1:
            t = torch.tensor(total, dtype=torch.float64, device=self.accelerator.device)
            total = self.accelerator.reduce(t, reduction="sum").item() / self.world
        return [c / max(total, 1.0) for c in counts]

    # ---- the loop ---------------------------------------------------------------------
    def _handle_sigterm(self, *_):
        self._stop_requested = True  # finish the current step, checkpoint, exit cleanly

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        prev_handler = signal.signal(signal.SIGTERM, self._handle_sigterm) if self.is_main else None
        self.model.train()
        batches = self._micro_batches()
        # disable=None: no bar when stdout is not a terminal (CI logs), and only on the main process.
        bar = tqdm(total=cfg.max_steps, initial=self.state.step, disable=None if self.is_main else True,
                   desc="train", dynamic_ncols=True)
        if self.state.step == 0 and self.eval_data:
            ev = self.evaluate()
            self.state.history.append({"step": 0, **ev})
            self.log.write({"step": 0, **ev})
        window_t, window_tokens, stopped_early = time.perf_counter(), 0, False
        try:
            while self.state.step < cfg.max_steps:
                lr = cosine_with_warmup(self.state.step, lr=cfg.lr, warmup_steps=cfg.warmup_steps,
                                        max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                step_metrics: dict[str, float] = {}
                micro_batches = [next(batches) for _ in range(cfg.grad_accum)]
                weights = self._token_weights(micro_batches)
                for micro, batch in enumerate(micro_batches):
                    batch = self._to_device(batch)
                    # Only the last micro-batch all-reduces gradients under DDP.
                    sync = micro == cfg.grad_accum - 1
                    ctx = self.accelerator.no_sync(self.model) if not sync else contextlib.nullcontext()
                    with ctx, self.accelerator.autocast():
                        loss, metrics = self.objective.loss(self.model, batch)
                        if not torch.isfinite(loss):
                            raise FloatingPointError(
                                f"non-finite loss ({loss.item()}) at step {self.state.step}: stopping "
                                "instead of training on NaN (lower lr, check data)"
                            )
                        self.accelerator.backward(loss * weights[micro] if weights else loss / cfg.grad_accum)
                    part = loss.item() * weights[micro] if weights else loss.item() / cfg.grad_accum
                    step_metrics["loss"] = step_metrics.get("loss", 0.0) + part
                    for k, v in metrics.items():
                        step_metrics[k] = step_metrics.get(k, 0.0) + float(v) / (1 if k == "n_tokens" else cfg.grad_accum)
                    window_tokens += int(metrics.get("n_tokens", 0))
                if cfg.max_grad_norm:
                    gn = self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    step_metrics["grad_norm"] = float(gn)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.state.step += 1
                self.state.tokens += int(step_metrics.get("n_tokens", 0)) * self.world
                bar.update(1)
                bar.set_postfix(loss=f"{step_metrics['loss']:.3f}", lr=f"{lr:.2e}")

                if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_steps:
                    dt = time.perf_counter() - window_t
                    rec = {"step": self.state.step, "lr": lr, **step_metrics,
                           "tokens_per_s": window_tokens * self.world / max(dt, 1e-9)}
                    self.log.write(rec)
                    window_t, window_tokens = time.perf_counter(), 0
                if self.eval_data and (self.state.step % cfg.eval_every == 0 or self.state.step == cfg.max_steps):
                    ev = self.evaluate()
                    self.state.history.append({"step": self.state.step, **ev})
                    if "eval_loss" in ev and (self.state.best_eval_loss is None or ev["eval_loss"] < self.state.best_eval_loss):
                        self.state.best_eval_loss = ev["eval_loss"]
                    self.log.write({"step": self.state.step, **ev})
                    bar.write(f"step {self.state.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in ev.items()))
                if cfg.save_every and self.state.step % cfg.save_every == 0:
                    self.save()
                if any(cb(self) for cb in self.callbacks) or self._stop_requested:
                    self.save()
                    stopped_early = True
                    break
        finally:
            bar.close()
            if prev_handler is not None:
                signal.signal(signal.SIGTERM, prev_handler)
        return {"step": self.state.step, "tokens": self.state.tokens, "stopped_early": stopped_early,
                "history": self.state.history, "dropped_examples_per_epoch": self.dropped_per_epoch}

    def unwrapped_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)


def _fused_adamw_supported(model: torch.nn.Module) -> bool:
    p = next(model.parameters())
    return p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16, torch.float16)


def stop_at_step(step: int) -> StepCallback:
    """Callback that stops (with a checkpoint) once `step` optimizer steps are done."""
    return lambda trainer: trainer.state.step >= step
