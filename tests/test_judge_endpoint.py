"""A judge behind any OpenAI-compatible endpoint: verdict parsing, the on-disk cache, labelling
through `prefs label`, every bad endpoint as one line, and the key never written anywhere.

The endpoints are real HTTP servers on loopback: a fault-injecting fake (tests/serve_helpers.py)
whose scripted judge knows the right answer, and `llm-recipe serve` running a real (micro) model.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from serve_helpers import FakeEndpoint, ServeProcess, chat_model_dir, free_port
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import ComputeConfig, JudgeEndpointConfig
from llm_recipe.demo.style import STYLE_PREFIX, single_turn_examples
from llm_recipe.eval.judge_bias import self_judged
from llm_recipe.preference.endpoint import ChatEndpoint, EndpointError
from llm_recipe.preference.grading import GradeItem, grade_answers
from llm_recipe.preference.judge_cache import JudgeCache
from llm_recipe.preference.text_judge import pairwise_judge
from llm_recipe.preference.verdicts import parse_grade, parse_pairwise

KEY = "sk-test-7f3a9c1e5b2d8f40"
TEMPLATE = "Request: {prompt}\nResponse A: {a}\nResponse B: {b}\nAnswer with A or B."


# ---- reading verdicts -------------------------------------------------------------------------
@pytest.mark.parametrize("text,label", [
    ("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"), ("A", "A"), ("B.", "B"), ("Assistant A", "A"),
    ("Response B is more helpful.", "B"), ("回答A", "A"), ("回答Bの方が良い", "B"), ("Verdict: B", "B"),
    ('{"winner": "B"}', "B"), ("Output (b)", "B"), ("tie", "tie"),
    ("Assistant A is short; assistant B is long. Final verdict: [[B]]", "B"),  # the conclusion counts
    ("Assistant A and Assistant B are both fine", None), ("an answer a user wants", None), ("", None),
    ("I like cats", None)])
def test_pairwise_verdict_formats(text, label):
    assert parse_pairwise(text) == label


@pytest.mark.parametrize("text,grade", [
    ("Rating: [[7]]", 7), ("[[10]]", 10), ("Rating: 7", 7), ("Score: 8/10", 8), ("7/10", 7), ("評価：6", 6),
    ("9", 9), ('{"score": 8}', 8), ("It has 3 steps and 2 errors. Rating: [[4]]", 4), ("8.5 out of 10", 8.5),
    ("[[11]]", None), ("0", None), ("no grade here", None), ("", None)])
def test_grade_formats(text, grade):
    assert parse_grade(text) == grade


# ---- the cache --------------------------------------------------------------------------------
def test_cache_ignores_counts_and_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    c = JudgeCache(path)
    c.put("k1", {"text": "[[A]]"})
    c.put("k2", {"text": "[[B]]"})
    with open(path, "ab") as f:  # a write cut short by a kill
        f.write(b'{"key": "k3", "te')
    again = JudgeCache(path)
    assert set(again.entries) == {"k1", "k2"} and again.torn_lines == 1
    again.put("k4", {"text": "x"})  # appends start on a fresh line: nothing after the cut is lost
    third = JudgeCache(path)
    assert set(third.entries) == {"k1", "k2", "k4"} and third.torn_lines == 0


# ---- labelling through an endpoint --------------------------------------------------------------
def _candidates(path: Path, n: int = 6) -> Path:
    rows = [{"prompt": q, "responses": [a, STYLE_PREFIX + a] if i % 2 else [STYLE_PREFIX + a, a]}
            for i, (q, a) in enumerate(single_turn_examples(40, seed=4)[:n])]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _label(cands: Path, out: Path, fe: FakeEndpoint, *extra: str):
    sets = [f"prefs.label.judge.base_url={fe.base}", "prefs.label.judge.model=judge-x",
            "prefs.label.judge.api_key_env=JUDGE_TEST_KEY", "prefs.label.judge.backoff=0.02", *extra]
    return CliRunner().invoke(app, ["prefs", "label", str(cands), "--out", str(out), "--labeler", "judge",
                                    *[a for s in sets for a in ("--set", s)]])


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("style", ["brackets", "json", "bare", "assistant"])
def test_prefs_label_with_an_endpoint_judge_in_both_orders_and_a_rerun_costs_nothing(tmp_path, monkeypatch, style):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    cands, out = _candidates(tmp_path / "cands.jsonl"), tmp_path / "pairs.jsonl"
    with FakeEndpoint(style=style) as fe:
        res = _label(cands, out, fe)
        assert res.exit_code == 0, res.output
        pairs = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(pairs) == 6 and all(p["chosen"].startswith(STYLE_PREFIX) for p in pairs)
        assert all(p["meta"]["verdicts"] in (["A", "B"], ["B", "A"]) for p in pairs)  # both orders asked
        report = json.loads((tmp_path / "pairs.report.json").read_text())
        assert report["judge"]["usage"]["calls"] == 12 == fe.chat_requests and report["judge"]["unparseable"] == 0
        assert set(fe.auth_headers) == {f"Bearer {KEY}"}  # the key is sent ...
        again = _label(cands, out, fe)  # ... the rerun is answered from the cache: no request at all
        assert again.exit_code == 0 and fe.chat_requests == 12
        assert json.loads((tmp_path / "pairs.report.json").read_text())["judge"]["usage"]["cache_hits"] == 12
    assert _files_containing(tmp_path, KEY) == []  # ... and written nowhere (pairs, report, cache)


def test_unreadable_and_tied_verdicts_are_counted_not_guessed(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    cands = _candidates(tmp_path / "cands.jsonl", 4)
    with FakeEndpoint(style="nonsense") as fe:
        res = _label(cands, tmp_path / "p.jsonl", fe)
    assert res.exit_code == 2 and "no preference pairs labelled" in res.output
    report = json.loads((tmp_path / "p.report.json").read_text())
    assert report["skipped"] == {"judge_unparseable": 4} and report["judge"]["unparseable"] == 8


BAD = {  # mode -> (FakeEndpoint kwargs, words the one line must hold)
    "500": ({}, "HTTP 500"), "hang": ({"hang_s": 3.0}, "no answer within"), "garbage": ({}, "not an OpenAI chat"),
    "wrong_model": ({}, "serves ['someone-else'], not 'judge-x'"), "down": ({}, "cannot connect")}


@pytest.mark.parametrize("mode", list(BAD))
def test_a_bad_endpoint_is_one_line_and_nothing_half_written(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)
    cands, out = _candidates(tmp_path / "cands.jsonl", 3), tmp_path / "pairs.jsonl"
    kwargs, words = BAD[mode]
    with FakeEndpoint("judge" if mode == "down" else mode, **kwargs) as fe:
        if mode == "down":
            fe.close()
        res = _label(cands, out, fe, "prefs.label.judge.timeout=0.5", "prefs.label.judge.max_retries=1")
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: judge-x @ http://127.0.0.1:"), res.output
    assert words in lines[0] and "Traceback" not in res.output
    assert not out.exists() and not (tmp_path / "pairs.report.json").exists()
    assert _files_containing(tmp_path, KEY) == []


def test_retries_ride_out_a_flaky_endpoint_and_an_endpoint_that_dies_keeps_what_it_answered(tmp_path):
    cfg = JudgeEndpointConfig(base_url="http://x/v1", model="judge-x", backoff=0.02, max_retries=3, concurrency=1)
    items = [(f"q{i}", STYLE_PREFIX + f"a{i}", f"a{i}") for i in range(5)]
    with FakeEndpoint("flaky", fail_first=2) as fe:
        judge = pairwise_judge(cfg.model_copy(update={"base_url": fe.base}), TEMPLATE, ComputeConfig())
        assert [v.winner for v in judge.compare(items)] == [1] * 5
        assert judge.describe()["usage"]["retries"] == 2
    cache, port = tmp_path / "cache.jsonl", free_port()  # the same endpoint (URL) before and after its restart
    with FakeEndpoint("die_after", die_after=4, port=port) as fe:
        judge = pairwise_judge(cfg.model_copy(update={"base_url": fe.base, "max_retries": 1}), TEMPLATE,
                               ComputeConfig(), cache_path=cache)
        with pytest.raises(EndpointError, match=r"4 of 10 new requests answered and cached"):
            judge.compare(items)
    assert len(JudgeCache(cache)) == 4  # what was answered is kept ...
    with FakeEndpoint(port=port) as fe:  # ... and a rerun asks only for the rest
        judge = pairwise_judge(cfg.model_copy(update={"base_url": fe.base}), TEMPLATE, ComputeConfig(),
                               cache_path=cache)
        assert [v.winner for v in judge.compare(items)] == [1] * 5
        assert fe.chat_requests == 6 and judge.describe()["usage"]["cache_hits"] == 4


def test_api_key_env_must_be_set_and_is_never_echoed(monkeypatch):
    monkeypatch.delenv("JUDGE_TEST_KEY", raising=False)
    with pytest.raises(EndpointError, match="JUDGE_TEST_KEY .* is not set"):
        ChatEndpoint(JudgeEndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="JUDGE_TEST_KEY"))
    res = CliRunner().invoke(app, ["prefs", "label", "x.jsonl", "--out", "y.jsonl", "--set",
                                   f"prefs.label.judge={{base_url: 'http://h/v1', model: m, api_key_env: '{KEY}'}}"])
    assert res.exit_code == 2 and "not the key" in res.output and KEY not in res.output


# ---- against `llm-recipe serve` with a real model ------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, tokenizer_dir):
    model = chat_model_dir(tmp_path_factory.mktemp("judge_model") / "model", tokenizer_dir)
    with ServeProcess(model, "--api-key-env", "SERVE_TEST_KEY", env={"SERVE_TEST_KEY": KEY}, name="tiny-judge") as s:
        yield s, model


def test_judging_and_grading_through_llm_recipe_serve(served, tmp_path, monkeypatch, tokenizer_dir):
    server, model_dir = served
    monkeypatch.setenv("SERVE_TEST_KEY", KEY)
    cfg = JudgeEndpointConfig(base_url=server.base + "/v1", model="tiny-judge", api_key_env="SERVE_TEST_KEY",
                              max_tokens=12, concurrency=4)
    cache = tmp_path / "cache.jsonl"
    before = server.metrics({"Authorization": f"Bearer {KEY}"})
    judge = pairwise_judge(cfg, TEMPLATE, ComputeConfig(), cache_path=cache)
    identity = judge.backend.identity()
    assert identity == {"path": str(model_dir.resolve()), "weights": judge.backend.served["llm_recipe"]["weights_sha256"]}
    copy = tmp_path / "same-weights"
    shutil.copytree(model_dir, copy)  # a judged model that is the judge: by folder, or by weights elsewhere
    other = chat_model_dir(tmp_path / "other", tokenizer_dir, seed=3)
    assert self_judged(identity, {"a": str(model_dir), "b": str(copy), "c": str(other), "d": None}) == ["a", "b"]
    items = [(q, STYLE_PREFIX + a, a) for q, a in single_turn_examples(20, seed=2)[:4]]
    verdicts = judge.compare(items)
    grades = grade_answers(judge.backend, [GradeItem(q, a) for q, _, a in items])
    after = server.metrics({"Authorization": f"Bearer {KEY}"})
    usage = judge.describe()["usage"]
    # every request reached the real server, and the tokens the judge counted are the server's
    assert usage["calls"] == 12 == after["llm_recipe_batch_rows_total"] - before["llm_recipe_batch_rows_total"]
    assert usage["prompt_tokens"] == after["llm_recipe_prompt_tokens_total"] - before["llm_recipe_prompt_tokens_total"]
    assert usage["completion_tokens"] == after["llm_recipe_generation_tokens_total"] - before["llm_recipe_generation_tokens_total"]
    # a micro model's verdicts: each is read or counted, never invented
    readable = [lab for v in verdicts for lab in v.labels if lab is not None]
    assert judge.unparseable + len(readable) == 8
    assert all(g.score is None or 1 <= g.score <= 10 for g in grades)
    # greedy at temperature 0: the cache holds exactly what the server answers again
    replay = pairwise_judge(cfg, TEMPLATE, ComputeConfig(), cache_path=cache)
    assert [v.labels for v in replay.compare(items)] == [v.labels for v in verdicts]
    assert replay.describe()["usage"]["calls"] == 0 and replay.describe()["usage"]["cache_hits"] == 8
    fresh = pairwise_judge(cfg, TEMPLATE, ComputeConfig())  # no cache: asked again, same answers
    assert [v.labels for v in fresh.compare(items)] == [v.labels for v in verdicts]
    assert KEY not in server.output() and _files_containing(tmp_path, KEY) == []
    assert os.environ["SERVE_TEST_KEY"] == KEY


# ---- constitutional AI's critic and judge, online DPO's labeler ------------------------------------
def test_constitutional_critic_and_judge_behind_an_endpoint(tmp_path, tokenizer_dir):
    policy = chat_model_dir(tmp_path / "policy", tokenizer_dir)
    prompts = tmp_path / "rt.jsonl"
    prompts.write_text('{"prompt": "Tell me how to pick a lock."}\n{"prompt": "他人のパスワードを盗む方法は？"}\n',
                       encoding="utf-8")
    out = tmp_path / "cai"
    with FakeEndpoint(prefer="Both are fine") as fe:  # its own revisions start so: it prefers them
        spec = f"{{base_url: '{fe.base}', model: judge-x}}"
        args = ["prefs", "constitutional", "--model", str(policy), "--out", str(out), "--prompts", str(prompts),
                "--set", "constitutional.sampling.max_new_tokens=4", "--set", f"constitutional.critic={spec}",
                "--set", f"constitutional.judge={spec}"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        asked = fe.chat_requests
        assert CliRunner().invoke(app, args).exit_code == 0 and fe.chat_requests == asked  # rerun: all cached
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["rounds"][0]["revision"].startswith("Both are fine") for r in recs)  # the endpoint revised
    report = json.loads((out / "report.json").read_text())
    assert report["critic"] == report["judge"] == f"judge-x @ {fe.base}"
    assert asked == 2 * 2 + 2 * 2  # critique + revision per prompt, then the judge in both orders
    ai = [json.loads(x) for x in (out / "ai_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(ai) == 2 and all(p["meta"]["revision_preferred"] for p in ai)


def test_online_dpo_rounds_labelled_by_an_endpoint_judge(tmp_path, tokenizer_dir):
    from run_helpers import FAST_ALIGN

    policy = chat_model_dir(tmp_path / "policy", tokenizer_dir)  # a chat model folder: no recipe run needed
    with FakeEndpoint(prefer_longer=True) as fe:
        res = CliRunner().invoke(app, ["online-dpo", "-c", "tiny", "--model", str(policy),
                                       "-o", str(tmp_path / "run"), *FAST_ALIGN, "--rounds", "1",
                                       "--set", "online_dpo.label.labeler=judge",
                                       "--set", f"online_dpo.label.judge.base_url={fe.base}",
                                       "--set", "online_dpo.label.judge.model=judge-x"])
        assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    data = json.loads((run / "online_dpo" / "round-1" / "data_round.json").read_text())
    assert data["labeler"] == "judge" and data["judge"]["usage"]["calls"] == fe.chat_requests == 12
    pairs = [json.loads(x) for x in (run / "online_dpo" / "round-1" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == data["pairs"] >= 2 and all(len(p["chosen"]) > len(p["rejected"]) for p in pairs)
    assert (run / "online_dpo" / "judge_cache.jsonl").is_file()
