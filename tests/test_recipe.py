import json
from pathlib import Path

from typer.testing import CliRunner

from llm_recipe.cli import app

FAST = ["--set", "model.preset=micro", "--set", "corpus.docs_per_source=40", "--set", "tokenizer.vocab_size=600",
        "--set", "pretrain.max_steps=6", "--set", "pretrain.block_size=64", "--set", "pretrain.batch_size=4",
        "--set", "pretrain.eval_every=3", "--set", "pretrain.save_every=3", "--set", "generate.max_new_tokens=5",
        "--set", "curate.input.sample_noise_per_type=2", "--set", "curate.mixing.token_budget=12000"]


def test_run_recipe_end_to_end_then_rerun_skips_finished_stages(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    for path in summary["artifacts"].values():
        assert Path(path).exists(), path
    assert (out / "pretrain" / "model" / "model.safetensors").exists()
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
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST])
    assert res.exit_code == 0, res.output
    assert (out / "pretrain" / "model" / "model.safetensors").read_bytes() == weights
    assert json.loads((out / "summary.json").read_text())["seconds"]["pretrain"] < 1.0
