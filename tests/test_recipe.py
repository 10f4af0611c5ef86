import json
from pathlib import Path

from typer.testing import CliRunner

from llm_recipe.cli import app

FAST = ["--set", "model.preset=micro", "--set", "corpus.docs_per_source=40", "--set", "tokenizer.vocab_size=600",
        "--set", "pretrain.max_steps=6", "--set", "pretrain.block_size=64", "--set", "pretrain.batch_size=4",
        "--set", "pretrain.eval_every=3", "--set", "pretrain.save_every=3", "--set", "generate.sampling.max_new_tokens=5",
        "--set", "curate.input.sample_noise_per_type=2", "--set", "curate.mixing.token_budget=12000"]
# The stages after pretraining, each cut to a few steps: this test checks the wiring, the stage
# tests check what each stage learns.
FAST_ALIGN = [f"--set={kv}" for kv in (
    "sft.bundled_examples=120", "sft.max_steps=3", "sft.max_length=128", "sft.eval_every=3", "sft.eval_batches=1",
    "rm.synthetic_pairs=40", "rm.max_steps=2", "rm.batch_size=4", "rm.eval_every=2", "rm.eval_batches=1",
    "rm.norm_samples=4", "bon.n=2", "bon.n_prompts=2", "bon.sampling.max_new_tokens=4",
    "dpo.style_pairs=24", "dpo.max_steps=2", "dpo.batch_size=4", "dpo.eval_every=2", "dpo.eval_batches=1",
    "dpo.eval_prompts=2", "dpo.max_new_tokens=4", "dpo.warmup_steps=0",
    "ppo.iterations=1", "ppo.rollout_batch_size=4", "ppo.minibatch_size=4", "ppo.n_prompts=8", "ppo.eval_prompts=2",
    "ppo.sampling.max_new_tokens=4", "ppo.epochs=1")]


def test_run_recipe_end_to_end_then_rerun_skips_finished_stages(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST,
                                   *FAST_ALIGN])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    for path in summary["artifacts"].values():
        assert Path(path).exists(), path
    assert (out / "pretrain" / "model" / "model.safetensors").exists()
    # Every stage of the tiny recipe ran, in order, each into its own folder.
    assert list(summary["seconds"]) == ["corpus", "tokenizer", "pretrain", "sample", "sft", "rm", "bon", "dpo", "ppo"]
    for name in ("sft_model", "reward_model", "dpo_model", "ppo_model"):
        assert (Path(summary["artifacts"][name]) / "model.safetensors").exists(), name
    bon = json.loads(Path(summary["artifacts"]["best_of_n_report"]).read_text())
    assert bon["n"] == 2 and bon["prompts"] == 2
    assert json.loads((out / "dpo" / "style_report.json").read_text())["prompts"] == 2
    # The headline figures are read back from each stage's own report.
    results = summary["results"]
    assert list(results) == ["pretrain", "sft", "rm", "bon", "dpo", "ppo"]
    assert results["dpo"]["held_out_prompts"] == 2 and results["bon"]["n"] == 2
    assert 0.0 <= results["ppo"]["success_after"] <= 1.0 and results["pretrain"]["eval_loss_last"] > 0
    samples = [json.loads(ln) for ln in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == ["東京は", "The capital of France", "### Instruction:"]
    resolved = (out / "recipe.yaml").read_text()
    assert "seed: 1" in resolved and "max_steps: 6" in resolved
    run_json = json.loads((out / "pretrain" / "run.json").read_text())
    assert run_json["config"]["seed"] == 1 and run_json["config"]["pretrain"]["max_steps"] == 6
    # The tiny recipe curates first: stats add up and the realized mixture meets the budget.
    assert Path(summary["artifacts"]["corpus"]).is_relative_to(out / "curated")
    assert (out / "curated" / "stats.json").exists() and (out / "curated" / "mixed" / "mixture.json").exists()
    weights = (out / "pretrain" / "model" / "model.safetensors").read_bytes()

    # A second run finds every stage complete and does not retrain.
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST,
                                   *FAST_ALIGN])
    assert res.exit_code == 0, res.output
    assert (out / "pretrain" / "model" / "model.safetensors").read_bytes() == weights
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    assert all(seconds[k] < 1.0 for k in ("pretrain", "sft", "rm", "bon", "dpo", "ppo")), seconds


def test_interrupted_pretraining_stops_the_recipe_and_the_same_command_resumes(tmp_path, monkeypatch):
    import llm_recipe.stages.pretrain as pretrain  # where the pretrain stage looks the trainer up
    from llm_recipe.train.loop import stop_at_step

    out = tmp_path / "run"
    args = ["run", "--config", "tiny", "--output-dir", str(out), *FAST, "--set", "pretrain.max_steps=8",
            *(f"--set={s}=null" for s in ("sft", "rm", "bon", "dpo", "ppo"))]
    real = pretrain.run_pretrain
    # What SIGTERM does inside the loop: save a checkpoint and return early.
    monkeypatch.setattr(pretrain, "run_pretrain", lambda **kw: real(**kw, callbacks=[stop_at_step(5)]))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 143 and "stopped: pretraining stopped at step 5" in res.output, res.output
    assert not (out / "samples.jsonl").exists() and not (out / "summary.json").exists()  # later stages never ran
    monkeypatch.setattr(pretrain, "run_pretrain", real)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["seconds"]) == ["corpus", "tokenizer", "pretrain", "sample"]
    steps = [json.loads(ln)["step"] for ln in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 8 and summary["results"]["pretrain"]["eval_loss_last"] > 0
