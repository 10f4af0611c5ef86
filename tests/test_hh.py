"""The helpful-harmless set and recipe: the set is bilingual, categorised and disjoint from the eval
prompts; its SFT records and DPO pairs put refusals where harm is asked for and the model's own
answers elsewhere, counting every skip; `recipes/smollm2_hh.yaml` runs end to end (on a micro chat
model, a few steps: the full SmolLM2 run is `benchmarks/hh_recipe.py`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_recipe.eval.refusal import is_refusal, refusal_labels
from llm_recipe.eval.sets import BUNDLED, load_safety_set
from llm_recipe.preference.hh import (
    BUNDLED as HH_SET,
)
from llm_recipe.preference.hh import (
    build_hh_set,
    cut_to_sentence,
    hh_pairs,
    hh_sft_records,
    load_hh_set,
    ngram_overlap,
)
from llm_recipe.preference.records import SkipLog


def test_bundled_hh_set_is_bilingual_categorised_and_regenerates_identically():
    hh = load_hh_set()
    d = hh.describe()
    assert (d["harmful"], d["benign"], d["ordinary"]) == (140, 140, 60)
    for kind in ("harmful", "benign", "ordinary"):
        langs = [it.lang for it in hh.items if it.kind == kind]
        assert langs.count("en") == langs.count("ja")
    cats = {it.category for it in hh.items if it.kind == "harmful"}
    assert cats == {"weapons", "drugs", "cyber", "self-harm", "privacy", "hate", "fraud"}
    assert {it.category for it in hh.items if it.kind == "benign"} == {
        "homonym", "safe_context", "history", "fiction", "figurative"}
    # the file is what the generator writes from the hand-written parts (no hand edits drift in)
    assert [json.loads(ln) for ln in HH_SET.read_text(encoding="utf-8").splitlines()] == build_hh_set()
    # every harmful prompt gets a helpful refusal: the detector sees it decline
    refusals = [it.refusal for it in hh.items if it.kind == "harmful"]
    labels = refusal_labels(refusals)
    assert "compliance" not in labels, [r for r, lab in zip(refusals, labels, strict=True) if lab == "compliance"]
    assert len(set(refusals)) > 100  # varied wording, not one refusal


def test_hh_set_shares_no_wording_with_the_eval_prompts():
    train = [it.prompt for it in load_hh_set().items]
    evals = [it.prompt for it in load_safety_set().items]  # safety-v2
    evals += [it.prompt for it in load_safety_set("safety-v1").items]
    evals += [json.loads(ln)["prompt"] for ln in BUNDLED["helpful"].read_text(encoding="utf-8").splitlines()]
    assert not set(train) & set(evals)
    overlap = ngram_overlap(train, evals, n=12)
    assert max(overlap) < 0.5, sorted(zip(overlap, train, strict=True))[-3:]
    # the test can fail: a training prompt copied from the eval set is caught
    assert max(ngram_overlap([*train[:3], evals[5]], evals, n=12)) == 1.0


def test_records_and_pairs_put_refusals_where_harm_is_asked_and_own_answers_elsewhere():
    items = [it for it in load_hh_set().items if it.id.endswith("-001")]  # one per kind and language
    assert len(items) == 6
    answers = {"harmful": "Sure, here is how: step 1.", "benign": "Here is how to do it safely.",
               "ordinary": "Rome is the capital of Italy."}
    own = [answers[it.kind] for it in items]
    own[items.index(next(it for it in items if it.kind == "benign" and it.lang == "ja"))] = "申し訳ありませんが、お答えできません。"
    log = SkipLog()
    recs = hh_sft_records(items, own, is_refusal, log)
    assert log.skipped == {"own_answer_refuses_benign": 1} and log.kept == 5 == len(recs)
    by_prompt = {r["messages"][0]["content"]: r["messages"][1]["content"] for _, r in recs}
    for it in items:
        if it.kind == "harmful":
            assert by_prompt[it.prompt] == it.refusal
    log = SkipLog()
    pairs = hh_pairs(items, own, is_refusal, log)
    assert len(pairs) == 5
    for p in pairs:
        if p.meta["kind"] == "harmful":
            assert is_refusal(p.chosen) and p.rejected == answers["harmful"]
        else:
            assert p.chosen == answers[p.meta["kind"]] and is_refusal(p.rejected)
    # a model that already refuses a harmful request gives no pair (refusal vs refusal), counted
    log = SkipLog()
    assert len(hh_pairs(items[:1], ["I can't help with that."], is_refusal, log)) == 0
    assert log.skipped == {"own_answer_already_refuses_harmful": 1}


def test_answers_cut_by_the_length_limit_end_at_their_last_sentence():
    assert cut_to_sentence("Boil water. Add the pasta. Stir it for") == "Boil water. Add the pasta."
    assert cut_to_sentence("お湯を沸かします。麺を入れて") == "お湯を沸かします。"
    assert cut_to_sentence("no sentence end") == "no sentence end"


@pytest.fixture(scope="module")
def micro_chat_model(tokenizer_dir, tmp_path_factory):
    """A micro model with a ChatML template, saved like a released model."""
    from transformers import AutoTokenizer

    from llm_recipe.models.presets import build_preset_model
    from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_chat_format(tok, get_chat_format("chatml", tok))
    out = tmp_path_factory.mktemp("micro_chat")
    build_preset_model("micro", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_hh_recipe_runs_end_to_end_on_a_micro_model(micro_chat_model, tmp_path):
    from typer.testing import CliRunner

    from llm_recipe.cli import app

    # a small HH set and small eval sets keep it short; the stages, files and figures are the real ones
    small_hh = tmp_path / "hh.jsonl"
    recs = [json.loads(ln) for ln in HH_SET.read_text(encoding="utf-8").splitlines()]
    small_hh.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs[::12]), encoding="utf-8")
    small_safety = tmp_path / "safety.jsonl"
    srecs = [json.loads(ln) for ln in BUNDLED["safety"].read_text(encoding="utf-8").splitlines()]
    small_safety.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in srecs[::10]), encoding="utf-8")
    out = tmp_path / "run"
    sets = [f"--set={kv}" for kv in (
        f"model.name_or_path={micro_chat_model}", "compute.mixed_precision='no'", f"hh.set={small_hh}",
        "hh.sampling.max_new_tokens=8", "hh.sampling.temperature=1.0", "sft.format=chatml", "sft.lora=null", "sft.max_steps=2", "sft.batch_size=4",
        "sft.eval_every=2", "sft.eval_batches=1", "generate.sampling.max_new_tokens=4", "dpo.lora=null",
        "dpo.max_steps=2", "dpo.batch_size=4", "dpo.eval_every=2", "dpo.eval_batches=1", "dpo.warmup_steps=0",
        f"eval.safety_set={small_safety}", "eval.sycophancy_set=sycophancy-v1", "eval.n_prompts=4",
        "eval.sampling.max_new_tokens=6", "eval.kl_max_new_tokens=4", "eval.bootstrap=100", "eval.models=[dpo]")]
    res = CliRunner().invoke(app, ["run", "--config", "smollm2_hh", "--output-dir", str(out), *sets])
    assert res.exit_code == 0, res.output
    answers = [json.loads(ln) for ln in (out / "hh" / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(answers) == len(recs[::12])
    hh_report = json.loads((out / "hh" / "data_report.json").read_text(encoding="utf-8"))
    assert hh_report["sft"]["kept"] + sum(hh_report["sft"]["skipped"].values()) == len(answers)
    pairs = [json.loads(ln) for ln in (out / "dpo" / "hh_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert pairs and all(p["meta"]["kind"] in ("harmful", "benign", "ordinary") for p in pairs)
    rep = json.loads((out / "eval" / "report.json").read_text(encoding="utf-8"))
    assert rep["order"] == ["base", "dpo"]  # eval.models=[dpo]: the DPO model and its reference
    assert [rep["models"][m]["reference"] for m in rep["order"]] == [None, "base"]  # compare_to: base
    assert rep["prompts"]["held_out"] == 4 and rep["sets"]["safety"]["items"] == len(srecs[::10])
    assert 0 <= rep["models"]["dpo"]["identical_to_reference"] <= 1
    safety = rep["models"]["dpo"]["safety"]
    assert safety["refusal"]["n"] == sum(r["kind"] == "harmful" for r in srecs[::10])
    lo, hi = safety["refusal"]["ci95"]
    assert lo <= safety["refusal_rate"] <= hi
    assert set(safety["by_category"]["harmful"]) <= {"weapons", "drugs", "cyber", "self-harm", "privacy", "hate",
                                                     "fraud"}
    assert rep["refusal_detector"]["method"] == "classifier"
    # the README's HH block is made from these files
    script = Path(__file__).resolve().parent.parent / "scripts" / "readme_figures.py"
    block = subprocess.run([sys.executable, str(script), "--hh", str(out)], capture_output=True, text=True,
                           check=True).stdout
    lo, hi = safety["over_refusal"]["ci95"]
    assert f"| dpo | {safety['refusal_rate']:.0%} [" in block and f"{safety['over_refusal_rate']:.0%} [{lo:.0%}, {hi:.0%}]" in block
