"""The one training loop every algorithm shares (pretraining, SFT, reward model, DPO, ...).

An algorithm plugs in an `Objective`: how to turn examples into a batch (`collate`) and how
to compute a loss and metrics from a batch (`loss`). Everything else lives here once:
data order, gradient accumulation, clipping, the LR schedule, evaluation, metrics logging,
checkpoints and exact resume, and `accelerate` for devices and mixed precision.

Several processes (`accelerate launch` / `torchrun`): each global batch is split by rank, and
gradients are averaged over the processes (DDP), or the model is sharded across them
(`compute.fsdp`, torch FSDP2). Every collective happens the same number of times on every rank:
evaluation pads the ranks that run out of batches with a zero-weight batch, a stop requested on
any rank (SIGTERM, a callback) is agreed on by all, and logged losses are the global means.

Exact resume: the data order is a pure function of (seed, epoch), the LR a pure function of
the step, and the checkpoint carries optimizer and RNG states, so a run interrupted at step
k and resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from .. import console, distributed
from ..config import ComputeConfig, TrainConfig
from ..files import lock_folder, write_complete
from ..models.placement import use_threads
from ..report.model_card import write_model_card
from .checkpoint import (
    kept_note,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    unwrap,
)
from .defaults import STAGE_OF, run_length_warning
from .metrics_log import MetricsLog
from .optimizer import build_optimizer, set_lr
from .run_control import RunControl
from .schedule import scheduled_lr
from .sharding import full_model_state_dict, gradient_sync, is_sharded, shard_model
from .tracking import plain_progress, prepare_tracking_env, start_trackers, tracking_dir


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
                           seed: Sequence[int] = (0,), megabatch: int = 50, min_last: int = 1) -> list[np.ndarray]:
    """Cut a shuffled order into batches of similar-length items (less padding), still random.

    Standard recipe (as transformers' `group_by_length`): split the order into megabatches of
    `megabatch` batches, sort each megabatch by length, cut it into batches, then shuffle the batch
    order with `seed`. The incomplete last batch is kept when it has at least `min_last` items
    (as transformers' `dataloader_drop_last=False`).
    """
    n = len(order) if len(order) % batch_size >= min_last else len(order) // batch_size * batch_size
    span = megabatch * batch_size
    batches = []
    for m in range(0, n, span):
        chunk = order[m : min(m + span, n)]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = np.random.default_rng(list(seed)).permutation(len(batches))
    return [batches[i] for i in perm]


# A callback sees the trainer after each optimizer step; returning True asks the loop to
# save a checkpoint and stop (preemption, early stopping, tests that simulate a crash).
StepCallback = Callable[["Trainer"], bool | None]


def make_accelerator(compute: ComputeConfig, report_to: Sequence[str] = (),
                     output_dir: str | Path | None = None) -> Accelerator:
    """An Accelerator for `compute`. accelerate keeps one process-wide state; a stage that asks for
    other mixed precision than the previous one resets it (the process group is kept)."""
    from accelerate.state import AcceleratorState

    cpu = compute.device == "cpu" or not distributed.has_accelerator()
    if AcceleratorState._shared_state:
        state = AcceleratorState()
        if state.mixed_precision != compute.mixed_precision or (cpu and state.device.type != "cpu"):
            AcceleratorState._reset_state(reset_partial_state=False)
    if report_to:
        prepare_tracking_env(output_dir, report_to)
        return Accelerator(mixed_precision=compute.mixed_precision, cpu=cpu, log_with=list(report_to),
                           project_dir=str(tracking_dir(output_dir)))
    return Accelerator(mixed_precision=compute.mixed_precision, cpu=cpu)


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each block's activations in backward (less memory, ~30% more compute)."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(core, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        core.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(core.config, "use_cache"):
        core.config.use_cache = False


class Trainer(RunControl):
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
        tokenizer=None,
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
        compute = cfg.compute
        use_threads(compute)
        self.accelerator = accelerator or make_accelerator(compute, cfg.report_to, output_dir)
        self.is_main = self.accelerator.is_main_process
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        if cfg.epochs is not None:  # epochs -> optimizer steps (global batches, grad accumulation)
            per_epoch = self.batches_per_epoch / cfg.grad_accum
            self.cfg = cfg = cfg.model_copy(update={"max_steps": max(1, math.ceil(cfg.epochs * per_epoch))})
        self.warnings = self._run_length_warnings(model)
        if compute.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if compute.compile:  # in place: the module, its parameter names and checkpoints stay as they are
            model.compile()
        if compute.fsdp and self.world > 1:
            if hasattr(model, "peft_config"):
                raise ValueError("compute.fsdp with LoRA is not supported: adapters are small, use DDP (fsdp: false)")
            if compute.mixed_precision == "fp16":
                raise ValueError("compute.fsdp runs bf16 or fp32 (fp16 needs a gradient scaler FSDP2 lacks here)")
            # Sharded first, then the optimizer over the shards (its state is sharded the same way).
            self.model = shard_model(model, self.accelerator.device)
            self.optimizer = build_optimizer(self.model.parameters(), cfg)
        else:
            optimizer = build_optimizer(model.parameters(), cfg)
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        if self.is_main:  # one run per folder: a second one fails here, naming the first one's PID
            lock_folder(self.output_dir)
        self.state = TrainerState()
        self.tokenizer = tokenizer  # saved into every checkpoint (a checkpoint loads on its own)
        sinks = (start_trackers(self.accelerator, cfg, self.output_dir), plain_progress(self.output_dir.name))
        self.log = MetricsLog(self.output_dir / "metrics.jsonl", enabled=self.is_main, sinks=[s for s in sinks if s])
        self._stop_requested = False

    @property
    def raw_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optimizer", self.optimizer)  # inside accelerate's wrapper

    def _run_length_warnings(self, model: torch.nn.Module) -> list[str]:
        """The resolved run too short to train (`defaults.run_length_warning`): one line, logged."""
        cfg = self.cfg
        stage = STAGE_OF.get(type(cfg).__name__, "train")
        n_params = sum(p.numel() for p in model.parameters())
        line = run_length_warning(stage, cfg, cfg.max_steps, len(self.train_data),
                                  self.batches_per_epoch / cfg.grad_accum, n_params, hasattr(model, "peft_config"))
        if line is None:
            return []
        if self.is_main:
            console.log(f"warning: {line}")
        return [line]

    # ---- data order -------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> Sequence[np.ndarray]:
        """Global batches (index arrays) of an epoch; a pure function of (seed, epoch)."""
        if hasattr(self.train_data, "epoch_batches"):  # streamed data orders itself, lazily (`shard_data`)
            return self.train_data.epoch_batches(seed=self.seed, epoch=epoch,
                                                 global_batch=self.cfg.batch_size * self.world)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.train_data))
        global_bs = self.cfg.batch_size * self.world
        if len(order) < self.world:
            raise ValueError(f"{len(self.train_data)} training examples is fewer than one per process ({self.world})")
        # The incomplete last batch is used (every item trains every epoch; the step's loss stays
        # a mean over its items or tokens, see `_loss_weights`), unless it has fewer items than
        # processes: then it is dropped and counted (`dropped_per_epoch`, in the stage's report).
        if self.lengths is not None:
            return length_grouped_batches(order, self.lengths, global_bs, seed=[self.seed, epoch, 1],
                                          min_last=self.world)
        n = len(order) - self.dropped_per_epoch
        return [order[i : min(i + global_bs, n)] for i in range(0, n, global_bs)]

    @property
    def dropped_per_epoch(self) -> int:
        rest = len(self.train_data) % (self.cfg.batch_size * self.world)
        if hasattr(self.train_data, "epoch_batches"):  # streamed windows: full batches only (`shard_data`)
            return rest
        return rest if rest < self.world else 0

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil((len(self.train_data) - self.dropped_per_epoch) / (self.cfg.batch_size * self.world))

    def _micro_batches(self):
        """Yield this process's micro-batches, as (batch, items in it), from the current data
        position, forever."""
        while True:
            batches = self._epoch_batches(self.state.epoch)
            while self.state.batch_in_epoch < len(batches):
                idx = batches[self.state.batch_in_epoch]
                self.state.batch_in_epoch += 1
                mine = idx[self.rank :: self.world]
                yield self.objective.collate([self.train_data[int(i)] for i in mine]), len(mine)
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    # ---- checkpoints and the final model ----------------------------------------------
    def save(self) -> Path | None:
        """A checkpoint of the current step (every process calls it; the main one writes)."""
        self.accelerator.wait_for_everyone()
        state = {k: v for k, v in vars(self.state).items()}
        path = self.output_dir / "checkpoints" / f"step-{self.state.step:07d}"
        save_checkpoint(path, self.model, self.raw_optimizer, state, is_main=self.is_main, tokenizer=self.tokenizer)
        if self.is_main:
            prune_checkpoints(self.output_dir, self.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return path if self.is_main else None

    def resume(self, checkpoint: str | Path | None = "latest") -> bool:
        """Restore from a checkpoint dir, or the run's latest one; False if there is none."""
        path = latest_checkpoint(self.output_dir) if checkpoint == "latest" else Path(checkpoint) if checkpoint else None
        if path is None:
            return False
        st = load_checkpoint(path, self.model, self.raw_optimizer)
        self.state = TrainerState(**st)
        self.log.truncate_after(self.state.step)
        return True

    def save_model(self, model_dir: str | Path, finalize: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
                   tokenizer=None, extra: Callable[[Path], None] | None = None) -> Path:
        """Save the trained model as an HF directory, all or nothing (`files.write_complete`;
        every process calls it, the main one writes, the others wait until it is there). `finalize`
        turns the unwrapped model into what is saved (LoRA merged, generation config set); `extra`
        writes more files into the folder before it is complete."""
        model_dir = Path(model_dir)
        full = full_model_state_dict(self.model) if is_sharded(self.model) else None  # collective
        if self.is_main:
            final = finalize(self.unwrapped_model()) if finalize else self.unwrapped_model()

            def write(d: Path) -> None:
                final.save_pretrained(d, state_dict=full, safe_serialization=True)
                if tokenizer is not None:
                    tokenizer.save_pretrained(d)
                if extra is not None:
                    extra(d)
                write_model_card(d, name=model_dir)

            write_complete(model_dir, write, kept=kept_note(self.output_dir))
        self.accelerator.wait_for_everyone()
        return model_dir

    # ---- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not self.eval_data:
            return {}
        self.model.eval()
        # `eval_batches` global batches, as in training: batch b is split over the ranks, rank r
        # taking items [b*bs*world + r*bs, ... + bs). Every rank runs the same number of forward
        # passes (a DDP/FSDP forward is a collective): a rank past the end of the data runs the
        # first items again with weight 0.
        bs = self.cfg.batch_size
        n_batches = min(self.cfg.eval_batches, math.ceil(len(self.eval_data) / (bs * self.world)))
        totals: dict[str, float] = {}
        weight = 0.0
        for b in range(n_batches):
            start = (b * self.world + self.rank) * bs
            real = start < len(self.eval_data)
            items = self.eval_data[start : start + bs] if real else self.eval_data[:bs]
            batch = self._to_device(self.objective.collate(list(items)))
            with self.accelerator.autocast():
                loss, metrics = self.objective.loss(self.model, batch)
            if not real:
                continue
            # Token-level mean: weight by the tokens that carry a loss when the batch says so.
            w = float(batch["loss_tokens"]) if "loss_tokens" in batch else float(metrics.get("n_tokens", 1.0))
            weight += w
            totals["loss"] = totals.get("loss", 0.0) + loss.item() * w
            for k, v in metrics.items():
                if k != "n_tokens":
                    totals[k] = totals.get(k, 0.0) + float(v) * w
        keys = self._agreed_keys(totals)
        summed = self._sum([weight, *(totals.get(k, 0.0) for k in keys)])
        weight, *vals = summed
        out = {f"eval_{k}": v / max(weight, 1e-12) for k, v in zip(keys, vals, strict=True)}
        if "eval_loss" in out:
            out["eval_ppl"] = math.exp(min(out["eval_loss"], 50.0))
        self.model.train()
        return out

    def _agreed_keys(self, totals: dict[str, float]) -> list[str]:
        """The metric names, the same list on every rank (a rank may have evaluated no batch)."""
        if self.world == 1:
            return list(totals)
        from accelerate.utils import gather_object

        seen: list[str] = []
        for names in gather_object([list(totals)]):
            seen += [k for k in names if k not in seen]
        return seen

    def _sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(t, reduction="sum").tolist()

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _loss_weights(self, micro_batches: list[tuple[dict, int]]) -> list[float]:
        """Loss weights of a step's micro-batches: each micro-batch loss is a mean over its own
        `loss_tokens` (tokens or pairs, as the objective's collate says; else its items), and
        weighting it by its share of the step's total (over all processes: DDP averages gradients)
        makes the step minimise the mean over all of them, not a mean of per-batch means that
        over-weights a small batch (the incomplete last one of an epoch, few trained tokens)."""
        counts = [float(b["loss_tokens"]) if "loss_tokens" in b else float(n) for b, n in micro_batches]
        total = self._sum([sum(counts)])[0] / self.world
        return [c / max(total, 1.0) for c in counts]

    # ---- the loop ---------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        with self.sigterm_stops():
            result = self._fit()
        if self.cfg.report_to:
            self.accelerator.end_training()
        return result

    def _fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.model.train()
        batches = self._micro_batches()
        # disable=None: no bar when stdout is not a terminal (CI logs), and only on the main process.
        bar = tqdm(total=cfg.max_steps, initial=self.state.step, disable=None if self.is_main else True,
                   desc="train", dynamic_ncols=True)
        if self.state.step == 0:  # a run that starts over: the log of an earlier attempt goes
            self.log.truncate_after(-1)
        if self.state.step == 0 and self.eval_data:
            ev = self.evaluate()
            self.state.history.append({"step": 0, **ev})
            self.log.write({"step": 0, **ev})
        window_t, window_tokens, stopped_early = time.perf_counter(), 0, False
        window_data = 0.0  # seconds spent making batches (reading, collating) in the logging window
        try:
            while self.state.step < cfg.max_steps:
                lr = scheduled_lr(self.state.step, cfg, cfg.max_steps)
                set_lr(self.optimizer, lr)
                step_metrics: dict[str, float] = {}
                t_data = time.perf_counter()
                micro_batches = [next(batches) for _ in range(cfg.grad_accum)]
                window_data += time.perf_counter() - t_data
                weights = self._loss_weights(micro_batches)
                for micro, (batch, _) in enumerate(micro_batches):
                    batch = self._to_device(batch)
                    # Only the last micro-batch all-reduces gradients.
                    sync = micro == cfg.grad_accum - 1
                    with gradient_sync(self.model, sync, self.accelerator), self.accelerator.autocast():
                        loss, metrics = self.objective.loss(self.model, batch)
                        if not torch.isfinite(loss):
                            raise FloatingPointError(
                                f"non-finite loss ({loss.item()}) at step {self.state.step}: stopping "
                                "instead of training on NaN (lower lr, check data)"
                            )
                        self.accelerator.backward(loss * weights[micro])
                    part = loss.item() * weights[micro]
                    step_metrics["loss"] = step_metrics.get("loss", 0.0) + part
                    for k, v in metrics.items():
                        step_metrics[k] = step_metrics.get(k, 0.0) + float(v) / (1 if k == "n_tokens" else cfg.grad_accum)
                    window_tokens += int(metrics.get("n_tokens", 0))
                if cfg.max_grad_norm:
                    step_metrics["grad_norm"] = self._clip_gradients(cfg.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.state.step += 1
                self.state.tokens += int(step_metrics.get("n_tokens", 0)) * self.world
                bar.update(1)
                bar.set_postfix(loss=f"{step_metrics['loss']:.3f}", lr=f"{lr:.2e}")

                if self.state.step % cfg.log_every == 0 or self.state.step == cfg.max_steps:
                    dt = time.perf_counter() - window_t
                    if self.world > 1:  # the global step's means (each rank holds its share)
                        names = sorted(k for k in step_metrics if k not in ("grad_norm", "n_tokens"))
                        means = self._sum([step_metrics[k] for k in names])
                        step_metrics.update({k: v / self.world for k, v in zip(names, means, strict=True)})
                    rec = {"step": self.state.step, "lr": lr, **step_metrics,
                           "tokens_per_s": window_tokens * self.world / max(dt, 1e-9),
                           "data_share": window_data / max(dt, 1e-9)}
                    self.log.write(rec)
                    window_t, window_tokens, window_data = time.perf_counter(), 0, 0.0
                if self.eval_data and (self.state.step % cfg.eval_every == 0 or self.state.step == cfg.max_steps):
                    ev = self.evaluate()
                    self.state.history.append({"step": self.state.step, **ev})
                    if "eval_loss" in ev and (self.state.best_eval_loss is None or ev["eval_loss"] < self.state.best_eval_loss):
                        self.state.best_eval_loss = ev["eval_loss"]
                    self.log.write({"step": self.state.step, **ev})
                    if self.is_main:
                        bar.write(f"step {self.state.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in ev.items()))
                if self.checkpoint_or_stop(self.state.step, cfg.save_every):
                    stopped_early = True
                    break
        finally:
            bar.close()
        return {"step": self.state.step, "tokens": self.state.tokens, "stopped_early": stopped_early,
                "history": self.state.history, "dropped_examples_per_epoch": self.dropped_per_epoch,
                "warnings": self.warnings}

    def _clip_gradients(self, max_norm: float) -> float:
        if is_sharded(self.model):  # DTensor gradients: torch's clip reduces the norm over the shards
            gn = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
            return float(gn.full_tensor() if hasattr(gn, "full_tensor") else gn)
        return float(self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm))

    def unwrapped_model(self) -> torch.nn.Module:
        return unwrap(self.accelerator.unwrap_model(self.model))


def stop_at_step(step: int) -> StepCallback:
    """Callback that stops (with a checkpoint) once `step` optimizer steps are done."""
    return lambda trainer: trainer.state.step >= step
