"""GRPO loss: ours equals TRL 1.16 GRPOTrainer's `_compute_loss` on the same tokens and rewards."""

from __future__ import annotations

import pytest
import torch

from llm_recipe.train.rl_math import group_advantages, grpo_loss
from llm_recipe.train.rollout import Rollout, token_logprobs

G, P, T = 4, 5, 6


@pytest.fixture(scope="module")
def setup(tokenizer, tmp_path_factory):
    from llm_recipe.models.presets import build_preset_model

    model = build_preset_model("micro", tokenizer, seed=3)
    # TRL builds its reference model from the policy's path: give it one.
    model_dir = tmp_path_factory.mktemp("grpo_policy")
    model.save_pretrained(model_dir)
    model.config._name_or_path = str(model_dir)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    # 2 prompts x G samples; prompts of equal length (TRL feeds no position ids, so no left padding).
    prompts = torch.randint(5, vocab, (2, P), generator=gen).repeat_interleave(G, 0)
    completions = torch.randint(5, vocab, (2 * G, T), generator=gen)
    lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6])
    cmask = (torch.arange(T)[None] < lengths[:, None]).long()
    completions = completions * cmask  # padding id 0 after the end, as TRL pads
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 2.0, 1.0, 1.0, -1.0])
    with torch.no_grad():
        r = Rollout([""] * 2 * G, prompts, torch.ones_like(prompts), completions, cmask.float(),
                    torch.ones(2 * G, dtype=torch.bool), [""] * 2 * G)
        logp = token_logprobs(model, r)["logp"]
    # Rollout-time and reference log-probs that differ from the current ones, so that both the
    # clipping and the KL term are exercised.
    old = logp + 0.3 * torch.randn(logp.shape, generator=gen)
    ref = logp + 0.5 * torch.randn(logp.shape, generator=gen)
    return dict(model=model, r=r, rewards=rewards, old=old, ref=ref, prompts=prompts, cmask=cmask,
                completions=completions, out=tmp_path_factory.mktemp("trl_grpo"))


def _trl_trainer(model, tokenizer, out, loss_type: str, beta: float, importance: str = "token"):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(output_dir=str(out), beta=beta, loss_type=loss_type, num_generations=G,
                      per_device_train_batch_size=G, max_completion_length=T, report_to="none",
                      epsilon=0.2, temperature=1.0, use_cpu=True, logging_steps=1,
                      bf16=False, use_bias_correction_kl=True, importance_sampling_level=importance)
    ds = Dataset.from_dict({"prompt": ["a", "b"] * 4})
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                          args=args, train_dataset=ds, processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1
    return trainer


@pytest.mark.parametrize("loss_type,beta,importance", [("grpo", 0.04, "token"), ("bnpo", 0.0, "token"),
                                                       ("dr_grpo", 0.1, "token"), ("dapo", 0.04, "token"),
                                                       ("grpo", 0.04, "sequence"), ("dapo", 0.0, "sequence")])
def test_grpo_loss_equals_trl(setup, tokenizer, loss_type, beta, importance):
    """... and GSPO (importance_sampling 'sequence': one ratio per completion) equals TRL's
    `importance_sampling_level='sequence'`."""
    s = setup
    adv = group_advantages(s["rewards"], G)
    trainer = _trl_trainer(s["model"], tokenizer, s["out"] / f"{loss_type}-{importance}", loss_type, beta, importance)
    model = trainer.model
    model.train()
    inputs = {"prompt_ids": s["prompts"], "prompt_mask": torch.ones_like(s["prompts"]),
              "completion_ids": s["completions"], "completion_mask": s["cmask"], "advantages": adv,
              "old_per_token_logps": s["old"], "ref_per_token_logps": s["ref"],
              "num_items_in_batch": s["cmask"].sum()}
    trl_loss = trainer._compute_loss(model, inputs)
    trl_grads = torch.autograd.grad(trl_loss, [p for p in model.parameters() if p.requires_grad])

    logp = token_logprobs(model, s["r"])["logp"]
    ours, stats = grpo_loss(logp, s["old"], s["ref"] if beta else None, adv, s["r"].response_mask, beta=beta,
                            loss_type=loss_type, max_completion_length=T, importance_sampling=importance)
    our_grads = torch.autograd.grad(ours, [p for p in model.parameters() if p.requires_grad])
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-5, abs=1e-7)
    for a, b in zip(our_grads, trl_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if importance == "token":
        assert 0 < stats["clipfrac"].item() < 1  # the clipping was exercised
    else:  # one ratio per sequence: not the token-level loss
        token, _ = grpo_loss(logp, s["old"], s["ref"] if beta else None, adv, s["r"].response_mask, beta=beta,
                             loss_type=loss_type, max_completion_length=T)
        assert abs(token.item() - ours.item()) > 1e-4


def test_group_advantages_match_trl_formula(setup):
    from trl.trainer.utils import nanstd

    r = setup["rewards"]
    grouped = r.view(-1, G)
    expect = (r - grouped.mean(1).repeat_interleave(G)) / (nanstd(grouped, dim=1).repeat_interleave(G) + 1e-4)
    torch.testing.assert_close(group_advantages(r, G), expect)
