"""One run per output folder: a second process writing into a folder another one is training in
fails at once with one line naming the holder's PID; the lock dies with its process."""

import subprocess
import sys
import time

from typer.testing import CliRunner

from llm_recipe.cli import app

HOLD = """
import sys, time
from llm_recipe.files import lock_folder
lock_folder(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_a_busy_folder_fails_with_the_holders_pid(tmp_path):
    stage = tmp_path / "run" / "pretrain"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(stage)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = CliRunner().invoke(app, ["pretrain", "-o", str(tmp_path / "run"), "--set", "model.preset=micro",
                                       "--set", "corpus.docs_per_source=20", "--set", "tokenizer.vocab_size=400",
                                       "--set", "pretrain.block_size=32", "--max-steps", "2"])
        assert res.exit_code == 2 and f"another run (pid {holder.pid}) is writing here" in res.output, res.output
        assert not (stage / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    # the holder was killed: its lock went with it, and the same command now runs
    res = CliRunner().invoke(app, ["pretrain", "-o", str(tmp_path / "run"), "--set", "model.preset=micro",
                                   "--set", "corpus.docs_per_source=20", "--set", "tokenizer.vocab_size=400",
                                   "--set", "pretrain.block_size=32", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    assert (stage / ".lock").read_text().strip().isdigit()


def test_a_hub_id_is_tried_on_the_hub_and_a_missing_path_is_not(monkeypatch):
    """`org/name` that is no local folder goes to the hub (offline here: its one-line error); a
    path that is not there fails at once."""
    import pytest

    from llm_recipe.models.loading import ModelLoadError, load_causal_lm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HuggingFaceTB/SmolLM2-135M: cannot load model"):
        load_causal_lm("HuggingFaceTB/SmolLM2-135M")
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_causal_lm("./runs/not/there")
