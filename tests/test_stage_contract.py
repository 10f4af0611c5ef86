"""The stage contract (`stages.context`, `stages.contract`): the one rule for a stage's starting
model, named seed streams, and the lock and completion marker every stage gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llm_recipe.config import DPOConfig, RecipeConfig, RewardModelRef, RMConfig, SFTConfig
from llm_recipe.files import FolderInUse
from llm_recipe.seeds import STREAMS, seed_for
from llm_recipe.stages.context import RunContext
from llm_recipe.stages.contract import Stage, run_stage, stage_key


# ---- the starting model: -m > init_from > the run's previous artifact > model.name_or_path --------------
def _cfg(tmp_path, **kw) -> RecipeConfig:
    return RecipeConfig(output_dir=tmp_path, model={"name_or_path": "released/model"}, **kw)


def test_start_model_precedence_for_every_rung(tmp_path):
    arts = {"pretrained_model": "run/pretrain/model", "sft_model": "run/sft/model"}
    dpo = DPOConfig(init_from="my/init")
    # -m wins over everything
    assert RunContext(_cfg(tmp_path), dict(arts), model="cli/model").start_model("dpo", dpo) == "cli/model"
    # then the section's init_from
    assert RunContext(_cfg(tmp_path), dict(arts)).start_model("dpo", dpo) == "my/init"
    # then the run's previous artifact: the SFT model for every stage after SFT...
    assert RunContext(_cfg(tmp_path), dict(arts)).start_model("dpo", DPOConfig()) == "run/sft/model"
    assert RunContext(_cfg(tmp_path), dict(arts)).start_model("rm", RMConfig()) == "run/sft/model"
    # ... the pretrained model without SFT, and for SFT itself
    assert RunContext(_cfg(tmp_path), {"pretrained_model": "p"}).start_model("ppo") == "p"
    assert RunContext(_cfg(tmp_path), dict(arts)).start_model("sft", SFTConfig()) == "run/pretrain/model"
    # then model.name_or_path; None when the recipe has nothing to start from
    assert RunContext(_cfg(tmp_path)).start_model("sft", SFTConfig()) == "released/model"
    assert RunContext(RecipeConfig(output_dir=tmp_path)).start_model("dpo", DPOConfig()) is None


def test_reward_model_precedence(tmp_path):
    run_rm = {"reward_model": "run/reward_model/model"}
    section = DPOConfig()  # no reward_models field: the run's RM
    ctx = RunContext(_cfg(tmp_path), dict(run_rm))
    assert [r.path for r in ctx.reward_model_refs(section)] == ["run/reward_model/model"]
    cli = [RewardModelRef(path="cli/rm", weight=2.0)]
    assert RunContext(_cfg(tmp_path), dict(run_rm), reward_models=cli).reward_model_refs(section) == cli
    from llm_recipe.config import BoNConfig

    own = BoNConfig(reward_models=[RewardModelRef(path="own/rm")])
    assert [r.path for r in ctx.reward_model_refs(own)] == ["own/rm"]
    assert RunContext(_cfg(tmp_path)).reward_model_refs(section) == []


def test_an_imported_model_becomes_the_recipes_model(tmp_path):
    ctx = RunContext(_cfg(tmp_path))
    ctx.add({"start_model": str(tmp_path / "model")})
    assert ctx.cfg.model.name_or_path == str(tmp_path / "model")
    assert ctx.start_model("sft", SFTConfig()) == str(tmp_path / "model")


# ---- named seed streams -----------------------------------------------------------------------------------
def test_seed_streams_keep_the_values_runs_were_made_with():
    assert seed_for("style_pairs", 3) == 10_003
    assert seed_for("bundled_prompts", 3) == 20_003
    assert seed_for("fluency_pairs", 3) == 30_003
    assert seed_for("rl_heldout", 3) == 3 + 7919
    assert seed_for("rl_minibatches", 3, 5) == 3 * 7 + 5
    assert seed_for("rl_rollouts", 3, 5, 2, 1) == (3 * 1_000_003 + 5) * 2 + 1
    assert seed_for("online_dpo_round", 3, 2) == 5
    ss = int(np.random.SeedSequence([3, 1002]).generate_state(1)[0])
    assert seed_for("online_dpo_sampling", 3, 2) == ss
    assert seed_for("candidate_sampling", 3, 1) == int(np.random.SeedSequence([3, 1]).generate_state(1)[0])


def test_streams_drawn_together_never_share_a_seed_and_all_are_stable():
    """Streams one stage draws from together (the RM's style and fluency pairs and the RL prompts;
    an RL run's held-out sampling, minibatch order and rollouts; an online-DPO round's sampling and
    its DPO) get different seeds for every run seed and index; every stream is deterministic."""
    groups = [("style_pairs", "fluency_pairs", "bundled_prompts"),
              ("rl_heldout", "rl_minibatches", "rl_rollouts", "rl_resample_prompts", "rl_resample_sampling"),
              ("online_dpo_sampling", "online_dpo_round"), ("mixing_plan", "mixing_order"),
              ("constitutional_principles", "constitutional_judge")]
    for seed in range(40):
        for i in range(1, 6):
            for group in groups:
                values = [seed_for(name, seed, *([i] * _arity(name))) for name in group]
                assert len(set(values)) == len(values), (seed, i, group, values)
    assert {n: seed_for(n, 3, *([2] * _arity(n))) for n in STREAMS} == \
        {n: seed_for(n, 3, *([2] * _arity(n))) for n in STREAMS}
    with pytest.raises(KeyError, match="unknown seed stream 'nope'"):
        seed_for("nope", 0)


def _arity(name: str) -> int:
    return STREAMS[name][0].__code__.co_argcount - 1


# ---- the marker: a stage is done only for the same key, with its artifacts there --------------------------
def _counting_stage(tmp_path, calls: list, setting: list) -> Stage:
    def run(ctx):
        calls.append(1)
        out = ctx.out / "thing"
        out.mkdir(parents=True, exist_ok=True)
        (out / "made.txt").write_text(str(setting[0]))
        return {"thing": str(out)}

    return Stage("thing", run, lambda ctx: stage_key(ctx, {"setting": setting[0]}), lambda cfg: True)


def test_a_stage_is_reused_only_with_the_same_key_and_its_artifacts(tmp_path):
    calls, setting = [], [1]
    stage = _counting_stage(tmp_path, calls, setting)
    cfg = RecipeConfig(output_dir=tmp_path)
    arts = run_stage(RunContext(cfg), stage)
    marker = json.loads((tmp_path / "stages" / "thing.json").read_text())
    assert marker["artifacts"] == {"thing": "thing"}  # relative: a moved run folder stays valid
    assert len(calls) == 1 and Path(arts["thing"]).is_dir()
    run_stage(RunContext(cfg), stage)
    assert len(calls) == 1  # same key: done
    setting[0] = 2
    run_stage(RunContext(cfg), stage)
    assert len(calls) == 2  # another setting: run again
    (tmp_path / "thing" / "made.txt").unlink()
    (tmp_path / "thing").rmdir()
    run_stage(RunContext(cfg), stage)
    assert len(calls) == 3  # its output is gone: run again
    run_stage(RunContext(cfg, force=True), stage)
    assert len(calls) == 4  # forced
    (tmp_path / "stages" / "thing.json").write_text("{torn")
    run_stage(RunContext(cfg), stage)
    assert len(calls) == 5  # a broken marker is not a finished stage


def test_a_stage_that_fails_leaves_no_marker(tmp_path):
    def run(ctx):
        raise ValueError("boom")

    stage = Stage("broken", run, lambda ctx: {"k": 1}, lambda cfg: True)
    with pytest.raises(ValueError, match="boom"):
        run_stage(RunContext(RecipeConfig(output_dir=tmp_path)), stage)
    assert not (tmp_path / "stages" / "broken.json").exists()


def test_one_run_per_folder_for_every_stage(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llm_recipe.files import lock_folder; lock_folder(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(60)"), str(tmp_path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    try:
        assert holder.stdout.readline().strip() == "locked"
        stage = _counting_stage(tmp_path, [], [1])
        with pytest.raises(FolderInUse, match=f"another run \\(pid {holder.pid}\\)"):
            run_stage(RunContext(RecipeConfig(output_dir=tmp_path)), stage)
    finally:
        holder.kill()
        holder.wait()


def _hold_lock(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llm_recipe.files import lock_folder; lock_folder(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(120)"), str(folder)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.slow
def test_a_second_curate_into_a_busy_folder_fails_at_once_and_writes_nothing(tmp_path):
    """Two `curate` runs into one folder: the second stops before it touches anything (it used to
    truncate the first one's mixture silently)."""
    holder = _hold_lock(tmp_path)
    try:
        res = subprocess.run([sys.executable, "-m", "llm_recipe", "curate", "-c", "tiny", "-o", str(tmp_path),
                              "--set", "corpus.docs_per_source=20"], capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 2, res.stderr
    assert f"another run (pid {holder.pid}) is writing here" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "curated").exists()


@pytest.mark.slow
def test_fresh_sft_remakes_its_reports_and_invalidates_everything_after_it(tiny_run, tmp_path):
    """`sft --fresh` retrains the model, and every output that depended on the old one is made again
    or refused: its samples and format-following report, the evaluation, and the later training
    stages (an error naming the change, never the old model's figures)."""
    import shutil

    from typer.testing import CliRunner

    from llm_recipe.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    old = {f: (run / f).read_bytes() for f in ("sft/model/model.safetensors", "sft/samples.jsonl",
                                                  "sft/format_following.json", "eval/report.json")}
    # a moved run folder is the same run: its evaluation is reused as it is
    mtime = (run / "eval/report.json").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 0 and (run / "eval/report.json").stat().st_mtime_ns == mtime, res.output
    res = CliRunner().invoke(app, ["sft", "-c", str(run / "recipe.yaml"), "-o", str(run), "--fresh", "--lr", "0.05"])
    assert res.exit_code == 0, res.output
    assert (run / "sft/model/model.safetensors").read_bytes() != old["sft/model/model.safetensors"]
    samples = [json.loads(x) for x in (run / "sft/samples.jsonl").read_text().splitlines()]
    new_ff = json.loads((run / "sft/format_following.json").read_text())
    assert json.loads((run / "stages/sft.json").read_text())["key"]["config"]["sft.lr"] == 0.05
    assert (run / "sft/samples.jsonl").stat().st_mtime_ns > (run / "sft/model/complete.json").stat().st_mtime_ns
    assert samples and new_ff["after"]["n"] >= 1
    # the evaluation is made again for the new model (its key holds every model by content)
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 0, res.output
    assert "stage eval: settings or inputs changed" in res.output or (run / "eval/report.json").read_bytes() != \
        old["eval/report.json"]
    report = json.loads((run / "eval/report.json").read_text())
    assert report["models"]["sft"]["path"] == str(run / "sft" / "model")
    # a later training stage does not pass its old model off as trained from the new SFT model
    res = CliRunner().invoke(app, ["run", "-c", str(run / "recipe.yaml"), "-o", str(run), "--set", "sft.lr=0.05"])
    assert res.exit_code == 2 and "base.weights changed" in res.output and "rm.resume=fresh" in res.output


def test_inputs_are_compared_by_content_and_named_when_they_change(tmp_path):
    from llm_recipe.run_keys import describe, differences, run_key

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "web.jsonl").write_text('{"text": "same"}\n')
    key_a = run_key({"lr": 0.1}, seed=0, inputs=[tmp_path / "a" / "web.jsonl"])
    key_b = run_key({"lr": 0.1}, seed=0, inputs=[tmp_path / "b" / "web.jsonl"])
    assert differences(key_a, key_b) == []  # the same content elsewhere is the same input
    (tmp_path / "b" / "web.jsonl").write_text('{"text": "edited"}\n')
    edited = run_key({"lr": 0.2}, seed=0, inputs=[tmp_path / "b" / "web.jsonl"])
    diff = differences(key_a, edited)
    assert diff == ["config.lr", "inputs.web.jsonl"]
    assert describe(diff, key_a, edited) == "lr 0.1 -> 0.2, web.jsonl changed"


def test_hh_answers_come_from_the_model_sft_starts_from_and_minus_m_wins(tmp_path):
    """`dpo -m X --set dpo.data=hh` pairs refusals with X's own answers, not the released model's;
    hh.answers_from still wins, and a recipe run without -m reads the model SFT starts from."""
    from llm_recipe.config import HHConfig
    from llm_recipe.stages.hh import starting_model

    arts = {"pretrained_model": "run/pretrain/model", "sft_model": "run/sft/model"}
    assert starting_model(RunContext(_cfg(tmp_path), dict(arts), model="cli/model")) == "cli/model"
    assert starting_model(RunContext(_cfg(tmp_path), dict(arts))) == "run/pretrain/model"
    assert starting_model(RunContext(_cfg(tmp_path, sft=SFTConfig(init_from="my/init")))) == "my/init"
    assert starting_model(RunContext(_cfg(tmp_path))) == "released/model"
    pinned = _cfg(tmp_path, hh=HHConfig(answers_from="answers/model"))
    assert starting_model(RunContext(pinned, dict(arts), model="cli/model")) == "answers/model"
    with pytest.raises(ValueError, match="no model to start from.*a pretrain: section or model.name_or_path"):
        starting_model(RunContext(RecipeConfig(output_dir=tmp_path)))  # the SFT stage's predecessors, named
