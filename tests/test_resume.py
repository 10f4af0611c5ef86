"""A rerun reuses a folder only for the same run (#20): a finished model or a checkpoint of other
settings or inputs is an error naming them, not silently returned or resumed; `--fresh` starts
over, `resume=force` keeps it deliberately. A final save is all or nothing (a kill -9 mid-save
leaves no model that a rerun would skip to), and a full disk is one line that keeps the last
checkpoint."""

import json
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import DPOConfig
from llm_recipe.data.executor import ResumeMismatch
from llm_recipe.files import MARKER, is_complete, write_complete, write_json
from llm_recipe.train.run_folder import prepare_run, run_key

TINY = ["--set", "model.preset=micro", "--set", "corpus.docs_per_source=20", "--set", "tokenizer.vocab_size=400",
        "--set", "pretrain.block_size=32", "--set", "pretrain.eval_every=1", "--max-steps", "2"]


def pretrain(out, *extra):
    return CliRunner().invoke(app, ["pretrain", "-o", str(out), *TINY, *extra])


def test_a_finished_or_stopped_run_is_reused_only_with_the_same_settings(tmp_path):
    res = pretrain(tmp_path, "--set", "pretrain.save_every=1")
    assert res.exit_code == 0, res.output
    stage = tmp_path / "pretrain"
    weights = (stage / "model" / "model.safetensors").read_bytes()
    # finished: the same command skips it; other settings are refused, naming what differs
    assert pretrain(tmp_path, "--set", "pretrain.save_every=1").exit_code == 0
    res = pretrain(tmp_path, "--lr", "1e-2", "--max-steps", "3")
    assert res.exit_code == 2, res.output
    assert "finished model" in res.output and "lr 0.003 -> 0.01" in res.output and "max_steps 2 -> 3" in res.output
    assert "--fresh" in res.output and "pretrain.resume=force" in res.output
    # stopped at a checkpoint (no final model): resuming with other data or block size is refused too
    (stage / "model" / MARKER).unlink()
    (tmp_path / "corpus" / "web.jsonl").write_text('{"text": "other data"}\n' * 30, encoding="utf-8")
    res = pretrain(tmp_path, "--set", "pretrain.block_size=16")
    assert res.exit_code == 2 and "a checkpoint" in res.output and "block_size 32 -> 16" in res.output, res.output
    assert "web.jsonl changed" in res.output
    assert json.loads((stage / "run_key.json").read_text())["config"]["block_size"] == 32  # not overwritten
    # a deliberate change: force resumes from the checkpoint and run_key.json records what changed
    res = pretrain(tmp_path, "--set", "pretrain.save_every=2", "--set", "pretrain.resume=force")
    assert res.exit_code == 0, res.output
    assert "inputs" in " ".join(json.loads((stage / "run_key.json").read_text())["changed_on_resume"])
    assert pretrain(tmp_path, "--set", "pretrain.save_every=2").exit_code == 0  # now the run of these settings
    # --fresh starts over under the new settings
    res = pretrain(tmp_path, "--lr", "1e-2", "--fresh")
    assert res.exit_code == 0, res.output
    assert json.loads((stage / "run_key.json").read_text())["config"]["lr"] == 0.01
    assert (stage / "model" / "model.safetensors").read_bytes() != weights


def test_dpo_settings_that_change_the_loss_are_not_a_resume(tmp_path):
    """The DPO report: `beta=0.5 loss_type=ipo` over a finished run returned the old model."""
    base = tmp_path / "sft_model"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")
    old = run_key(DPOConfig(), seed=0, base=base)
    write_complete(tmp_path / "dpo" / "model", lambda d: (d / "model.safetensors").write_bytes(b"w"))
    write_json(tmp_path / "dpo" / "run_key.json", old)
    assert prepare_run(tmp_path / "dpo", old, "auto", "dpo")  # same run: done
    new = run_key(DPOConfig(beta=0.5, loss_type="ipo", save_every=5), seed=0, base=base)  # save_every may change
    with pytest.raises(ResumeMismatch, match=r"\(beta 0.1 -> 0.5, loss_type 'sigmoid' -> 'ipo'\)"):
        prepare_run(tmp_path / "dpo", new, "auto", "dpo")
    (base / "model.safetensors").write_bytes(b"other weights")  # another SFT model to start from
    with pytest.raises(ResumeMismatch, match=r"base.weights changed"):
        prepare_run(tmp_path / "dpo", run_key(DPOConfig(), seed=0, base=base), "auto", "dpo")


KILLED_MID_SAVE = """
import os, sys, time
from llm_recipe.files import write_complete

def write(d):
    (d / "model.safetensors").write_bytes(b"weights")
    (d / "tokenizer_config.json").touch()  # 0 bytes: the kill comes before its contents
    print("saving", flush=True)
    time.sleep(60)

write_complete(sys.argv[1], write)
"""


def test_a_kill_during_the_final_save_leaves_no_model_to_skip_to(tmp_path):
    model = tmp_path / "run" / "pretrain" / "model"
    p = subprocess.Popen([sys.executable, "-c", KILLED_MID_SAVE, str(model)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "saving"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not model.exists() and not is_complete(model)
    # a folder torn the old way (weights, an empty tokenizer config, no marker) is no model either
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "tokenizer_config.json").touch()
    assert not prepare_run(model.parent, {"config": {}}, "auto", "pretrain")  # not done: trained again


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays(tmp_path, monkeypatch):
    import torch

    real_save, calls = torch.save, []

    def save(obj, f, *a, **kw):  # the first checkpoint is written, then the disk is full
        calls.append(f)
        if len(calls) > 2:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")  # torch 2.13
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    res = pretrain(tmp_path, "--set", "pretrain.save_every=1")
    assert res.exit_code == 2, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("error:"))
    assert "no space left on device" in line and "step-0000002" in line and "Traceback" not in res.output
    assert "kept: the last complete checkpoint step-0000001 (the same command resumes from it)" in line
    ckpts = sorted(p.name for p in (tmp_path / "pretrain" / "checkpoints").iterdir())
    assert ckpts == ["step-0000001"] and is_complete(tmp_path / "pretrain" / "checkpoints" / "step-0000001")
    monkeypatch.setattr(torch, "save", real_save)  # space again: the same command resumes and finishes
    res = pretrain(tmp_path, "--set", "pretrain.save_every=1")
    assert res.exit_code == 0 and is_complete(tmp_path / "pretrain" / "model"), res.output
