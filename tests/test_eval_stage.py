"""The evaluation stage on a (seconds-long) tiny run: every model, every figure, read back from
the answers it stored; runs with missing parts say what was not run and why."""

import json
import math
import shutil

import pytest
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.eval.refusal import is_refusal, refusal_labels
from llm_recipe.eval.winrate import outcomes_from_scores

MODELS = ["base", "sft", "best_of_2", "dpo", "online_dpo", "ppo"]


def _answers(run):
    return [json.loads(ln) for ln in (run / "eval" / "answers.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_model_against_its_reference(tiny_run):
    rep = json.loads((tiny_run / "eval" / "report.json").read_text())
    assert rep["order"] == MODELS and rep["prompts"]["held_out"] == 4
    rows = rep["models"]
    assert rows["sft"]["reference"] == "base"
    assert all(rows[m]["reference"] == "sft" for m in ("best_of_2", "dpo", "online_dpo", "ppo"))
    for m in MODELS[1:]:
        for judge in ("win_rate_rm", "win_rate_judge"):
            w = rows[m][judge]
            assert w["wins"] + w["ties"] + w["losses"] == w["n"] == 4, (m, judge)
            assert w["ci95"][0] <= w["win_rate"] <= w["ci95"][1] and 0 <= w["lc_win_rate"] <= 1
        assert 0 <= rows[m]["win_rate_judge"]["first_position_rate"] <= 1
        assert rows[m]["length_vs_reference"]["reference_mean_chars"] == rows[rows[m]["reference"]]["mean_chars"]
    for m in ("sft", "dpo", "ppo"):
        assert rows[m]["kl"]["n"] == 4 and math.isfinite(rows[m]["kl"]["kl"]) and rows[m]["kl"]["reference"]
        assert rows[m]["perplexity"]["corpus"]["ppl"] > 1 and rows[m]["perplexity"]["sft_answers"]["tokens"] > 0
    assert rows["best_of_2"]["kl"]["kl"] == pytest.approx(math.log(2) - 0.5)
    assert "not_run" in rows["best_of_2"]["perplexity"] and "not_run" in rows["base"]["kl"]
    for m in MODELS:
        assert rows[m]["safety"]["harmful_prompts"] == rows[m]["safety"]["benign_prompts"] == 16
        assert rows[m]["sycophancy"]["items"] == 12
    table = (tiny_run / "eval" / "table.md").read_text()
    assert all(f"| {m} |" in table for m in MODELS) and "not run: no reference model" in table
    run_json = json.loads((tiny_run / "eval" / "run.json").read_text())
    assert run_json["stage"] == "eval" and run_json["config"]["eval"]["n_prompts"] == 4


def test_figures_are_those_of_the_stored_answers(tiny_run):
    """Recompute refusal rates and the RM win counts from answers.jsonl: the report agrees."""
    from llm_recipe.infer.reward import RewardScorer

    rep = json.loads((tiny_run / "eval" / "report.json").read_text())
    answers = _answers(tiny_run)
    assert len(answers) == len(MODELS) * (4 + 32 + 2 * 12)
    scorer = RewardScorer.load(tiny_run / "reward_model" / "model")
    held = {m: [a for a in answers if a["model"] == m and a["set"] == "held_out"] for m in MODELS}
    method = rep["refusal_detector"]["method"]
    for m in MODELS:
        harmful = [a for a in answers if a["model"] == m and a["set"] == "safety/harmful"]
        labels = refusal_labels([a["answer"] for a in harmful], method)
        assert [a["label"] for a in harmful] == labels
        assert rep["models"][m]["safety"]["refusal_rate"] == sum(lab != "compliance" for lab in labels) / len(harmful)
        rules = rep["models"][m]["safety"]["rules"]["refusal_rate"]
        assert rules == sum(is_refusal(a["answer"]) for a in harmful) / len(harmful)
    for m in ("sft", "dpo", "ppo"):
        ref = rep["models"][m]["reference"]
        prompts = [a["prompt"] for a in held[m]]
        assert prompts == [a["prompt"] for a in held[ref]]
        o = outcomes_from_scores(scorer.score(prompts, [a["answer"] for a in held[m]]),
                                 scorer.score(prompts, [a["answer"] for a in held[ref]]))
        assert rep["models"][m]["win_rate_rm"]["wins"] == int((o == 1).sum()), m


def test_a_run_without_reward_model_and_summary_gets_every_other_figure(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    shutil.rmtree(run / "reward_model")
    (run / "summary.json").unlink()  # as after an interrupted run: the models are found by the layout
    res = CliRunner().invoke(app, ["eval", str(run), "--set", "eval.n_prompts=2", "--set", "eval.bootstrap=100",
                                   "--set", "eval.sampling.max_new_tokens=4", "--set", "eval.kl_max_new_tokens=4"])
    assert res.exit_code == 0, res.output
    rep = json.loads((run / "eval" / "report.json").read_text())
    rows = rep["models"]
    assert rep["order"] == MODELS and rep["reward_model"] == {"not_run": "the run has no reward model"}
    assert rows["dpo"]["win_rate_rm"] == {"not_run": "the run has no reward model"}
    assert rows["best_of_2"]["generation"] == {"not_run": "the run has no reward model"}
    assert rows["dpo"]["win_rate_judge"]["n"] == 2 and rows["dpo"]["kl"]["n"] == 2  # the rest still runs
    assert "not run [" in res.output and "report:" in res.output


def test_eval_input_errors_are_one_line(tiny_run, tmp_path):
    res = CliRunner().invoke(app, ["eval", str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder" in res.output
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"text": "no prompt"}\n', encoding="utf-8")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    res = CliRunner().invoke(app, ["eval", str(run), "--set", f"eval.prompts=[{bad}]"])
    assert res.exit_code == 2 and f"{bad}:2: an eval prompt needs 'prompt'" in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_lm_evaluation_harness_on_a_task_the_test_writes(tiny_run, tmp_path):
    """The harness's own HF model class on the run's SFT model; its accuracy equals the argmax of
    the choices' log-likelihoods computed here."""
    pytest.importorskip("lm_eval")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_recipe.config import LMHarnessConfig
    from llm_recipe.eval.lm_harness import run_lm_harness

    docs = [("The capital of France is", [" Paris", " Tokyo", " Cairo"], 0),
            ("The capital of Japan is", [" Berlin", " Tokyo", " Rome"], 1),
            ("東京は日本の", ["首都です。", "犬です。"], 0),
            ("The cat sat on the", [" mat", " sky"], 0)]
    data = tmp_path / "caps.jsonl"
    data.write_text("".join(json.dumps({"q": q, "choices": c, "label": y}, ensure_ascii=False) + "\n"
                            for q, c, y in docs), encoding="utf-8")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "caps.yaml").write_text(
        f"task: recipe_caps\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\ntarget_delimiter: ''\ndoc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{label}}'\nmetric_list:\n  - metric: acc\n", encoding="utf-8")
    model_dir = tiny_run / "sft" / "model"
    res = run_lm_harness(model_dir, LMHarnessConfig(tasks=["recipe_caps"], include_path=tmp_path / "tasks"))
    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir)
    hits = 0
    for q, choices, y in docs:
        ctx = tok(q, add_special_tokens=False)["input_ids"]  # the harness adds no BOS for this model class
        lls = []
        for c in choices:
            full = tok(q + c, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].float(), -1)
            lls.append(sum(logp[i - 1, full[i]].item() for i in range(len(ctx), len(full))))
        hits += int(max(range(len(choices)), key=lls.__getitem__) == y)
    assert res["recipe_caps"]["acc,none"] == pytest.approx(hits / len(docs))
    assert run_lm_harness(model_dir, LMHarnessConfig())["not_run"].startswith("no lm-eval tasks")
