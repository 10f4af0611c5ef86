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
    cfg = PretrainConfig(max_steps=4, batch_size=8, log_every=1, eval_every=2,
                         report_to=["tensorboard", "mlflow", "wandb", "trackio"], tracking={"project": "ship-test"})
    try:
        res = Trainer(build_preset_model("micro", tokenizer, seed=0), CausalLMObjective(), blocks, cfg, out,
                      eval_data=blocks[:16]).fit()
    finally:
        uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    records = list(map(__import__("json").loads, (out / "metrics.jsonl").read_text().splitlines()))
    losses = {h["step"]: h["loss"] for h in records if "loss" in h}
    eval_losses = {h["step"]: h["eval_loss"] for h in records if "eval_loss" in h}
    return out, tmp_path, uri, (losses, eval_losses), res


@pytest.mark.slow
def test_every_tracker_gets_the_logged_losses(tracked_run):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, tmp, uri, (losses, eval_losses), _ = tracked_run
    assert sorted(losses) == [1, 2, 3, 4] and sorted(eval_losses) == [0, 2, 4]
    # TensorBoard: the event file under <stage>/tracking/, TRL's names (train/loss, eval/loss, ...)
    events = next(p for p in (out / "tracking").rglob("events.out.tfevents.*") if p.stat().st_size > 100)
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert {e.step: e.value for e in acc.Scalars("train/loss")} == pytest.approx(losses, rel=1e-6)
    assert {e.step: e.value for e in acc.Scalars("eval/loss")} == pytest.approx(eval_losses, rel=1e-6)
    assert "train/learning_rate" in acc.Tags()["scalars"] and "loss" not in acc.Tags()["scalars"]
    # MLflow: the SQLite store current MLflow uses, kept with the run, read with MLflow's own client
    # and no opt-in variable (the old file store needs MLFLOW_ALLOW_FILE_STORE)
    assert uri == f"sqlite:///{(out / 'tracking' / 'mlflow.db').resolve()}" and "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ship-test")  # tracking.project
    run = client.search_runs([exp.experiment_id])[0]
    assert run.info.run_name == f"{tmp.name}/pretrain"  # run folder + stage
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")} == pytest.approx(losses)
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval/loss")} == pytest.approx(
        eval_losses)
    assert run.data.params["lr"] == "0.003"  # the section's settings are the run's config
    # W&B offline: a run folder with the records (synced later with `wandb sync`)
    wandb_file = next((tmp / "wandb").glob("offline-run-*/run-*.wandb"))
    assert wandb_file.stat().st_size > 0 and b"train/loss" in wandb_file.read_bytes()
    assert f"{tmp.name}/pretrain".encode() in wandb_file.read_bytes()
    # trackio: its local SQLite database holds one row per logged step
    from trackio.utils import TRACKIO_DIR  # where this process's trackio writes (TRACKIO_DIR above)

    db = next(p for p in TRACKIO_DIR.glob("ship-test*.db"))
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


def test_every_logged_key_has_trls_name_in_one_table():
    from llm_recipe.train.tracking import tracker_name

    assert [tracker_name(k) for k in ("loss", "lr", "grad_norm", "eval_loss", "reward_chosen", "eval_reward_chosen",
                                      "reward_accuracy", "eval_reward_margin", "logps_rejected")] == [
        "train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "train/rewards/chosen",
        "eval/rewards/chosen", "train/rewards/accuracies", "eval/rewards/margins", "train/logps/rejected"]
