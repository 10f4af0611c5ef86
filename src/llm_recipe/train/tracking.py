"""Where a training run's metrics go besides metrics.jsonl: experiment trackers and plain log lines.

    `report_to: [tensorboard, wandb, mlflow, trackio]` in any training section sends every logged
    record to those trackers through accelerate's own tracker classes (`Accelerator(log_with=...)`,
    main process only), under TRL's metric names (`TRL_METRIC_NAMES`: train/loss, eval/loss,
    train/rewards/chosen, train/learning_rate, ...), with the section's settings as the run's config,
    in project `tracking.project` (default llm-recipe) as run `tracking.run_name` (default: run
    folder + stage, `demo/sft`). Where they write is each tracker's own setting: TensorBoard, and
    MLflow (a SQLite store, unless MLFLOW_TRACKING_URI names a server) under
    `<stage folder>/tracking/`; W&B offline with WANDB_MODE=offline; trackio locally.
    Without a terminal (CI, `nohup`, a scheduler's log file) there is no progress bar, so each
    training record is also one plain line: `[llm-recipe] sft step 40: loss=1.23, lr=1.0e-03`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .. import console

# Our metrics.jsonl keys -> the names TRL's trainers log the same figure under. A tracker gets
# `train/<name>` for a training record and `eval/<name>` for an evaluation (`eval_<key>`), as TRL
# logs them; a key not listed keeps its own name under that prefix.
TRL_METRIC_NAMES = {
    "lr": "learning_rate", "grad_norm": "grad_norm", "loss": "loss", "epoch": "epoch",
    "n_tokens": "num_tokens", "token_acc": "mean_token_accuracy",
    "reward_chosen": "rewards/chosen", "reward_rejected": "rewards/rejected", "reward_margin": "rewards/margins",
    "reward_accuracy": "rewards/accuracies", "logps_chosen": "logps/chosen", "logps_rejected": "logps/rejected",
    "accuracy": "accuracy", "reward_mean": "reward", "reward_std": "reward_std",
    "response_len": "completions/mean_length", "entropy": "entropy", "clipfrac": "clip_ratio", "kl": "kl",
    "pg_loss": "loss/policy", "vf_loss": "loss/value", "approx_kl": "policy/approxkl",
}


def tracker_name(key: str) -> str:
    """`eval_loss` -> `eval/loss`, `reward_chosen` -> `train/rewards/chosen` (TRL's names)."""
    if key.startswith("eval_"):
        rest = key.removeprefix("eval_")
        return f"eval/{TRL_METRIC_NAMES.get(rest, rest)}"
    return f"train/{TRL_METRIC_NAMES.get(key, key)}"


def run_name(output_dir: str | os.PathLike) -> str:
    """A training run's name in the trackers: its run folder and stage (`demo/sft`)."""
    p = Path(output_dir).resolve()
    return f"{p.parent.name}/{p.name}"


def tracking_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "tracking"


def _mlflow_sql_store() -> bool:
    """Whether MLflow can use its database store (mlflow-skinny needs sqlalchemy + alembic for it)."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("sqlalchemy", "alembic", "sqlparse"))


def prepare_tracking_env(output_dir: str | os.PathLike, report_to) -> None:
    """MLflow's default store is ./mlflow.db of whatever folder the job started in: keep it with the
    run, as current MLflow keeps it: a SQLite database (`<stage>/tracking/mlflow.db`, read by
    `MlflowClient(tracking_uri=...)` and `mlflow ui --backend-store-uri`). Without sqlalchemy +
    alembic (mlflow-skinny alone) it is the older file store (`tracking/mlruns`, which current MLflow
    reads only with MLFLOW_ALLOW_FILE_STORE=true). A team sets MLFLOW_TRACKING_URI to its server."""
    if "mlflow" in report_to and not os.environ.get("MLFLOW_TRACKING_URI"):
        folder = tracking_dir(output_dir).resolve()
        if _mlflow_sql_store():
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
        else:
            os.environ["MLFLOW_TRACKING_URI"] = (folder / "mlruns").as_uri()
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
    tracking = getattr(cfg, "tracking", None)
    project = tracking.project if tracking is not None else "llm-recipe"
    name = (tracking.run_name if tracking is not None else None) or run_name(output_dir)
    accelerator.init_trackers(project, config=flat_config(cfg), init_kwargs={
        "wandb": {"name": name}, "mlflow": {"run_name": name}, "trackio": {"name": name}})

    def sink(record: dict) -> None:
        scalars = {tracker_name(k): float(v) for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
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
