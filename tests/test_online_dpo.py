"""Online (iterative) DPO on the tiny run: each round samples from the previous round's policy,
trains against the configured reference, and a rerun resumes by round, reproducing the figures."""

import json
import math
import os
import shutil

import pytest
from run_helpers import FAST_ALIGN
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.stages.online_dpo import round_prompts


def _json(p):
    return json.loads(p.read_text(encoding="utf-8"))


def _step0_loss(round_dir):
    return next(h for h in _json(round_dir / "dpo_report.json")["history"] if h["step"] == 0)["eval_loss"]


def test_round_prompts_are_fresh_each_round_and_cycle():
    pool = [{"prompt": str(i)} for i in range(5)]
    assert [p["prompt"] for p in round_prompts(pool, 1, 2)] == ["0", "1"]
    assert [p["prompt"] for p in round_prompts(pool, 2, 2)] == ["2", "3"]
    assert [p["prompt"] for p in round_prompts(pool, 3, 2)] == ["4", "0"]


def test_rounds_sample_from_the_current_policy_against_the_initial_reference(tiny_run):
    d = tiny_run / "online_dpo"
    rep = _json(d / "report.json")
    assert [r["round"] for r in rep["rounds"]] == [1, 2] and rep["reference_model"] == "initial"
    sft = str(tiny_run / "sft" / "model")
    r1, r2 = _json(d / "round-1" / "data_round.json"), _json(d / "round-2" / "data_round.json")
    assert r1["policy"] == sft and r2["policy"] == str(d / "round-1" / "model")  # on-policy: sampled from the last policy
    assert r1["prompts"] == r2["prompts"] == 6 and r1["candidates"] == 12
    first = {json.dumps(c["prompt"]) for c in map(json.loads, (d / "round-1" / "candidates.jsonl").open())}
    second = {json.dumps(c["prompt"]) for c in map(json.loads, (d / "round-2" / "candidates.jsonl").open())}
    assert not first & second  # fresh prompts each round
    for r, row in zip((r1, r2), rep["rounds"], strict=True):
        assert row["pairs"] == r["pairs"] > 0 and row["mean_score"] == pytest.approx(r["mean_score"])
        assert row["mean_score_chosen"] >= row["mean_score_rejected"]  # best vs worst by the RM
    # round 1 starts at its reference (DPO loss log 2 at step 0); round 2's policy has moved away from it
    assert _step0_loss(d / "round-1") == pytest.approx(math.log(2), abs=1e-5)
    assert _step0_loss(d / "round-2") != pytest.approx(math.log(2), abs=1e-4)
    assert _json(d / "round-2" / "dpo_report.json")["reference"]["model"] == sft
    assert os.path.samefile(d / "model" / "model.safetensors", d / "round-2" / "model" / "model.safetensors")
    assert _json(d / "run.json")["stage"] == "online_dpo"
    assert (d / "rounds.png").stat().st_size > 0


def _cli(run, out, *extra):
    return CliRunner().invoke(app, ["online-dpo", "-c", "tiny", "--model", str(run / "sft" / "model"),
                                    "--rm", str(run / "reward_model" / "model"), "-o", str(out), "--seed", "1",
                                    *FAST_ALIGN, *extra])


def test_rerun_resumes_by_round_and_reproduces_the_figures(tiny_run, tmp_path):
    src = tiny_run / "online_dpo"
    d = tmp_path / "online_dpo"
    shutil.copytree(src, d)
    for p in (d / "model", d / "round-2" / "model", d / "report.json"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in (d / "round-2").glob("checkpoints"):
        shutil.rmtree(p)
    (d / "round-2" / "metrics.jsonl").unlink()
    kept = {p: p.stat().st_mtime_ns for p in (d / "round-1" / "model" / "model.safetensors",
                                                d / "round-2" / "candidates.jsonl")}
    res = _cli(tiny_run, tmp_path)
    assert res.exit_code == 0, res.output
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # round 1 and round 2's data reused
    assert _json(d / "report.json")["rounds"] == _json(src / "report.json")["rounds"]  # same figures, retrained


@pytest.mark.slow
def test_previous_round_as_reference(tiny_run, tmp_path):
    res = _cli(tiny_run, tmp_path, "--set", "online_dpo.reference_model=previous", "--rounds", "2")
    assert res.exit_code == 0, res.output
    d = tmp_path / "online_dpo"
    assert _json(d / "round-2" / "dpo_report.json")["reference"]["model"] == str(d / "round-1" / "model")
    assert _step0_loss(d / "round-2") == pytest.approx(math.log(2), abs=1e-5)  # the policy is its reference
    res = _cli(tiny_run, tmp_path, "--set", "online_dpo.reference_model=previous", "--rounds", "2",
               "--set", "online_dpo.beta=0.5")
    assert res.exit_code == 2 and "beta 0.1 -> 0.5" in res.output and "online_dpo.resume=fresh" in res.output


def test_no_reward_model_is_one_line(tiny_run, tmp_path):
    res = CliRunner().invoke(app, ["online-dpo", "-c", "tiny", "--model", str(tiny_run / "sft" / "model"),
                                   "-o", str(tmp_path), *FAST_ALIGN])
    assert res.exit_code == 2 and "labeler 'rm' needs label.reward_models or an rm: section" in res.output
