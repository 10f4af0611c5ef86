"""PPO / GRPO end to end on a tiny SFT model: the style target, KL bound, reward hacking, stability.

The SFT model is trained here (module fixture) on short answers of which 40% start with
"Let me explain.", so the style exists but is rare before RL. The reward is the rule scorer
`StartsWithScorer` (same `score(prompts, responses)` interface as the reward models).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scorers import LengthScorer, StartsWithScorer

from llm_recipe.config import ComputeConfig, GRPOConfig, PPOConfig, SamplingConfig
from llm_recipe.stages.rl import style_prompts
from llm_recipe.train.ppo import run_ppo
from llm_recipe.train.rl_loop import RLSetup, RLStabilityError
from llm_recipe.train.rollout import generate

PREFIX = "Let me explain."
KL_BOUND = 10.0  # nats per response (sum over tokens of log pi/pi_ref), held-out prompts
# One thread: the micro model is too small to gain from intra-op parallelism, and on a shared
# 2-core machine two busy-waiting OpenMP threads per process made the same run 5x slower.
RL = dict(n_prompts=128, eval_prompts=32, sampling=SamplingConfig(max_new_tokens=20), rollout_batch_size=32, minibatch_size=16,
          epochs=2, compute=ComputeConfig(num_threads=1))


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    n = torch.get_num_threads()  # runs set the process-wide thread count: give it back
    yield
    torch.set_num_threads(n)


def _setup(sft_dir, scorer, cfg) -> RLSetup:
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer

    train_p, eval_p = style_prompts(cfg, seed=0)
    return RLSetup.build(load_causal_lm(sft_dir), load_tokenizer(sft_dir), scorer, train_p, eval_p)


@pytest.mark.slow
def test_ppo_reaches_style_target_within_kl_bound(sft_dir, tmp_path):
    # lam=1: the untrained critic does not discount the terminal reward on its way to the first token.
    # Measured (seeds 0, 1, 2): 30/32, 29/32, 31/32 held-out prompts, KL 6.6-7.0 nats.
    cfg = PPOConfig(**RL, iterations=30, lr=2e-3, kl_coef=0.05, kl_estimator="k1", lam=1.0)
    s = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    res = run_ppo(s, cfg, tmp_path / "ppo", seed=0)
    assert res.before["success"] < 0.5, res.before
    assert res.after["success"] >= 0.8, (res.before, res.after)
    assert res.after["score"] > res.before["score"]
    assert res.after["kl"] < KL_BOUND, res.after
    # every iteration logged every metric; the plot and the model are in the run folder
    lines = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 31))
    for k in ("reward_mean", "reward_std", "kl", "entropy", "clipfrac", "approx_kl", "vf_loss", "explained_var",
              "response_len", "success", "kl_coef"):
        assert all(k in x for x in lines), k
    # the sampled rollouts (not only the held-out answers) moved to the style
    assert np.mean([x["success"] for x in lines[-3:]]) > lines[0]["success"] + 0.4
    assert (tmp_path / "ppo" / "rl_metrics.png").stat().st_size > 1000
    assert (res.model_dir / "model.safetensors").exists()


@pytest.mark.slow
def test_ppo_against_a_learned_reward_model(sft_dir, tmp_path):
    """The style target through a trained reward model (the recipe's path), not the rule."""
    from llm_recipe.config import RMConfig
    from llm_recipe.infer.reward import RewardScorer
    from llm_recipe.stages.reward import rm_pairs
    from llm_recipe.train.reward_model import run_reward_model

    rc = RMConfig(max_steps=100, batch_size=16, lr=1e-3, warmup_steps=4, eval_every=1000, eval_batches=4,
                  synthetic_pairs=300, eval_fraction=0.2, max_length=128,
                  compute=ComputeConfig(num_threads=1))
    train, held, _, _ = rm_pairs(rc, seed=0)
    rm = run_reward_model(base=str(sft_dir), train_pairs=train, eval_pairs=held, cfg=rc, output_dir=tmp_path / "rm",
                            seed=0, resume=False)
    assert rm.report["eval"]["accuracy"] >= 0.9  # it prefers the styled answer on held-out pairs
    cfg = PPOConfig(**RL, iterations=30, lr=2e-3, kl_coef=0.05, kl_estimator="k1", lam=1.0)
    res = run_ppo(_setup(sft_dir, RewardScorer.load(rm.model_dir), cfg), cfg, tmp_path / "ppo", seed=0, save=False)
    # The micro RM (0.3M parameters) also pays for near-misses ("Let me e", "Let m me explain."), so
    # the exact-prefix rate it leads to varies with the seed and the tokenizer (0.38-0.97 measured);
    # the >= 0.8 style target is asserted with the rule reward above. Here: the learned reward is
    # what PPO raises, within the KL bound, and the style rate goes up with it.
    assert res.after["score"] > res.before["score"] + 0.8, (res.before, res.after)
    assert res.after["success"] > res.before["success"] + 0.1, (res.before, res.after)
    assert res.after["kl"] < KL_BOUND


def _length_growth(sft_dir, tmp_path, beta: float) -> tuple[float, float]:
    cfg = PPOConfig(**{**RL, "sampling": SamplingConfig(max_new_tokens=24)}, iterations=8, lr=1e-3, kl_coef=beta, kl_estimator="k1",
                    success_prefix=None)
    s = _setup(sft_dir, LengthScorer(per_char=0.05), cfg)
    res = run_ppo(s, cfg, tmp_path / f"len-{beta}", seed=0, save=False)
    # mean response length of the rollouts: first iteration vs the last two
    lens = [h["response_len"] for h in res.history]
    return lens[0], float(np.mean(lens[-2:]))


@pytest.mark.slow
def test_reward_hacking_length_grows_much_less_with_kl_penalty(sft_dir, tmp_path):
    # beta 1.0: since the SFT fixture trains the last batch of each epoch (#33) its model's length
    # growth at beta 0.5 was 0.50-0.65 of beta 0's over PPO seeds 0-2 (the bar below is 0.5); at
    # beta 1.0 it is -3.4 / 0.9 / 0.9 tokens against 6.2 / 8.3 / 9.7 at beta 0.
    b0, a0 = _length_growth(sft_dir, tmp_path, beta=0.0)
    b1, a1 = _length_growth(sft_dir, tmp_path, beta=1.0)
    assert b0 == b1  # same start
    assert a0 - b0 > 4.0, (b0, a0)  # beta = 0: length alone is maximised
    assert a1 - b1 < 0.5 * (a0 - b0), (b1, a1, a0)


@pytest.mark.slow
def test_ppo_kl_penalty_objective_and_adaptive_beta(sft_dir, tmp_path):
    cfg = PPOConfig(**RL, iterations=3, lr=1e-3, objective="kl_penalty", kl_target=0.5, kl_horizon=100,
                    kl_estimator="k3", kl_coef=0.1)
    res = run_ppo(_setup(sft_dir, StartsWithScorer(PREFIX), cfg), cfg, tmp_path / "pen", seed=0, save=False)
    betas = [h["kl_coef"] for h in res.history]
    assert len(betas) == 3 and betas != [0.1] * 3  # the controller moved kl_coef
    assert all(h["clipfrac"] == 0.0 for h in res.history)  # no clipping in the penalty variant


@pytest.mark.slow
def test_grpo_reaches_style_target(sft_dir, tmp_path):
    from llm_recipe.train.grpo import run_grpo

    # G=4: 8 distinct prompts per rollout of 32 (G=8 sees only 4, and generalises worse to held-out ones)
    cfg = GRPOConfig(**RL, iterations=20, lr=2e-3, group_size=4, beta=0.1)
    s = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    res = run_grpo(s, cfg, tmp_path / "grpo", seed=0)
    assert res.before["success"] < 0.5
    # Measured: 29/32 held-out prompts (seeds 1, 2: 30/32, 31/32), KL 7-9 nats.
    assert res.after["success"] >= 0.8, (res.before, res.after)
    assert res.after["success"] > res.before["success"] + 0.5
    assert res.after["kl"] < KL_BOUND
    assert np.mean([h["success"] for h in res.history[-3:]]) > res.history[0]["success"] + 0.4
    assert (tmp_path / "grpo" / "rl_metrics.png").exists()


@pytest.mark.slow
def test_lora_reference_is_the_policy_with_adapters_disabled(sft_dir, tmp_path):
    from llm_recipe.config import LoRAConfig
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer
    from llm_recipe.train.rl_loop import reference_logprobs
    from llm_recipe.train.rollout import token_logprobs

    cfg = PPOConfig(**RL, iterations=6, lr=5e-3, kl_coef=0.05, kl_estimator="k1", lam=1.0, lora=LoRAConfig(r=8))
    train_p, eval_p = style_prompts(cfg, seed=0)
    sft = load_causal_lm(sft_dir)  # the untouched SFT model, for comparison only
    s = RLSetup.build(load_causal_lm(sft_dir), load_tokenizer(sft_dir), StartsWithScorer(PREFIX), train_p, eval_p,
                      lora=cfg.lora)
    # (a) one model in memory: the reference is the policy object; only adapters are trainable
    assert s.ref is s.policy and s.lora
    n_sft = sum(p.numel() for p in sft.parameters())
    assert sum(p.numel() for p in s.policy.parameters()) < 1.5 * n_sft  # a frozen copy: 2x + adapters
    trainable = {n for n, p in s.policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    def check_reference():  # (b) adapters off == the SFT model, token by token
        r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, cfg.sampling, stop_ids=s.stop_ids,
                     seed=11)
        with torch.no_grad():
            want, pol = token_logprobs(sft, r)["logp"], token_logprobs(s.policy, r)["logp"]
        torch.testing.assert_close(reference_logprobs(s, r, 1.0), want, rtol=0, atol=1e-5)
        return float(((pol - want).abs() * r.response_mask).max())

    assert check_reference() < 1e-5  # adapters start as a no-op (lora_B = 0)
    frozen = {n: p.detach().clone() for n, p in s.policy.named_parameters() if not p.requires_grad}
    adapters = {n: p.detach().clone() for n, p in s.policy.named_parameters() if p.requires_grad}
    res = run_ppo(s, cfg, tmp_path / "lora", seed=0, save=False)
    # (c) only the adapters moved, and the reward went up
    params = dict(s.policy.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())
    assert sum(not torch.equal(params[n], v) for n, v in adapters.items()) > len(adapters) // 2
    assert res.after["score"] > res.before["score"] + 0.1, (res.before, res.after)
    assert check_reference() > 0.5  # the trained policy differs from the reference it is compared to
    assert res.after["kl"] < KL_BOUND


@pytest.mark.slow
def test_grpo_with_lora_trains_adapters_and_saves_a_merged_model(sft_dir, tmp_path):
    from llm_recipe.config import LoRAConfig
    from llm_recipe.models.loading import load_causal_lm, load_tokenizer
    from llm_recipe.train.grpo import run_grpo
    from llm_recipe.train.rl_loop import reference_logprobs

    cfg = GRPOConfig(**{**RL, "eval_prompts": 8}, iterations=3, lr=5e-3, group_size=4, beta=0.1,
                     lora=LoRAConfig(r=4))
    train_p, eval_p = style_prompts(cfg, seed=0)
    s = RLSetup.build(load_causal_lm(sft_dir), load_tokenizer(sft_dir), StartsWithScorer(PREFIX), train_p, eval_p,
                      lora=cfg.lora)
    assert s.ref is s.policy
    r = generate(s.policy, s.tokenizer, s.eval_prompts, s.eval_ids, cfg.sampling, stop_ids=s.stop_ids,
                 seed=3)
    res = run_grpo(s, cfg, tmp_path / "grpo_lora", seed=0)
    assert res.history[-1]["kl"] > 0  # the adapters moved the policy away from the reference
    assert (tmp_path / "grpo_lora" / "adapter" / "adapter_config.json").exists()
    merged = load_causal_lm(res.model_dir)  # a plain model: adapters merged into the weights
    sft = load_causal_lm(sft_dir)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(merged.parameters(), sft.parameters(), strict=True))
    from llm_recipe.train.rollout import token_logprobs

    with torch.no_grad():  # the saved model is the trained policy
        torch.testing.assert_close(token_logprobs(merged, r)["logp"], token_logprobs(s.policy, r)["logp"],
                                   rtol=0, atol=1e-4)
    with pytest.raises(RuntimeError, match="merged"):
        reference_logprobs(s, r, 1.0)


class _NaNScorer:
    def __init__(self, every: int):
        self.every = every

    def score(self, prompts, responses, normalize=True):
        r = np.ones(len(responses))
        r[:: self.every] = np.nan
        return r


def test_nan_rewards_stop_or_are_skipped_and_counted(sft_dir, tmp_path):
    cfg = PPOConfig(**{**RL, "eval_prompts": 1}, iterations=2)
    s = _setup(sft_dir, _NaNScorer(4), cfg)
    before = [p.detach().clone() for p in s.policy.parameters()]
    with pytest.raises(RLStabilityError, match="8 of 32 rewards are NaN/inf"):
        run_ppo(s, cfg, tmp_path / "stop", seed=0, save=False)
    assert all(torch.equal(a, b) for a, b in zip(before, s.policy.parameters(), strict=True))  # untouched
    skip = cfg.model_copy(update={"on_bad_reward": "skip"})
    res = run_ppo(s, skip, tmp_path / "skip", seed=0, save=False)
    assert res.counts["nonfinite_rewards"] == 16  # 8 per iteration, counted
    assert all(np.isfinite(p.detach()).all() for p in s.policy.parameters())
    assert len(res.history) == 2


def test_empty_response_batch_stops_with_message(sft_dir, tmp_path):
    cfg = PPOConfig(**{**RL, "eval_prompts": 1}, iterations=2)
    s = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    s.stop_ids = list(range(len(s.tokenizer)))  # every token ends the response at once: all empty
    with pytest.raises(RLStabilityError, match="every response in the batch is empty"):
        run_ppo(s, cfg, tmp_path / "empty", seed=0, save=False)
    res = run_ppo(s, cfg.model_copy(update={"on_bad_reward": "skip"}), tmp_path / "empty2", seed=0, save=False)
    assert res.counts == {"empty_batches": 2, "skipped_iterations": 2} and res.history == []


def test_rollout_keeps_stop_token_and_is_seeded(sft_dir):
    cfg = PPOConfig(**RL)
    s = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    p = SamplingConfig(max_new_tokens=20, temperature=1.0)
    a = generate(s.policy, s.tokenizer, s.train_prompts[:16], s.train_ids[:16], p, stop_ids=s.stop_ids, seed=5)
    b = generate(s.policy, s.tokenizer, s.train_prompts[:16], s.train_ids[:16], p, stop_ids=s.stop_ids, seed=5)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert a.stopped.any()
    for i in torch.nonzero(a.stopped).squeeze(1).tolist():
        n = int(a.response_mask[i].sum())
        assert a.response_ids[i, n - 1].item() in s.stop_ids  # the stop token is the last real token
        assert a.response_mask[i, n:].sum() == 0
    # the sampling pass's log-probs are log pi_old: equal to a fresh forward over the same tokens
    from llm_recipe.train.rollout import token_logprobs

    with torch.no_grad():
        want = token_logprobs(s.policy, a, 1.0)["logp"] * a.response_mask
    torch.testing.assert_close(a.logp, want, rtol=0, atol=1e-4)
    assert float(a.logp.sum()) < -1.0  # not trivially zero
    sub = a.select(torch.tensor([3, 0]))
    assert torch.equal(sub.logp, a.logp[[3, 0]])


def test_separate_critic_from_a_model_dir_is_trained(sft_dir, tmp_path):
    from llm_recipe.train.ppo import load_critic

    cfg = PPOConfig(**{**RL, "eval_prompts": 1}, iterations=1, value_model="reward_model")
    critic = load_critic(sft_dir)  # a reward model dir in the recipe; any causal LM dir works (fresh head)
    head_before = critic.score.weight.detach().clone()
    res = run_ppo(_setup(sft_dir, StartsWithScorer(PREFIX), cfg), cfg, tmp_path / "critic", seed=0,
                  critic=critic, save=False)
    assert np.isfinite(res.history[0]["vf_loss"])
    assert not torch.equal(head_before, critic.score.weight)
    with pytest.raises(ValueError, match="needs a critic"):
        run_ppo(_setup(sft_dir, StartsWithScorer(PREFIX), cfg), cfg, tmp_path / "c2", seed=0, save=False)


@pytest.mark.slow
def test_cli_ppo_and_grpo(sft_dir, tmp_path):
    from typer.testing import CliRunner

    from llm_recipe.cli import app

    small = ["--set", "ppo.iterations=1", "--set", "ppo.rollout_batch_size=8", "--set", "ppo.minibatch_size=8",
             "--set", "ppo.n_prompts=16", "--set", "ppo.eval_prompts=4", "--set", "ppo.sampling.max_new_tokens=8"]
    runner = CliRunner()
    res = runner.invoke(app, ["ppo", "--model", str(sft_dir), "-o", str(tmp_path), *small])
    assert res.exit_code == 0, res.output
    assert "success" in res.output and (tmp_path / "ppo" / "model" / "model.safetensors").exists()
    assert json.loads((tmp_path / "ppo" / "run.json").read_text())["stage"] == "ppo"
    again = runner.invoke(app, ["ppo", "--model", str(sft_dir), "-o", str(tmp_path), *small])
    assert again.exit_code == 0 and len((tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines()) == 1
    g = [x.replace("ppo.", "grpo.") for x in small] + ["--set", "grpo.group_size=4"]
    res = runner.invoke(app, ["grpo", "--model", str(sft_dir), "-o", str(tmp_path), *g])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "grpo" / "summary.json").exists()
    bad = runner.invoke(app, ["ppo", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no model to start from: pass --model/-m" in bad.output


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_stopped_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(sft_dir, tmp_path, algo):
    from llm_recipe.train.grpo import run_grpo
    from llm_recipe.train.rl_loop import stop_after_iteration

    small = {**RL, "rollout_batch_size": 16, "minibatch_size": 8, "eval_prompts": 2}
    if algo == "ppo":
        cfg, run = PPOConfig(**small, iterations=3, lr=2e-3, kl_target=1.0, kl_horizon=50), run_ppo
    else:
        cfg, run = GRPOConfig(**small, iterations=3, lr=2e-3, group_size=4, beta=0.1), run_grpo
    uninterrupted = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    full = run(uninterrupted, cfg, tmp_path / "full", seed=0, save=False)
    s = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)
    part = run(s, cfg, tmp_path / "resumed", seed=0, save=False, callbacks=[stop_after_iteration(1)])
    assert part.model_dir is None and len(part.history) == 1  # stopped, with a checkpoint
    assert (tmp_path / "resumed" / "checkpoints" / "step-0000001" / "trainable.safetensors").exists()
    s2 = _setup(sft_dir, StartsWithScorer(PREFIX), cfg)  # a new process: the SFT model again
    resumed = run(s2, cfg, tmp_path / "resumed", seed=0, save=False)
    assert [h["reward_mean"] for h in resumed.history] == [h["reward_mean"] for h in full.history]
    if algo == "ppo":  # the adaptive KL coefficient came back from the checkpoint
        assert [h["kl_coef"] for h in resumed.history] == [h["kl_coef"] for h in full.history]
    for a, b in zip(uninterrupted.policy.state_dict().values(), s2.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert resumed.before == full.before


def test_sigterm_during_the_evaluation_before_training_checkpoints_instead_of_dying(sft_dir, tmp_path, monkeypatch):
    """#20: PPO/GRPO killed by SIGTERM before the first iteration exited -15 with nothing saved."""
    import os
    import signal

    from llm_recipe.train import rl_loop
    from llm_recipe.train.grpo import run_grpo

    def unhandled(*_):
        raise AssertionError("SIGTERM reached the default handler: the run would die with nothing saved")

    real = rl_loop.evaluate_policy

    def evaluate_then_sigterm(*a, **kw):
        os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's time limit, mid-evaluation
        return real(*a, **kw)

    cfg = GRPOConfig(**{**RL, "rollout_batch_size": 8, "minibatch_size": 8, "eval_prompts": 2}, iterations=2,
                     group_size=4)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        monkeypatch.setattr(rl_loop, "evaluate_policy", evaluate_then_sigterm)
        res = run_grpo(_setup(sft_dir, StartsWithScorer(PREFIX), cfg), cfg, tmp_path, seed=0, save=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert res.model_dir is None and res.history == [] and res.before  # stopped, evaluated
    state = json.loads((tmp_path / "checkpoints" / "step-0000000" / "trainer_state.json").read_text())
    assert state["before"] == res.before  # a rerun does not evaluate again
