"""The run folder's lock covers what a command writes before its first stage and after its last (#32
item 1 after the stage contract): a second `run` into a busy folder does not replace the running
one's recipe.yaml, and `report` does not write a report of a run that is still writing its files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app

SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture
def busy(tmp_path):
    """`tmp_path / "run"` locked by another process (a run in progress); yields (folder, its pid)."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llm_recipe.files import lock_folder; lock_folder(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(120)"), str(folder)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": SRC})
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield folder, holder.pid
    finally:
        holder.kill()
        holder.wait()


def _refused(res, pid: int) -> None:
    assert res.exit_code == 2, res.output
    assert f"another run (pid {pid}) is writing here" in res.output and "Traceback" not in res.output


def test_a_second_run_into_a_busy_folder_leaves_the_running_ones_recipe(busy):
    folder, pid = busy
    (folder / "recipe.yaml").write_text("seed: 7\n")  # the running recipe's
    res = CliRunner().invoke(app, ["run", "-c", "tiny", "-o", str(folder), "--seed", "3"])
    _refused(res, pid)
    assert (folder / "recipe.yaml").read_text() == "seed: 7\n"
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "recipe.yaml"]


def test_report_waits_for_no_run_it_writes_about(busy):
    folder, pid = busy
    (folder / "recipe.yaml").write_text("seed: 7\n")
    _refused(CliRunner().invoke(app, ["report", str(folder)]), pid)
    assert not (folder / "report.html").exists()


def test_a_driver_that_releases_its_folder_lets_a_child_run_there(tmp_path):
    """`release_folder`: a benchmark runs stages in-process, then hands the folder to child runs
    (cpt_ja's arms failed with 'another run (pid <its own>) is writing here')."""
    from llm_recipe.files import lock_folder, release_folder

    folder = tmp_path / "run"
    child = [sys.executable, "-c", "import sys; from llm_recipe.files import lock_folder; lock_folder(sys.argv[1])",
             str(folder)]
    env = {**os.environ, "PYTHONPATH": SRC}
    lock_folder(folder)
    held = subprocess.run(child, env=env, capture_output=True, text=True)
    assert held.returncode != 0 and f"another run (pid {os.getpid()})" in held.stderr
    release_folder(folder)
    assert subprocess.run(child, env=env, capture_output=True, text=True).returncode == 0
    lock_folder(folder)  # and the driver can take it again
    release_folder(folder)
