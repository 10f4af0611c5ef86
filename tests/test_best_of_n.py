import json
from pathlib import Path

import numpy as np
import pytest
from pref_helpers import one_thread, policy_dir, reward_model_dir, rm_config
from typer.testing import CliRunner

from llm_recipe.cli import app
from llm_recipe.config import BoNConfig, SamplingConfig
from llm_recipe.demo.style import STYLE_PREFIX
from llm_recipe.infer.best_of_n import best_of_n
from llm_recipe.infer.reward import RewardScorer
from llm_recipe.models.loading import load_causal_lm, load_tokenizer
from llm_recipe.stages import bon as bon_stage
from llm_recipe.stages.bon import bon_prompts

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

GEN = SamplingConfig(max_new_tokens=12, temperature=0.9, top_k=20, top_p=None, repetition_penalty=1.0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer_dir):
    root, tok = str(tmp_path_factory.getbasetemp()), str(tokenizer_dir)
    return policy_dir(root, tok), reward_model_dir(root, tok)


@pytest.fixture(scope="module")
def runs(models):
    pol_dir, rm_dir = models
    policy, tok = load_causal_lm(pol_dir), load_tokenizer(pol_dir)
    scorer = RewardScorer.load(rm_dir)
    prompts = bon_prompts(BoNConfig(n_prompts=16), rm_config().rm, seed=0)  # held-out prompts
    one = best_of_n(policy, tok, prompts, scorer, 1, GEN, seed=0)
    four = best_of_n(policy, tok, prompts, scorer, 4, GEN, seed=0)
    return one, four, scorer


def test_best_of_n_raises_mean_reward_over_n1(runs):
    one, four, _ = runs
    s1, s4 = one.summary(), four.summary()
    # N=1 returns exactly sample 0 of N=4 (same per-prompt seed), so the comparison is paired.
    assert [it.best_text for it in one.items] == [it.samples[0].text for it in four.items]
    assert s4["mean_first_sample_reward"] == pytest.approx(s1["mean_best_reward"], abs=1e-4)
    assert s4["mean_best_reward"] > s1["mean_best_reward"] + 0.5  # in normalized reward units
    assert all(it4.best_reward >= it1.best_reward - 1e-4 for it1, it4 in zip(one.items, four.items, strict=True))
    # The RM rewards the style prefix, so Best-of-N returns more answers that start with it.
    style = lambda rep: sum(it.best_text.startswith(STYLE_PREFIX.strip()[:5]) for it in rep.items)  # noqa: E731
    assert style(four) > style(one)


def test_best_is_the_argmax_of_independently_recomputed_rewards(runs):
    _, four, scorer = runs
    for it in four.items:
        texts = [s.text for s in it.samples]
        fresh = scorer.score([it.prompt] * len(texts), texts)
        np.testing.assert_allclose(fresh, [s.reward for s in it.samples], atol=1e-4)
        assert it.best_index == int(np.argmax(fresh)) and it.best_text == texts[it.best_index]


def test_cost_and_latency_report(runs):
    one, four, _ = runs
    s1, s4 = one.summary(), four.summary()
    assert s4["tokens_generated"] == sum(s.tokens for it in four.items for s in it.samples)
    assert s4["tokens_first_sample"] == s1["tokens_generated"]
    assert 2 < s4["token_cost_ratio"] < 8  # ~N x the tokens of one sample
    for it in four.items:
        lats = [s.latency_s for s in it.samples]
        assert all(0 < t <= it.generate_s for t in lats)
        # A sample that decoded more steps finished later (latency from per-step timestamps).
        by_tokens = sorted(it.samples, key=lambda s: s.tokens)
        assert all(a.latency_s <= b.latency_s for a, b in zip(by_tokens, by_tokens[1:], strict=False) if a.tokens < b.tokens)
    assert s4["max_of_n_latency_s"]["max"] == pytest.approx(max(s.latency_s for it in four.items for s in it.samples))
    assert s4["max_of_n_latency_s"]["mean"] >= s4["sample_latency_s"]["mean"]


def test_stage_bon_and_cli(models, tmp_path):
    pol_dir, rm_dir = models
    from llm_recipe.config import RecipeConfig

    cfg = RecipeConfig(seed=0, rm=rm_config().rm, bon=BoNConfig(n=3, n_prompts=4, sampling=SamplingConfig(max_new_tokens=8, top_k=20)))
    from run_helpers import call_stage

    path = Path(call_stage(bon_stage.STAGE, cfg, tmp_path / "stage", sft_model=pol_dir,
                           reward_model=rm_dir)["best_of_n_report"])
    rep = json.loads(path.read_text())
    assert rep["n"] == 3 and rep["prompts"] == 4 and rep["mean_best_reward"] >= rep["mean_first_sample_reward"]
    assert 0 <= rep["style_rate_first_sample"] <= rep["style_rate_best"] <= 1
    assert len((path.parent / "samples.jsonl").read_text().splitlines()) == 4
    res = CliRunner().invoke(app, ["bon", "-m", str(pol_dir), "--rm", f"{rm_dir}=1.0", "-n", "2",
                                   "-p", "What is the capital of Japan?", "-o", str(tmp_path / "cli"),
                                   "--set", "bon.sampling.max_new_tokens=6"])
    assert res.exit_code == 0, res.output
    assert "best-of-2" in res.output and "tokens x" in res.output
    assert json.loads((tmp_path / "cli" / "best_of_n" / "report.json").read_text())["prompts"] == 1
    res = CliRunner().invoke(app, ["bon", "-m", str(pol_dir), "--rm", str(tmp_path / "nope"), "-p", "x",
                                   "-o", str(tmp_path / "cli-nope")])
    assert res.exit_code == 2 and "nope" in res.output


def test_stage_bon_with_reward_sources_on_a_task(models, tmp_path):
    """bon.rewards + bon.task: the task's held-out problems with their columns, scored by a verifier
    and the reward model together; the best answer is the argmax of the recomputed sum."""
    from llm_recipe.config import RecipeConfig
    from llm_recipe.config.rewards import RMSource, VerifierSource
    from llm_recipe.rewards.sources import build_rewards
    from llm_recipe.rewards.tasks import load_task

    pol_dir, rm_dir = models
    sources = [VerifierSource(kind="verifier", verifier="math_answer"),
               VerifierSource(kind="verifier", verifier="answer_last_line", weight=0.5), RMSource(kind="rm", weight=0.1)]
    cfg = RecipeConfig(seed=0, rm=rm_config().rm, bon=BoNConfig(n=3, n_prompts=4, task="arith-v1", rewards=sources,
                                                                sampling=SamplingConfig(max_new_tokens=8, top_k=20)))
    from run_helpers import call_stage

    path = Path(call_stage(bon_stage.STAGE, cfg, tmp_path / "stage", sft_model=pol_dir,
                           reward_model=rm_dir)["best_of_n_report"])
    rep = json.loads(path.read_text())
    assert rep["reward_models"] == ["math_answer", "answer_last_line", "rm"] and rep["prompts"] == 4
    items = [json.loads(x) for x in (tmp_path / "stage" / "best_of_n" / "samples.jsonl").read_text().splitlines()]
    test = load_task("arith-v1").test[:4]
    assert [it["prompt"] for it in items] == [t["prompt"] for t in test]
    rewards = build_rewards(sources, rm_dir)
    for it, t in zip(items, test, strict=True):
        texts = [s["text"] for s in it["samples"]]
        fresh = rewards.score([it["prompt"]] * 3, texts, columns={"answer": [t["answer"]] * 3})
        np.testing.assert_allclose(fresh, [s["reward"] for s in it["samples"]], atol=1e-4)
        assert it["best_index"] == int(np.argmax(fresh))
