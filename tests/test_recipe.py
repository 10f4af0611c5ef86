import json
from pathlib import Path

import pytest
from run_helpers import FAST, FAST_ALIGN, FAST_EVAL
from typer.testing import CliRunner

from llm_recipe.cli import app


@pytest.mark.slow
def test_run_recipe_end_to_end_then_rerun_skips_finished_stages(tiny_run):
    out = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    for path in summary["artifacts"].values():
        assert Path(path).exists(), path
    assert (out / "pretrain" / "model" / "model.safetensors").exists()
    assert (out / "report.html").stat().st_size > 10_000  # the run ends with its report (tests/test_report_browser.py)
    # model cards: how each model was made, its evaluation row, the context it was trained on
    card = (out / "sft" / "model" / "README.md").read_text()
    assert "## Evaluation (llm-recipe eval)" in card and "| sft | base |" in card
    assert "trained context length: 128 tokens" in card and "## Recipe section" in card
    # the Hub's metadata: its eval row as model-index results (#31)
    from huggingface_hub import ModelCard

    meta = ModelCard(card).data
    assert meta.pipeline_tag == "text-generation" and meta.library_name == "transformers" and meta.model_name == "sft"
    assert {r.metric_type for r in meta.eval_results} >= {"refusal_rate", "kl"}
    assert "trained context length: 64 tokens" in (out / "pretrain" / "model" / "README.md").read_text()
    # a checkpoint loads on its own: it holds the tokenizer too
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = sorted((out / "pretrain" / "checkpoints").glob("step-*"))[-1]
    assert AutoTokenizer.from_pretrained(ckpt).model_max_length == 64
    assert AutoModelForCausalLM.from_pretrained(ckpt).config.num_hidden_layers > 0
    # every artifact is readable by a teammate or a serving account, as a plain open() would make it
    from llm_recipe.files import new_file_mode

    modes = {p.relative_to(out): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert {m for m in modes.values()} == {new_file_mode()}, {p: oct(m) for p, m in modes.items()
                                                             if m != new_file_mode()}
    # Every stage of the tiny recipe ran, in order, each into its own folder.
    assert list(summary["seconds"]) == ["corpus", "tokenizer", "tokens", "pretrain", "sample", "sft", "constitutional", "rm", "bon",
                                        "dpo", "online_dpo", "ppo", "eval"]
    for name in ("sft_model", "reward_model", "dpo_model", "online_dpo_model", "ppo_model"):
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
    # The tiny recipe curates first, then tokenizes the curated corpus with its tokenizer into token
    # shards; pretraining samples the mixture from them (nothing copied) and validates on held-out documents.
    assert Path(summary["artifacts"]["corpus"]).is_relative_to(out / "curated")
    assert (out / "curated" / "stats.json").exists() and not (out / "curated" / "mixed").exists()
    mixture = json.loads((out / "curated" / "tokens" / "mixture.json").read_text())
    assert mixture["token_budget"] == 12000 and set(mixture["sources"]) == {"web", "wiki", "books", "code", "qa"}
    report = json.loads((out / "pretrain" / "data_report.json").read_text())
    assert report["token_data"] == str(out / "curated" / "tokens") and report["mixture"]
    assert report["train"]["windows_per_epoch"] == 12000 // 64 and report["val_windows"] > 0
    assert "Token shards: tokens per source" in (out / "report.html").read_text(encoding="utf-8")
    weights = (out / "pretrain" / "model" / "model.safetensors").read_bytes()

    # A second run finds every stage complete and does not retrain.
    eval_report = (out / "eval" / "report.json").read_bytes()
    derived = {p: p.read_bytes() for p in (out / "online_dpo" / "report.json", out / "constitutional" / "report.json")}
    res = CliRunner().invoke(app, ["run", "--config", "tiny", "--output-dir", str(out), "--seed", "1", *FAST,
                                   *FAST_ALIGN, *FAST_EVAL])
    assert res.exit_code == 0, res.output
    assert (out / "pretrain" / "model" / "model.safetensors").read_bytes() == weights
    assert (out / "eval" / "report.json").read_bytes() == eval_report
    assert all(p.read_bytes() == b for p, b in derived.items())  # online DPO and CAI data not made again
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    assert all(seconds[k] < 1.0 for k in ("pretrain", "sft", "rm", "bon", "dpo", "ppo", "eval")), seconds


@pytest.mark.slow
def test_interrupted_pretraining_stops_the_recipe_and_the_same_command_resumes(tmp_path, monkeypatch):
    import llm_recipe.stages.pretrain as pretrain  # where the pretrain stage looks the trainer up
    from llm_recipe.train.loop import stop_at_step

    out = tmp_path / "run"
    args = ["run", "--config", "tiny", "--output-dir", str(out), *FAST, "--set", "pretrain.max_steps=8",
            *(f"--set={s}=null" for s in ("sft", "rm", "bon", "dpo", "online_dpo", "ppo")), *FAST_EVAL]
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
    assert list(summary["seconds"]) == ["corpus", "tokenizer", "tokens", "pretrain", "sample", "eval"]
    steps = [json.loads(ln)["step"] for ln in (out / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 8 and summary["results"]["pretrain"]["eval_loss_last"] > 0
    # The pretrained model has no chat template and the run no SFT model: what needs answers is
    # "not run" with the reason, the held-out text perplexity is measured.
    base = json.loads((out / "eval" / "report.json").read_text())["models"]["base"]
    assert base["generation"] == {"not_run": "no chat template (the model has none and the run has no SFT model)"}
    assert base["perplexity"]["corpus"]["ppl"] > 1 and "not_run" in base["perplexity"]["sft_answers"]
    assert "not run [1]" in (out / "eval" / "table.md").read_text()
