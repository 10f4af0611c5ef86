"""The learned quality filter (FineWeb-Edu style): a judge's 0-5 grades, the regressor that learns
them, its agreement on held-out documents, the filter in curation, and the CLI with a local LM."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import CurateConfig
from llm_recipe.config.curate import AnnotateQualityConfig
from llm_recipe.data.curate import curate
from llm_recipe.data.quality.grading import CausalLMGrader, ChatGrader, grading_prompt
from llm_recipe.data.quality.learned import QualityRegressor, agreement, annotate_quality
from llm_recipe.demo.noisy_corpus import inject_noise
from llm_recipe.demo.sample_corpus import iter_sample_docs


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory, tokenizer_dir):
    """A tiny random causal LM with the session tokenizer: a judge whose grades are arbitrary but
    whose arithmetic can be checked exactly."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=2048))
    out = tmp_path_factory.mktemp("judge")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_local_grader_is_the_expected_digit_under_the_next_token_distribution(judge_dir):
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(judge_dir), load_tokenizer(judge_dir)
    grader = CausalLMGrader(model, tok, batch_size=2)
    prompts = [grading_prompt("短い文。", "ja"), grading_prompt("A much longer English document. " * 20, "en"),
               grading_prompt("Third.", "en")]
    scores = grader.grade(prompts)
    for p, s in zip(prompts, scores, strict=True):
        ids = torch.tensor([grader.prompt_ids(p)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        prob = torch.softmax(logits[grader.digit_ids].double(), -1).numpy()
        assert s == pytest.approx(float(prob @ np.arange(6)), abs=1e-4)  # left padding changes nothing
    assert grader.distribution.shape == (3, 6) and np.allclose(grader.distribution.sum(1), 1)


def _score_by_rule(messages: list[dict]) -> str:
    """A stand-in judge with a clear rule: prose sentences up, shouting and symbols down."""
    doc = messages[-1]["content"].split('"""')[1]
    sentences = len(re.findall(r"[。.](?:\s|$)", doc))
    noise = len(re.findall(r"[!！★◆$#=<>↓]", doc))
    score = min(5, sentences // 2) - min(5, noise // 2)
    return f"Score: {max(0, score)}"


@pytest.fixture(scope="module")
def noisy_docs():
    docs, _ = inject_noise(iter_sample_docs(60, 0), per_type=8, seed=0)
    return docs


def test_regressor_learns_the_judge_and_reports_agreement(noisy_docs, tmp_path):
    cfg = AnnotateQualityConfig(sample=240, held_out=0.25, embedder="hashed", threshold=2.0)
    rep = annotate_quality(iter(noisy_docs), ChatGrader(_score_by_rule, "rule"), cfg, tmp_path, seed=0)
    assert rep["judged"] == 240 and rep["held_out"] == 60 and rep["docs_seen"] == len(noisy_docs)
    ag = rep["agreement"]
    assert ag["spearman"] >= 0.6 and ag["f1"] >= 0.75, ag  # it learned the judge, not the mean
    assert ag["mae"] < ag["mae_predict_train_mean"]
    hist = rep["judge_scores"]["rounded_histogram"]
    assert sum(hist.values()) == 240 and hist["0"] > 0 and hist["5"] > 0
    lines = (tmp_path / "annotations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 240 and json.loads(lines[0])["judge_score"] is not None
    reg = QualityRegressor.load(tmp_path / "regressor")
    assert reg.embedder == "hashed"
    # as a curation filter: the documents the judge would fail are the ones dropped
    shard = tmp_path / "web.jsonl"
    shard.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in noisy_docs), encoding="utf-8")
    ccfg = CurateConfig.model_validate({
        "executor": {"workers": 1, "progress": False}, "output": {"keep_dropped": True},
        "quality": {"learned": {"enabled": True, "model": str(tmp_path / "regressor"), "threshold": 2.0}},
        **{k: {"enabled": False} for k in ("language", "min_length", "short_lines", "char_ratios", "gopher_quality",
                                           "gopher_repetition", "hiragana", "pii", "decontaminate")}})
    res = curate(ccfg, tmp_path / "out", inputs=[shard])
    st = res.stats["steps"]["learned_quality"]
    assert 0 < st["dropped"]["low_judged_quality"] < len(noisy_docs)
    dropped = [json.loads(x) for x in (tmp_path / "out" / "dropped" / "00000-web.jsonl").read_text().splitlines()]
    judged = [int(_score_by_rule([{"content": f'"""{d["text"]}"""'}]).split()[-1]) for d in dropped]
    assert np.mean(judged) < 2.0  # what the regressor dropped, the judge mostly scores low


def test_agreement_arithmetic():
    judge = np.array([0, 1, 4, 5, 3, 2.0])
    pred = np.array([0.5, 3.5, 4.2, 2.0, 3.1, 1.0])
    ag = agreement(judge, pred, 3.0)
    # judge positives {2,3,4}; predicted positives {1,2,4}: tp 2, P 2/3, R 2/3
    assert ag["precision"] == pytest.approx(2 / 3, abs=1e-4) and ag["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert ag["mae"] == pytest.approx(np.abs(judge - pred).mean(), abs=1e-4)
    assert agreement(np.ones(4), np.ones(4), 3.0)["spearman"] is None  # undefined, not NaN


def test_cli_annotate_quality_with_a_local_judge_then_curate_with_it(judge_dir, tmp_path):
    common = ["-c", "curate", "-o", str(tmp_path), "--set", "corpus.docs_per_source=12",
              "--set", "curate.input.sample_noise_per_type=0", "--set", "curate.mixing=null",
              "--set", "curate.input.sample_web=false",
              "--set", "curate.quality.annotate.embedder=hashed", "--set", "curate.executor.workers=1"]
    r = CliRunner().invoke(app, ["curate", "annotate-quality", *common, "--judge-model", str(judge_dir),
                                 "--sample", "30"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "quality_annotation" / "report.json").read_text())
    assert rep["judged"] == 30 and 0 <= rep["judge_scores"]["min"] <= rep["judge_scores"]["max"] <= 5
    assert len(rep["judge_scores"]["mean_digit_probability"]) == 6 and "Spearman" in r.output
    assert rep["languages"].keys() <= {"ja", "en", "zh", "ko", "de", "fr", "es", "ru", "it", "pt"}
    reg = tmp_path / "quality_annotation" / "regressor"
    r = CliRunner().invoke(app, ["curate", *common, "--set", "curate.quality.learned.enabled=true",
                                 "--set", f"curate.quality.learned.model={reg}",
                                 "--set", "curate.quality.learned.threshold=0"])
    assert r.exit_code == 0, r.output
    assert "learned_quality: no drops" in r.output  # threshold 0: every score passes
    bad = CliRunner().invoke(app, ["curate", "annotate-quality", *common])
    assert bad.exit_code == 2 and "no judge model" in bad.output and "Traceback" not in bad.output
    # options given before the subcommand name apply to it
    bad = CliRunner().invoke(app, ["curate", *common, "--set", "curate.quality.annotate.judge=remote",
                                   "annotate-quality"])
    assert bad.exit_code == 2 and "judge='remote'" in bad.output


def test_cli_annotate_quality_with_an_endpoint_judge_and_a_rerun_asks_nothing(tmp_path):
    """The judge behind a real HTTP endpoint on loopback (the scripted rubric judge above): every
    sampled document is graded through it, the answers are cached, and a rerun sends no request."""
    from serve_helpers import FakeEndpoint

    common = ["-c", "curate", "-o", str(tmp_path), "--set", "corpus.docs_per_source=12",
              "--set", "curate.input.sample_noise_per_type=2", "--set", "curate.mixing=null",
              "--set", "curate.input.sample_web=false", "--set", "curate.quality.annotate.embedder=hashed",
              "--set", "curate.executor.workers=1", "--sample", "30"]
    with FakeEndpoint() as fe:
        fe.answer = lambda prompt: _score_by_rule([{"content": prompt}])
        judge = ["--set", f"curate.quality.annotate.judge.base_url={fe.base}",
                 "--set", "curate.quality.annotate.judge.model=judge-x"]
        r = CliRunner().invoke(app, ["curate", "annotate-quality", *common, *judge])
        assert r.exit_code == 0, r.output
        rep = json.loads((tmp_path / "quality_annotation" / "report.json").read_text())
        assert rep["judged"] == 30 and rep["judge"] == f"judge-x @ {fe.base}"
        notes = [json.loads(x) for x in (tmp_path / "quality_annotation" / "annotations.jsonl").read_text().splitlines()]
        assert len({n["judge_score"] for n in notes}) > 1  # the rubric's scores, not one constant
        asked = fe.chat_requests
        assert asked == 30 and (tmp_path / "quality_annotation" / "judge_cache.jsonl").is_file()
        again = CliRunner().invoke(app, ["curate", "annotate-quality", *common, *judge])
        assert again.exit_code == 0 and fe.chat_requests == asked  # every answer came from the cache
    down = CliRunner().invoke(app, ["curate", "annotate-quality", *common, "-o", str(tmp_path / "down"), *judge])
    assert down.exit_code != 0 and "judge-x" in down.output and "Traceback" not in down.output
