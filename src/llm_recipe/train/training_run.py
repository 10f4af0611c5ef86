"""The training-run template that the four supervised trainers fill: pretraining, SFT, the reward
model and the DPO family differ only in what they prepare (`Prepared`: model, tokenizer, objective,
examples, their own data figures) and what they plot; the rest of a run is written once, here:

    Trainer -> resume from the latest checkpoint -> data_report.json + run.json -> fit
    -> the final model saved all or nothing (`Trainer.save_model`) -> plots -> `TrainResult`

    run_training(prepared, spec, out, seed=...)   that sequence
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files import is_complete, unwritable_as
from ..provenance import write_run_manifest
from .checkpoint import kept_note
from .loop import StepCallback, Trainer


@dataclass
class Prepared:
    """What a trainer builds before the loop starts."""

    model: torch.nn.Module
    tokenizer: Any
    objective: Any  # `loop.Objective`
    train: Sequence[Any]
    eval: Sequence[Any] | None
    cfg: Any  # the section, fitted to the model (`defaults.fit_stage`)
    report: dict  # the trainer's own data figures (read / tokenize / truncation ...), first in data_report.json
    fitted: dict | None = None  # the defaults a released model got (`defaults.fit_stage`)
    lengths: Sequence[int] | None = None  # group batches by these lengths
    accelerator: Any = None  # made early when the trainer needed the device before the loop (DPO's reference)
    # (trained model, run folder) -> the model as saved (LoRA merged, its adapter kept in the run folder...)
    finalize: Callable[[torch.nn.Module, Path], torch.nn.Module] | None = None


@dataclass(frozen=True)
class Plot:
    file: str
    keys: tuple[str, ...]
    title: str


@dataclass
class RunSpec:
    """How a trainer's run is recorded."""

    stage: str  # run.json's stage
    inputs: Sequence[str | os.PathLike] = ()  # data files (hashed into run.json)
    init_from: Any = None  # the starting model (a path, or a module: its name_or_path is recorded)
    plots: Sequence[Plot] = ()
    # after `fit`, before the save: (trainer, report) -> extra files' writer for the model folder
    before_save: Callable[[Trainer, dict], Callable[[Path], None] | None] | None = None
    extra: dict = field(default_factory=dict)  # more run.json fields


@dataclass
class TrainResult:
    model_dir: Path
    steps: int
    stopped_early: bool
    history: list[dict]
    report: dict

    @property
    def initial_eval(self) -> dict:
        return next((h for h in self.history if h["step"] == 0), {})

    @property
    def final_eval(self) -> dict:
        return self.history[-1] if self.history else {}

    @property
    def initial_eval_loss(self) -> float | None:
        return self.initial_eval.get("eval_loss")

    @property
    def final_eval_loss(self) -> float | None:
        return self.final_eval.get("eval_loss")


def _init_name(init) -> str | None:
    if isinstance(init, torch.nn.Module):
        return init.config._name_or_path
    return None if init is None else str(init)


def run_training(p: Prepared, spec: RunSpec, output_dir: str | os.PathLike, *, seed: int = 0, resume: bool = True,
                 callbacks: Sequence[StepCallback] = (), full_config=None) -> TrainResult:
    """Train `p.model` on `p.train` and save `output_dir/model` (see the module docstring). An OS-level
    write failure (a metrics line, run.json, a plot) is one line naming `output_dir` and what was kept
    (`kept_in_run`); a checkpoint or the model that cannot be saved says so itself (`write_complete`)."""
    out = Path(output_dir)
    with unwritable_as(out, lambda: kept_in_run(out)):
        return _run_training(p, spec, out, seed=seed, resume=resume, callbacks=callbacks, full_config=full_config)


def kept_in_run(out: Path) -> str:
    """What a training run that failed to write leaves for the same command: its finished model, else
    its last complete checkpoint (`checkpoint.kept_note`)."""
    if is_complete(out / "model"):
        return "kept: the finished model (model/; the same command reuses it)"
    return kept_note(out)


def _run_training(p: Prepared, spec: RunSpec, out: Path, *, seed: int, resume: bool,
                  callbacks: Sequence[StepCallback], full_config) -> TrainResult:
    trainer = Trainer(p.model, p.objective, p.train, p.cfg, out, eval_data=p.eval or None, seed=seed,
                      callbacks=callbacks, group_by_length=p.lengths, accelerator=p.accelerator, tokenizer=p.tokenizer)
    resumed = resume and trainer.resume("latest")
    report = {**p.report, "dropped_examples_per_epoch": trainer.dropped_per_epoch,
              "run_length_warnings": trainer.warnings,
              "resumed_from_step": trainer.state.step if resumed else None,
              "defaults_for_model": p.fitted, "max_steps": trainer.cfg.max_steps}
    if trainer.is_main:
        from ..files import write_json

        write_json(out / "data_report.json", report)
        write_run_manifest(out, stage=spec.stage, config=full_config or p.cfg, inputs=spec.inputs,
                           extra={"data_report": report, "base_model": _init_name(spec.init_from), **spec.extra},
                           init_from=_init_name(spec.init_from))
    result = trainer.fit()
    model_dir = out / "model"
    if not result["stopped_early"]:
        extra = spec.before_save(trainer, report) if spec.before_save else None
        finalize = (lambda m: p.finalize(m, out)) if p.finalize else None
        trainer.save_model(model_dir, finalize, p.tokenizer, extra=extra)
        if trainer.is_main:
            from ..report.plots import plot_metrics

            for plot in spec.plots:
                plot_metrics(out / "metrics.jsonl", out / plot.file, keys=plot.keys, title=plot.title)
    return TrainResult(model_dir, result["step"], result["stopped_early"], result["history"], report)
