"""Where a training run's metrics go besides metrics.jsonl: experiment trackers and plain log lines.

    `report_to: [tensorboard, wandb, mlflow, trackio]` in any training section sends every logged
    record to those trackers through accelerate's own tracker classes (`Accelerator(log_with=...)`,
    main process only), with the section's settings as the run's config. Where they write is each
    tracker's own setting: TensorBoard, and MLflow (a file store, unless MLFLOW_TRACKING_URI names
    a server) under `<stage folder>/tracking/`; W&B offline with WANDB_MODE=offline; trackio locally.
    Without a terminal (CI, `nohup`, a scheduler's log file) there is no progress bar, so each
    training record is also one plain line: `[llm-recipe] sft step 40: loss=1.23, lr=1.0e-03`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .. import console


def tracking_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "tracking"


def prepare_tracking_env(output_dir: str | os.PathLike, report_to) -> None:
    """MLflow's default store is ./mlruns of whatever folder the job started in: keep it with the run
    (a file store, which `mlflow-skinny` can write and `mlflow ui --backend-store-uri` reads; a
    team sets MLFLOW_TRACKING_URI to its server instead)."""
    if "mlflow" in report_to and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = (tracking_dir(output_dir).resolve() / "mlruns").as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def flat_config(cfg) -> dict:
    """A section's settings as scalar `a.b` keys (what every tracker's hyperparameter view takes)."""
    out: dict = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, (int, float, str, bool)):
            out[prefix] = node
        elif node is not None:
            out[prefix] = str(node)

    walk("", cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg)
    return out


def start_trackers(accelerator, cfg, output_dir: str | os.PathLike) -> Callable[[dict], None] | None:
    """Initialise the accelerator's trackers (created with `log_with`); returns the sink for records."""
    if not getattr(cfg, "report_to", None):
        return None
    accelerator.init_trackers(Path(output_dir).name, config=flat_config(cfg))

    def sink(record: dict) -> None:
        scalars = {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        accelerator.log(scalars, step=int(record.get("step", 0)))

    return sink


def plain_progress(stage: str) -> Callable[[dict], None] | None:
    """One log line per training record when stderr is not a terminal (no progress bar there)."""
    if sys.stderr.isatty():
        return None

    def line(record: dict) -> None:
        if any(k.startswith("eval_") for k in record):
            return  # evaluations are printed by the loop already
        figures = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "step" and isinstance(v, float))
        console.log(f"{stage} step {record.get('step')}: {figures}")

    return line
