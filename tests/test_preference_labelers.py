import json

import numpy as np
import pytest
import sacrebleu
import torch
from pref_helpers import one_thread, policy_dir, reward_model_dir
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import CandidateConfig, RuleConfig, SamplingConfig
from llm_recipe.demo.style import STYLE_PREFIX, single_turn_examples
from llm_recipe.models.loading import load_causal_lm, load_tokenizer
from llm_recipe.preference.candidates import generate_candidates, read_prompts
from llm_recipe.preference.judge import CausalLMJudge
from llm_recipe.preference.label import label_by_judge, label_by_scores, read_candidates, rules_fn
from llm_recipe.preference.records import SkipLog
from llm_recipe.preference.rules import RuleScorer
from llm_recipe.preference.text_metrics import bleu, rouge_l, rouge_n, rouge_tokens


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer_dir):
    root, tok = str(tmp_path_factory.getbasetemp()), str(tokenizer_dir)
    return policy_dir(root, tok), reward_model_dir(root, tok)


def _jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


# ---- BLEU / ROUGE ---------------------------------------------------------------------------
def test_rouge_matches_hand_computed_values():
    hyp, ref = "The cat sat on the mat.", "the cat is on the mat"
    assert rouge_tokens(hyp) == ["the", "cat", "sat", "on", "the", "mat"]
    # unigrams: the x2, cat, on, mat overlap = 5 of 6 on both sides -> F1 = 5/6
    assert rouge_n(hyp, ref, 1) == pytest.approx(5 / 6)
    # bigrams: {the cat, on the, the mat} overlap = 3 of 5 on both sides -> F1 = 3/5
    assert rouge_n(hyp, ref, 2) == pytest.approx(3 / 5)
    # LCS: the cat on the mat = 5 -> P = R = 5/6
    assert rouge_l(hyp, ref) == pytest.approx(5 / 6)
    # Clipping: a repeated hypothesis word counts at most as often as in the reference.
    # hyp 'the the the the' vs ref 'the cat': overlap 1, P = 1/4, R = 1/2 -> F1 = 1/3
    assert rouge_n("the the the the", "the cat", 1) == pytest.approx(1 / 3)
    # Japanese is scored per character: 6 of 8 reference characters -> P = 1, R = 3/4 -> F1 = 6/7
    assert rouge_tokens("東京は、大きい") == ["東", "京", "は", "大", "き", "い"]
    assert rouge_n("東京は大きい", "東京は大きいです", 1) == pytest.approx(6 / 7)
    # Per character, 東京大阪 vs 東大京阪 have an LCS of 3 (東京阪) -> P = R = 3/4
    assert rouge_l("東京大阪", "東大京阪") == pytest.approx(3 / 4)
    assert rouge_n("", "abc") == 0.0 and rouge_l("x", "y") == 0.0


def test_bleu_is_sacrebleu_with_japanese_character_tokenization():
    ref = "the cat is sitting on the mat today"
    assert bleu(ref, ref) == pytest.approx(100.0)
    close, far = "the cat is sitting on the mat", "a dog runs in the park"
    assert bleu(close, ref) > bleu(far, ref)
    assert bleu(close, ref) == pytest.approx(sacrebleu.sentence_bleu(close, [ref]).score)
    # Without character tokenization an unspaced Japanese sentence is one "word": BLEU 0.
    ja_ref, ja_hyp = "猫は主に魚や肉を食べます。", "猫は主に魚を食べます。"
    assert sacrebleu.sentence_bleu(ja_hyp, [ja_ref]).score < 10
    assert bleu(ja_hyp, ja_ref) > 40


# ---- rule labeler ----------------------------------------------------------------------------
def test_rule_labeler_pairs_ties_and_missing_references(tmp_path):
    f = _jsonl(tmp_path / "cands.jsonl", [
        {"prompt": "q1", "responses": ["Paris.", STYLE_PREFIX + "Paris."]},  # 1: prefix wins
        {"prompt": "q2", "responses": ["one", "two"]},  # 2: tie
        {"prompt": "q3", "responses": ["", "only one"]},  # 3: empty dropped -> too few
        {"prompt": "q4", "responses": ["x" * 500, STYLE_PREFIX + "x" * 500, "short"]},  # 4: length matters
        {"prompt": "q5", "responses": ["has 1 digit", "no digits"]},  # 5: the regex rule decides
        "{oops",  # 6
    ])
    log = SkipLog()
    cands = read_candidates([f], log)
    rules = [RuleConfig(kind="starts_with", value="Let me explain."),
             RuleConfig(kind="length", max_chars=100, weight=2.0),
             RuleConfig(kind="regex", value=r"\d", weight=-1.0)]
    pairs = label_by_scores(cands, rules_fn(RuleScorer(rules)), "rules", "best_worst", log=log)
    assert log.skipped == {"empty_response": 1, "too_few_responses": 1, "invalid_json": 1, "tie": 1}
    assert log.where["tie"] == [f"{f}:2"]
    assert [(p.prompt, p.chosen) for p in pairs] == [("q1", STYLE_PREFIX + "Paris."), ("q4", "short"),
                                                     ("q5", "no digits")]
    assert pairs[1].rejected == "x" * 500 and pairs[1].meta["score_chosen"] == 2.0
    # 'all' pairs: q4 gives 3 ordered pairs (scores 2, 1, 0 for short, prefix+long, long).
    pairs_all = label_by_scores(cands, rules_fn(RuleScorer(rules)), "rules", "all")
    assert len([p for p in pairs_all if p.prompt == "q4"]) == 3

    ref_rules = [RuleConfig(kind="rougeL"), RuleConfig(kind="bleu")]
    g = _jsonl(tmp_path / "refs.jsonl", [
        {"prompt": "capital?", "reference": "The capital of France is Paris.",
         "responses": ["Paris is the capital of France.", "The capital of France is Paris.", "I like cats."]},
        {"prompt": "no reference", "responses": ["a", "b"]},
    ])
    log2 = SkipLog()
    pairs = label_by_scores(read_candidates([g], log2), rules_fn(RuleScorer(ref_rules)), "rules", log=log2)
    assert [(p.chosen, p.rejected) for p in pairs] == [("The capital of France is Paris.", "I like cats.")]
    assert log2.skipped == {"missing_reference": 1}


# ---- LLM-as-judge ----------------------------------------------------------------------------
class ScriptedJudge(torch.nn.Module):
    """A stand-in LM whose next-token logits prefer the response that starts with the prefix,
    plus a fixed bias towards answering 'A' (position bias)."""

    def __init__(self, tokenizer, bias: float, prefers_prefix: bool = True):
        super().__init__()
        self.tok, self.bias, self.prefers_prefix = tokenizer, bias, prefers_prefix
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.a = tokenizer("A", add_special_tokens=False)["input_ids"][0]
        self.b = tokenizer("B", add_special_tokens=False)["input_ids"][0]

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=1):
        logits = torch.zeros(input_ids.shape[0], 1, len(self.tok))
        for i, row in enumerate(input_ids):
            text = self.tok.decode(row[attention_mask[i].bool()])
            a_has = "Response A: Let me explain." in text
            b_has = "Response B: Let me explain." in text
            pref = 3.0 * (float(a_has) - float(b_has)) if self.prefers_prefix else 0.0
            logits[i, 0, self.a] = pref + self.bias
        return type("Out", (), {"logits": logits})()


def _judge_cands():
    return [{"prompt": q, "responses": [a, STYLE_PREFIX + a] if i % 2 else [STYLE_PREFIX + a, a],
             "where": f"c:{i + 1}"} for i, (q, a) in enumerate(single_turn_examples(40, seed=4)[:8])]


def test_judge_position_swap_cancels_bias_and_disagreement_is_a_tie(tokenizer):
    cands = _judge_cands()
    # Mild position bias (+1 for 'A'): both orders still agree -> every pair labeled correctly.
    judge = CausalLMJudge(ScriptedJudge(tokenizer, bias=1.0), tokenizer, "Request: {prompt}\nResponse A: {a}\n"
                          "Response B: {b}\nBetter:", chat_format="alpaca_en")
    log = SkipLog()
    pairs = label_by_judge(cands, judge, log)
    assert len(pairs) == 8 and log.skipped == {}
    assert all(p.chosen.startswith(STYLE_PREFIX) for p in pairs)
    assert all(p.meta["margin_ab"] * p.meta["margin_ba"] < 0 for p in pairs)
    assert all(p.meta["judge_margin"] == pytest.approx(3.0) for p in pairs)  # bias cancelled
    # A judge that always answers 'A' has no opinion once swapped: all ties, counted with where.
    judge_a = CausalLMJudge(ScriptedJudge(tokenizer, bias=5.0, prefers_prefix=False), tokenizer,
                            "Response A: {a}\nResponse B: {b}", chat_format="alpaca_en")
    log = SkipLog()
    assert label_by_judge(cands, judge_a, log) == []
    assert log.skipped == {"judge_position_disagreement": 8} and log.where["judge_position_disagreement"][0] == "c:1"
    # Strong position bias overriding the preference: without the swap it would label half wrongly.
    judge_s = CausalLMJudge(ScriptedJudge(tokenizer, bias=5.0), tokenizer, "Response A: {a}\nResponse B: {b}",
                            chat_format="alpaca_en")
    assert label_by_judge(cands, judge_s, SkipLog()) == []


def test_judge_cli_with_a_real_causal_lm(models, tmp_path):
    pol_dir, _ = models
    cands = _judge_cands()
    f = _jsonl(tmp_path / "cands.jsonl", [{"prompt": c["prompt"], "responses": c["responses"]} for c in cands])
    out = tmp_path / "judged.jsonl"
    res = CliRunner().invoke(app, ["prefs", "label", str(f), "--out", str(out), "--labeler", "judge", "-m", str(pol_dir)])
    report = json.loads((tmp_path / "judged.report.json").read_text())
    # Every comparison ends as a pair or a counted tie; pairs carry both order margins. A micro
    # judge may tie everything: then the command fails (no pairs) and says why.
    assert report["pairs"] + report["skipped"].get("judge_position_disagreement", 0) == 8
    assert (res.exit_code == 0) if report["pairs"] else (
        res.exit_code == 2 and "no preference pairs labelled" in res.output), res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == report["pairs"]
    assert all(np.sign(r["meta"]["margin_ab"]) != np.sign(r["meta"]["margin_ba"]) for r in rows)
    model, tok = load_causal_lm(pol_dir), load_tokenizer(pol_dir)
    judge = CausalLMJudge(model, tok, "Request: {prompt}\nA: {a}\nB: {b}")
    m = judge.margins([(c["prompt"], *c["responses"]) for c in cands])
    assert m.shape == (8,) and np.all(np.isfinite(m)) and np.ptp(m) > 0
    # Batched margins equal one-at-a-time margins (left padding + position ids are right).
    single = [judge.margins([(c["prompt"], *c["responses"])])[0] for c in cands[:3]]
    np.testing.assert_allclose(m[:3], single, atol=1e-4)


# ---- reward-model labeler and candidate generation -------------------------------------------
def test_rm_labeler_prefers_the_style(models, tmp_path):
    _, rm_dir = models
    ex = single_turn_examples(200, seed=12)[:30]
    f = _jsonl(tmp_path / "cands.jsonl", [{"prompt": q, "responses": [a, STYLE_PREFIX + a][:: 1 if i % 2 else -1]}
                                          for i, (q, a) in enumerate(ex)])
    out = tmp_path / "rm_pairs.jsonl"
    res = CliRunner().invoke(app, ["prefs", "label", str(f), "--out", str(out), "--labeler", "rm", "-m", str(rm_dir)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 30 and all(r["meta"]["labeler"] == "rm" for r in rows)
    assert np.mean([r["chosen"].startswith(STYLE_PREFIX) for r in rows]) >= 0.95


def test_candidate_generation_k_samples_temperatures_and_seeds(models, tmp_path):
    pol_dir, _ = models
    model, tok = load_causal_lm(pol_dir), load_tokenizer(pol_dir)
    prompts = [{"prompt": q} for q, _ in single_turn_examples(50, seed=21)[:4]]
    # 16 tokens, not 8: the test policy starts half its answers with "Let me explain", and 8 tokens
    # often end inside that prefix, making the 12 samples collapse to 4-5 distinct ones (a flake).
    cfg = CandidateConfig(k=3, temperatures=[0.7, 1.2], sampling=SamplingConfig(max_new_tokens=16, top_k=50, top_p=0.95))
    a = generate_candidates(model, tok, prompts, cfg, seed=0)
    assert [len(r["responses"]) for r in a] == [3] * 4 and a[0]["temperatures"] == [0.7, 1.2, 0.7]
    assert generate_candidates(model, tok, prompts, cfg, seed=0) == a  # reproducible for a seed
    b = generate_candidates(model, tok, prompts, cfg, seed=1)
    assert [r["responses"] for r in b] != [r["responses"] for r in a]
    assert len({r for rec in a for r in rec["responses"]}) > 8  # samples differ within prompts (12 measured)

    pf = tmp_path / "prompts.txt"
    pf.write_bytes(b"What is the capital of Japan?\n\n\xff\xfe\nWhat does a cat eat?\n")
    log = SkipLog()
    assert [p["prompt"] for p in read_prompts([pf], log)] == ["What is the capital of Japan?", "What does a cat eat?"]
    assert log.skipped == {"not_utf8": 1} and log.where["not_utf8"] == [f"{pf}:3"]
    out = tmp_path / "cands.jsonl"
    res = CliRunner().invoke(app, ["prefs", "generate", "-m", str(pol_dir), "--prompts", str(pf), "--out", str(out),
                                   "--set", "prefs.candidates.sampling.max_new_tokens=6", "--set", "prefs.candidates.k=2"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["responses"]) == 2 for r in rows)
    assert json.loads((tmp_path / "cands.report.json").read_text())["read"]["skipped"] == {"not_utf8": 1}
