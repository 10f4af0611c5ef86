"""RLHF arithmetic against hand computation: GAE, clipped losses, KL estimators, whitening, KL control."""

from __future__ import annotations

import math

import pytest
import torch

from llm_recipe.train.rl_math import (
    AdaptiveKLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    gae,
    group_advantages,
    kl_estimate,
    kl_penalty_policy_loss,
    masked_whiten,
    shaped_rewards,
)


def _gae_by_hand(r: list[float], v: list[float], gamma: float, lam: float) -> tuple[list[float], list[float]]:
    """Textbook recursion on one unpadded episode (value 0 after the last token)."""
    n = len(r)
    adv = [0.0] * n
    nxt_adv, nxt_v = 0.0, 0.0
    for t in reversed(range(n)):
        delta = r[t] + gamma * nxt_v - v[t]
        nxt_adv = delta + gamma * lam * nxt_adv
        adv[t] = nxt_adv
        nxt_v = v[t]
    return adv, [a + b for a, b in zip(adv, v, strict=True)]


def test_gae_matches_hand_computation_with_masks_and_lengths():
    gamma, lam = 0.9, 0.8
    # Three rows of lengths 3, 1 and 4 right-padded to 4; padding holds junk that must be ignored.
    rewards = torch.tensor([[0.1, -0.2, 1.0, 9.0], [2.0, 9.0, 9.0, 9.0], [0.0, 0.5, -0.5, 0.3]])
    values = torch.tensor([[0.3, 0.2, 0.4, 7.0], [0.5, 7.0, 7.0, 7.0], [0.1, 0.0, 0.2, -0.1]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    adv, ret = gae(rewards, values, mask, gamma, lam)

    # Row 0 by hand, written out: d2 = 1.0 - 0.4 ; d1 = -0.2 + .9*.4 - .2 ; d0 = .1 + .9*.2 - .3
    d2, d1, d0 = 1.0 - 0.4, -0.2 + 0.9 * 0.4 - 0.2, 0.1 + 0.9 * 0.2 - 0.3
    a2, a1 = d2, d1 + 0.9 * 0.8 * d2
    a0 = d0 + 0.9 * 0.8 * a1
    assert adv[0, :3].tolist() == pytest.approx([a0, a1, a2], abs=1e-6)
    assert adv[1, 0].item() == pytest.approx(2.0 - 0.5)  # one-token episode: A = r - V
    for row, n in ((0, 3), (1, 1), (2, 4)):
        ea, er = _gae_by_hand(rewards[row, :n].tolist(), values[row, :n].tolist(), gamma, lam)
        assert adv[row, :n].tolist() == pytest.approx(ea, abs=1e-6)
        assert ret[row, :n].tolist() == pytest.approx(er, abs=1e-6)
    assert adv[mask == 0].abs().max() == 0 and ret[mask == 0].abs().max() == 0


def test_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.7]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert adv[0].tolist() == pytest.approx([0.8, 0.5, 0.3])


def test_shaped_rewards_put_score_on_last_token_and_penalise_kl():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -9.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.1, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.float32)
    rewards, kl = shaped_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, beta=0.1, kind="k1")
    torch.testing.assert_close(kl, torch.tensor([[0.5, -1.0, 0.0], [-0.2, 0.0, 0.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1, 2.0], [0.02 - 1.0, 0.0, 0.0]]))


def test_clipped_surrogate_equals_formula_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    # ratios 1.5, 0.6, 1.1 | 1.5, 0.7, 9 (padding)
    new = torch.log(torch.tensor([[0.75, 0.3, 0.55], [0.75, 0.35, 4.5]]))
    adv = torch.tensor([[1.0, 1.0, -2.0], [-1.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.float32)
    loss, st = clipped_policy_loss(new, old, adv, mask, eps=0.2)
    # per token: max(-A*rho, -A*clip(rho, .8, 1.2))
    by_hand = [max(-1 * 1.5, -1 * 1.2), max(-1 * 0.6, -1 * 0.8), max(2 * 1.1, 2 * 1.1),
               max(1 * 1.5, 1 * 1.2), max(1 * 0.7, 1 * 0.8)]
    assert by_hand == pytest.approx([-1.2, -0.6, 2.2, 1.5, 0.8])
    assert loss.item() == pytest.approx(sum(by_hand) / 5, abs=1e-6)
    # clipped tokens (the clipped term is the larger one): token 0 and token 4
    assert st["clipfrac"].item() == pytest.approx(2 / 5)
    rho = [1.5, 0.6, 1.1, 1.5, 0.7]
    assert st["approx_kl"].item() == pytest.approx(sum(x - 1 - math.log(x) for x in rho) / 5, abs=1e-6)


def test_kl_penalty_objective_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.75, 0.25]]))
    adv = torch.tensor([[1.0, -1.0]])
    loss, _ = kl_penalty_policy_loss(new, old, adv, torch.ones(1, 2), beta=0.5)
    k3 = [1.5 - 1 - math.log(1.5), 0.5 - 1 - math.log(0.5)]
    assert loss.item() == pytest.approx(((-1.5 + 0.5 * k3[0]) + (0.5 + 0.5 * k3[1])) / 2, abs=1e-6)


def test_clipped_value_loss_equals_formula_by_hand():
    values = torch.tensor([[1.0, 0.0, 2.0]])
    old = torch.tensor([[0.5, 0.1, 0.0]])
    returns = torch.tensor([[0.0, 1.0, 5.0]])
    mask = torch.tensor([[1, 1, 0]], dtype=torch.float32)
    loss, st = clipped_value_loss(values, old, returns, mask, clip=0.2)
    # token0: V=1 clipped to 0.7: max(1^2, .7^2) = 1 ; token1: V=0 within .1+-.2: max(1, 1) = 1
    assert loss.item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    values2 = torch.tensor([[0.0, 0.0, 0.0]])
    loss2, st2 = clipped_value_loss(values2, old, returns, mask, clip=0.2)
    # token0: V=0 clipped to 0.3: max(0, .09) = .09 ; token1: max(1, 1) = 1
    assert loss2.item() == pytest.approx(0.5 * (0.09 + 1.0) / 2)
    assert st2["vf_clipfrac"].item() == pytest.approx(0.5)


def test_kl_estimators_on_two_known_distributions():
    p = torch.tensor([0.5, 0.3, 0.2])  # policy
    q = torch.tensor([0.2, 0.3, 0.5])  # reference
    true_kl = float((p * (p / q).log()).sum())
    logp, logq = p.log(), q.log()
    # Exact expectations under p: k1 and k3 are unbiased, k2 is not.
    for kind in ("k1", "k3"):
        assert float((p * kl_estimate(logp, logq, kind)).sum()) == pytest.approx(true_kl, abs=1e-6)
    assert float((p * kl_estimate(logp, logq, "k2")).sum()) != pytest.approx(true_kl, abs=1e-3)
    # k3 is never negative; k1 is on the token x=2 (log p/q < 0).
    assert (kl_estimate(logp, logq, "k3") >= 0).all()
    assert kl_estimate(logp, logq, "k1")[2] < 0
    # Monte Carlo with samples from p: both estimate the KL, k3 with the lower variance.
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    k1, k3 = kl_estimate(logp[x], logq[x], "k1"), kl_estimate(logp[x], logq[x], "k3")
    assert k1.mean().item() == pytest.approx(true_kl, abs=0.01)
    assert k3.mean().item() == pytest.approx(true_kl, abs=0.01)
    assert k3.var() < k1.var()
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_estimate(logp, logq, "k9")  # type: ignore[arg-type]


def test_whitening_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.float32)
    w = masked_whiten(x, mask)
    vals = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    expect = (vals - vals.mean()) / vals.std()
    assert w[mask.bool()].tolist() == pytest.approx(expect.tolist(), abs=1e-5)
    assert w[0, 2].item() == 0.0


def test_explained_variance():
    ret = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    m = torch.ones(1, 4)
    assert explained_variance(ret.clone(), ret, m) == pytest.approx(1.0)
    assert explained_variance(torch.full_like(ret, 2.5), ret, m) == pytest.approx(0.0, abs=1e-6)


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(r, 4)
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    d = 0.5 / (std + 1e-4)  # mean 0.5: deviations +-0.5
    assert adv[:4].tolist() == pytest.approx([d, -d, -d, d], abs=1e-5)
    assert adv[4:].abs().max().item() == 0.0  # identical rewards: no signal
    with pytest.raises(ValueError, match="multiple of the group size"):
        group_advantages(r[:7], 4)


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(beta=0.1, target=6.0, horizon=100)
    ctl.update(12.0, n_steps=10)  # error clipped to +0.2: beta *= 1 + 0.2 * 10/100
    assert ctl.beta == pytest.approx(0.1 * 1.02)
    ctl.update(3.0, n_steps=10)  # error -0.5 -> clipped to -0.2
    assert ctl.beta == pytest.approx(0.1 * 1.02 * 0.98)
    fixed = AdaptiveKLController(beta=0.1)
    fixed.update(100.0, 10)
    assert fixed.beta == 0.1


def test_sequence_reward_with_length_and_missing_eos_penalties():
    from scorers import StartsWithScorer

    from llm_recipe.train.rollout import Rollout, score_responses

    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    r = Rollout(["p"] * 3, torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2, dtype=torch.long),
                torch.ones(3, 4, dtype=torch.long), mask, torch.tensor([True, False, True]),
                ["Let me explain. x", "Let me explain. y", ""])
    scores = score_responses(StartsWithScorer("Let me explain."), r, missing_eos_penalty=1.0, length_penalty=0.1)
    # 1 - 0.1*3 ; 1 - 0.1*4 - 1 (never stopped) ; 0 - 0.1*1
    assert scores.tolist() == pytest.approx([0.7, -0.4, -0.1])
    assert score_responses(StartsWithScorer("Let me explain."), r).tolist() == [1.0, 1.0, 0.0]
