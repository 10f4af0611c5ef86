"""Experiment trackers through accelerate (TensorBoard, MLflow, W&B offline, trackio), each read
back, and the plain progress line a log file gets instead of a progress bar."""

import importlib.util
import os
import sqlite3

import numpy as np
import pytest

from llm_recipe.config import PretrainConfig

# not imported here: trackio reads TRACKIO_DIR when first imported (inside the run)
if not all(importlib.util.find_spec(m) for m in ("tensorboard", "mlflow", "wandb", "trackio")):
    pytest.skip("the tracker packages are not installed (the test extra installs them)", allow_module_level=True)


@pytest.fixture
def tracked_run(tmp_path, tokenizer, monkeypatch):
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "pretrain"
    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 + i % 3 for i in range(64)]
    cfg = PretrainConfig(max_steps=4, batch_size=8, log_every=1, eval_every=100,
                         report_to=["tensorboard", "mlflow", "wandb", "trackio"])
    try:
        res = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, out).fit()
    finally:
        uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    losses = {h["step"]: h["loss"] for h in map(__import__("json").loads, (out / "metrics.jsonl").read_text().splitlines())}
    return out, tmp_path, uri, losses, res


def test_every_tracker_gets_the_logged_losses(tracked_run):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, tmp, uri, losses, _ = tracked_run
    assert sorted(losses) == [1, 2, 3, 4]
    # TensorBoard: the event file under <stage>/tracking/
    events = next(p for p in (out / "tracking").rglob("events.out.tfevents.*") if p.stat().st_size > 100)
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert {e.step: e.value for e in acc.Scalars("loss")} == pytest.approx(losses, rel=1e-6)
    # MLflow: a file store kept with the run, read with MLflow's own client
    assert uri == (out / "tracking" / "mlruns").resolve().as_uri()
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("pretrain")
        run = client.search_runs([exp.experiment_id])[0]
        assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")} == pytest.approx(losses)
        assert run.data.params["lr"] == "0.003"  # the section's settings are the run's config
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    # W&B offline: a run folder with the records (synced later with `wandb sync`)
    wandb_file = next((tmp / "wandb").glob("offline-run-*/run-*.wandb"))
    assert wandb_file.stat().st_size > 0 and b"loss" in wandb_file.read_bytes()
    # trackio: its local SQLite database holds one row per logged step
    from trackio.utils import TRACKIO_DIR  # where this process's trackio writes (TRACKIO_DIR above)

    db = next(p for p in TRACKIO_DIR.glob("pretrain*.db"))
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows = sum(con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables if "metric" in t)
    assert rows >= 4, tables


def test_a_log_file_gets_one_line_per_logged_step(tmp_path, tokenizer, capfd):
    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.train.loop import Trainer
    from llm_recipe.train.pretrain import CausalLMObjective

    blocks = [np.arange(16, dtype=np.int64) % 50 + 5 for _ in range(32)]
    cfg = PretrainConfig(max_steps=4, batch_size=8, log_every=2, eval_every=100)
    Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, tmp_path / "sft").fit()
    out = capfd.readouterr().out
    assert "[llm-recipe] sft step 2: lr=" in out and "sft step 4: lr=" in out and "sft step 3:" not in out
