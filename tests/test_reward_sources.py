"""Reward sources: a user's TRL reward functions run unchanged, a real reward server process,
several sources combined with weights and logged apart, and every bad input as one line."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from llm_recipe.config.rewards import FunctionSource, HTTPSource, RuleSource, VerifierSource
from llm_recipe.rewards.function import RewardFunctionError, load_function
from llm_recipe.rewards.http import RewardServerError
from llm_recipe.rewards.sources import build_rewards

# Reward functions written as TRL's GRPOTrainer documentation writes them.
TRL_STYLE = textwrap.dedent('''
    import re

    def reward_len(completions, **kwargs):
        """Reward function that gives higher scores to completions close to 20 characters."""
        return [-abs(20 - len(completion)) for completion in completions]

    def format_reward_func(completions, **kwargs):
        """Conversational: a completion is a list of one assistant message."""
        pattern = r"^<think>.*?</think><answer>.*?</answer>$"
        completion_contents = [completion[0]["content"] for completion in completions]
        matches = [re.match(pattern, content) for content in completion_contents]
        return [1.0 if match else 0.0 for match in matches]

    def reward_func(completions, ground_truth, **kwargs):
        """A column of the dataset ('ground_truth') arrives as a keyword argument."""
        matches = [re.search(r"\\\\boxed\\{(.*?)\\}", completion) for completion in completions]
        contents = [match.group(1) if match else "" for match in matches]
        return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]

    def only_english(prompts, completions, lang, **kwargs):
        """None = no reward for this completion (TRL: not applicable)."""
        return [None if l != "en" else float(c.isascii()) for c, l in zip(completions, lang)]

    def raises_on_second(completions, **kwargs):
        if any("boom" in c for c in completions):
            raise KeyError("boom")
        return [0.0] * len(completions)

    def wrong_length(completions, **kwargs):
        return [0.0] * (len(completions) - 1)

    def gives_nan(completions, **kwargs):
        return [0.0, float("nan"), 1.0][: len(completions)]

    def gives_text(completions, **kwargs):
        return ["high"] * len(completions)

    async def async_len(completions, **kwargs):
        return [float(len(c)) for c in completions]
''')


@pytest.fixture
def user_file(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text(TRL_STYLE, encoding="utf-8")
    return f


def fn_source(spec: str, **kw) -> FunctionSource:
    return FunctionSource(kind="function", function=spec, **kw)


def test_trl_style_functions_run_unchanged(user_file, tmp_path, monkeypatch):
    comps = ["<think>x</think><answer>\\boxed{4}</answer>", "The answer is \\boxed{5}", "短い"]
    cols = {"ground_truth": ["4", "4", "4"], "lang": ["en", "ja", "en"]}
    rw = build_rewards([fn_source(f"{user_file}:reward_len"),
                        fn_source(f"{user_file}:format_reward_func", conversational=True),
                        fn_source(f"{user_file}:reward_func", weight=2.0),
                        fn_source(f"{user_file}:only_english")])
    b = rw.batch(["p1", "p2", "p3"], comps, cols)
    assert b.by_source["reward_len"] == [-abs(20 - len(c)) for c in comps]
    assert b.by_source["format_reward_func"] == [1.0, 0.0, 0.0]
    assert b.by_source["reward_func"] == [1.0, 0.0, 0.0]
    assert b.by_source["only_english"] == [1.0, None, 0.0]
    expect = [b.by_source["reward_len"][i] + b.by_source["format_reward_func"][i]
              + 2.0 * b.by_source["reward_func"][i] + (b.by_source["only_english"][i] or 0.0) for i in range(3)]
    np.testing.assert_allclose(b.total, expect)
    st = rw.stats()
    assert st["rewards/only_english/none"] == pytest.approx(1 / 3)
    assert st["rewards/reward_func/mean"] == pytest.approx(1 / 3)
    assert st["rewards/reward_len/std"] == pytest.approx(np.std(b.by_source["reward_len"]))
    # a module path (module.path:function), and TRL's own reward functions by their module path
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_function("my_rewards:reward_len")(completions=["x" * 20]) == [0]
    trl = build_rewards([fn_source("trl.rewards:think_format_reward", conversational=True)])
    assert list(trl.score(["q", "q"], ["<think>\nhm\n</think>\n4", "4"])) == [1.0, 0.0]


def test_none_everywhere_is_unscored(user_file):
    rw = build_rewards([fn_source(f"{user_file}:only_english"),
                        VerifierSource(kind="verifier", verifier="math_answer")])
    total = rw.score(["p", "p"], ["Answer: 3", "Answer: 3"], columns={"lang": ["ja", "en"], "answer": [None, "3"]})
    assert np.isnan(total[0]) and total[1] == 2.0  # row 0: every source said None
    assert rw.stats()["rewards/unscored"] == 0.5


def test_async_function(user_file):
    assert list(build_rewards([fn_source(f"{user_file}:async_len")]).score(["p"], ["abc"])) == [3.0]


@pytest.mark.parametrize("spec,match", [
    ("no_such_module_xyz:f", r"reward function 'no_such_module_xyz:f': cannot import no_such_module_xyz"),
    ("{file}:missing", r"has no attribute 'missing'"),
    ("{dir}/nope.py:f", r"no file"),
    ("no_colon", r"expected 'module.path:function'"),
])
def test_cannot_import(user_file, spec, match):
    with pytest.raises(RewardFunctionError, match=match):
        build_rewards([fn_source(spec.format(file=user_file, dir=user_file.parent))])


def test_import_error_in_the_file(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("def f(completions, **kw):\n    return [0.0] * len(completions\n")
    with pytest.raises(RewardFunctionError, match=r"broken.py:f'.*SyntaxError") as e:
        build_rewards([fn_source(f"{bad}:f")])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name,match", [
    ("raises_on_second", r"reward function raises_on_second: raised KeyError on row 1"),
    ("wrong_length", r"reward function wrong_length: returned 2 values for 3 completions"),
    ("gives_nan", r"reward function gives_nan: row 1: reward is nan"),
    ("gives_text", r"reward function gives_text: row 0: 'high' is not a number"),
])
def test_bad_function_output_names_function_and_row(user_file, name, match):
    rw = build_rewards([fn_source(f"{user_file}:{name}")])
    with pytest.raises(RewardFunctionError, match=match) as e:
        rw.score(["p"] * 3, ["a", "boom", "c"])
    assert "\n" not in str(e.value)


def test_verifier_on_bad_reference_is_one_line():
    rw = build_rewards([VerifierSource(kind="verifier", verifier="math_answer")])
    with pytest.raises(RewardFunctionError, match=r"reward function math_answer: raised ValueError on row 0: "
                       r"reference answer 'twelve' is not a number"):
        rw.score(["p"], ["Answer: 12"], columns={"answer": ["twelve"]})


def test_rule_source_and_unknown_verifier():
    rw = build_rewards([RuleSource(kind="rule", rule="starts_with", value="Let me explain.", weight=0.5),
                        RuleSource(kind="rule", rule="bleu", name="bleu")])
    b = rw.batch(["p", "p"], ["Let me explain. Yes.", "No."], {"reference": [None, "No."]})
    assert b.by_source["rule:starts_with"] == [1.0, 0.0]
    assert b.by_source["bleu"][0] is None and b.by_source["bleu"][1] > 0.9  # no reference: no reward
    with pytest.raises(ValueError, match="unknown verifier 'nope'"):
        build_rewards([VerifierSource(kind="verifier", verifier="nope")])


# ---- a real reward server process ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("reward_server.py")), str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def http(url: str, **kw) -> HTTPSource:
    return HTTPSource(kind="http", url=url, **kw)


def test_reward_server(server):
    rw = build_rewards([http(f"{server}/get_reward", batch_size=2)])
    total = rw.score(["2+2=", "3+3=", "1+1="], ["4", "7", "2"], columns={"answer": ["4", "6", None]})
    assert list(total[:2]) == [1.0, 0.0] and np.isnan(total[2])  # null from the server: no reward
    # retries: every other request fails with 503
    flaky = build_rewards([http(f"{server}/flaky", retries=2, timeout_s=5)])
    assert list(flaky.score(["q"], ["4"], columns={"answer": ["4"]})) == [1.0]


def test_reward_server_errors(server, monkeypatch):
    t0 = time.perf_counter()
    with pytest.raises(RewardServerError, match=r"is not answering: no reply within 0.5s \(after 2 attempts\)"):
        build_rewards([http(f"{server}/slow", timeout_s=0.5, retries=1)]).score(["q"], ["4"])
    assert time.perf_counter() - t0 < 4
    with pytest.raises(RewardServerError, match=r"returned 1 values for 2 completions"):
        build_rewards([http(f"{server}/short")]).score(["q", "q"], ["4", "5"])
    with pytest.raises(RewardServerError, match=r"HTTP 401"):
        build_rewards([http(f"{server}/auth")]).score(["q"], ["4"])
    monkeypatch.setenv("MY_RM_KEY", "s3cret")
    ok = build_rewards([http(f"{server}/auth", api_key_env="MY_RM_KEY")])
    assert list(ok.score(["q"], ["4"], columns={"answer": ["4"]})) == [1.0]


def test_reward_server_down():
    url = f"http://127.0.0.1:{free_port()}/get_reward"  # nothing listens there
    rw = build_rewards([http(url, retries=1)])
    with pytest.raises(RewardServerError, match=rf"reward server {url} is not answering: ConnectError") as e:
        rw.score(["q"], ["4"])
    assert "\n" not in str(e.value)


# ---- prefs label with reward sources ----------------------------------------------------------
def test_prefs_label_with_a_verifier_and_a_function(tmp_path, user_file):
    from llm_recipe.config import ComputeConfig, PrefsConfig
    from llm_recipe.stages.prefs import label

    cands = tmp_path / "cands.jsonl"
    rows = [{"prompt": "りんごは全部で何個？", "responses": ["答え：5個", "答え：十二個", "答え：12"], "answer": "12"},
            {"prompt": "How many left?", "responses": ["Answer: 3", "Answer: 4"], "answer": "4", "lang": "en"},
            {"prompt": "no reference", "responses": ["Answer: 1", "Answer: 2"]},  # every source None: skipped
            {"prompt": "tie", "responses": ["Answer: 7", "Answer: 7.0"], "answer": "7"}]
    cands.write_text("".join(__import__("json").dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = PrefsConfig(label={"labeler": "rewards", "min_gap": 0.01, "rewards": [
        {"kind": "verifier", "verifier": "math_answer"},
        {"kind": "function", "function": f"{user_file}:only_english", "weight": 0.5}]},
        compute=ComputeConfig())
    out = tmp_path / "pairs.jsonl"
    rep = label([cands], out, cfg)
    pairs = [__import__("json").loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("答え：十二個", "答え：5個"), ("Answer: 4", "Answer: 3")]
    assert rep["skipped"] == {"unscored_response": 1, "tie": 1}
