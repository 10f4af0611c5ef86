"""RLOO, REINFORCE++ and DAPO's dynamic sampling: RLOO's loss equals TRL 1.16 RLOOTrainer's on the
same tokens, its advantages TRL's leave-one-out formula; the rest against their definitions."""

from __future__ import annotations

import pytest
import torch
from test_grpo import G, T, setup  # noqa: F401, F811 (the GRPO parity test's policy, tokens, old log-probs)

from llm_recipe.train.dynamic_sampling import uninformative_groups
from llm_recipe.train.reinforce_pp import group_baseline
from llm_recipe.train.rl_math import discounted_returns, leave_one_out_advantages, rloo_loss
from llm_recipe.train.rollout import Rollout, concat_rollouts, token_logprobs


def _trl_rloo(model, tokenizer, out):
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    args = RLOOConfig(output_dir=str(out), beta=0.0, num_generations=G, per_device_train_batch_size=G,
                      max_completion_length=T, report_to="none", epsilon=0.2, temperature=1.0, use_cpu=True,
                      logging_steps=1, bf16=False)
    ds = Dataset.from_dict({"prompt": ["a", "b"] * 4})
    return RLOOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                       train_dataset=ds, processing_class=tokenizer)


def test_rloo_loss_equals_trl(setup, tokenizer):  # noqa: F811
    s = setup
    keep = torch.ones(2 * G, dtype=torch.bool)
    adv = leave_one_out_advantages(torch.tensor([1.0, 0.0, 0.5, 0.0, 2.0, 1.0, 1.0, -1.0]), keep, G)
    trainer = _trl_rloo(s["model"], tokenizer, s["out"] / "rloo")
    model = trainer.model
    model.train()
    inputs = {"prompt_ids": s["prompts"], "prompt_mask": torch.ones_like(s["prompts"]),
              "completion_ids": s["completions"], "completion_mask": s["cmask"],
              "old_logps": (s["old"] * s["cmask"]).sum(1), "advantages": adv}
    trl_loss = trainer._compute_loss(model, inputs)
    params = [p for p in model.parameters() if p.requires_grad]
    trl_grads = torch.autograd.grad(trl_loss, params)
    ours, stats = rloo_loss(token_logprobs(model, s["r"])["logp"], s["old"], adv, s["r"].response_mask)
    our_grads = torch.autograd.grad(ours, params)
    # a sequence log-ratio sums ~T float32 log-probs (ours from the packed layout, TRL's from a padded
    # pass) and is exponentiated: agreement to ~1e-5 relative, not to the last bit
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-4)
    for a, b in zip(our_grads, trl_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
    assert 0 < stats["clipfrac"].item() < 1  # the clipping was exercised


def trl_rloo_advantages(rewards: torch.Tensor, normalize: bool) -> torch.Tensor:
    """TRL 1.16 RLOOTrainer's advantage computation (`_generate_and_score_completions`), NaN = unscored."""
    from trl.trainer.utils import nanstd

    grouped = rewards.view(-1, G)
    counts = (~torch.isnan(grouped)).sum(1, keepdim=True)
    baselines = ((torch.nansum(grouped, 1, keepdim=True) - grouped) / (counts - 1)).view(-1)
    adv = rewards - baselines
    if normalize:
        adv = (adv - torch.nanmean(adv)) / (nanstd(adv) + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


@pytest.mark.parametrize("normalize", [False, True])
def test_leave_one_out_matches_trl(normalize):
    r = torch.tensor([1.0, 0.0, 0.5, 0.0, 2.0, float("nan"), 1.0, -1.0, 3.0, float("nan"), float("nan"), float("nan")])
    keep = ~torch.isnan(r)
    ours = leave_one_out_advantages(torch.nan_to_num(r), keep, G, normalize=normalize)
    torch.testing.assert_close(ours, trl_rloo_advantages(r, normalize))
    assert ours[8] == 0  # a group with one scored sample has no baseline: no signal


def test_reinforce_pp_pieces():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = torch.tensor([[0.1, -0.2, 1.0], [0.5, 2.0, 9.0]])
    torch.testing.assert_close(discounted_returns(rewards, mask, 1.0), torch.tensor([[0.9, 0.8, 1.0], [2.5, 2.0, 0.0]]))
    torch.testing.assert_close(discounted_returns(rewards, mask, 0.5),
                               torch.tensor([[0.1 - 0.1 + 0.25, -0.2 + 0.5, 1.0], [1.5, 2.0, 0.0]]))
    scores = torch.tensor([1.0, 0.0, 1.0, 1.0, 5.0, 3.0])
    keep = torch.tensor([True, True, True, True, False, True])
    torch.testing.assert_close(group_baseline(scores, keep, 3), torch.tensor([1 / 3, -2 / 3, 1 / 3, -1.0, 3.0, 1.0]))


def test_uninformative_groups():
    scores = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    keep = torch.tensor([True, True, True, True, True, True, True, True, False])
    # group 0 all right; group 1 mixed; group 2: the only differing row is not kept
    assert uninformative_groups(scores, keep, 3).tolist() == [True, False, True]


def test_concat_rollouts_repads():
    a = Rollout(["p"], torch.tensor([[7, 8]]), torch.tensor([[1, 1]]), torch.tensor([[4, 5, 6]]),
                torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([True]), ["x"], torch.tensor([[-1.0, -2.0, -3.0]]))
    b = Rollout(["q"], torch.tensor([[9, 9, 9]]), torch.tensor([[1, 1, 1]]), torch.tensor([[4]]),
                torch.tensor([[1.0]]), torch.tensor([False]), ["y"], torch.tensor([[-0.5]]))
    c = concat_rollouts([a, b], pad_id=0)
    assert c.query_ids.tolist() == [[0, 7, 8], [9, 9, 9]] and c.query_mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert c.response_ids.tolist() == [[4, 5, 6], [4, 0, 0]] and c.response_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert c.logp.tolist() == [[-1.0, -2.0, -3.0], [-0.5, 0.0, 0.0]] and c.texts == ["x", "y"]
