"""The reference at the policy's precision: under every `compute` setting (fp32, bf16 autocast,
bf16 weights) DPO's reference log-probs are computed as the policy's first forward is, so at step 0
the DPO loss is log 2 and the implicit rewards are 0; KTO's loss is 1/2; and RL's reference and
pi_old equal the policy's own forward (KL 0, ratio 1 before the first update).

Before the fix, `mixed_precision: bf16` scored the cached reference in fp32 while the loop's
forwards ran under bf16 autocast: step-0 loss log 2 - 5e-5 on this micro model (0.685 on SmolLM2).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from llm_recipe.config import ComputeConfig, DPOConfig, GRPOConfig, SamplingConfig
from llm_recipe.demo.style import style_preference_pairs
from llm_recipe.models.presets import build_preset_model
from llm_recipe.tokenizer.chat_formats import apply_chat_format, get_chat_format

COMPUTE = {"fp32": {}, "bf16-autocast": {"mixed_precision": "bf16"}, "bf16-weights": {"dtype": "bfloat16"}}


@pytest.fixture(scope="module")
def init_dir(tokenizer_dir, tmp_path_factory):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    apply_chat_format(tok, get_chat_format("chatml"))
    out = tmp_path_factory.mktemp("precision_init")
    build_preset_model("micro", tok, seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _metrics(out) -> list[dict]:
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("compute,loss_type", [*((c, "sigmoid") for c in COMPUTE), ("bf16-autocast", "kto")])
def test_step0_loss_is_exact_under_every_compute_setting(init_dir, tmp_path, compute, loss_type):
    from llm_recipe.train.dpo import run_dpo

    pairs = style_preference_pairs(40, 0)
    cfg = DPOConfig(max_steps=1, batch_size=8, log_every=1, eval_every=1, eval_batches=4, warmup_steps=0,
                    loss_type=loss_type, compute=ComputeConfig(**COMPUTE[compute]))
    run_dpo(init=init_dir, train_pairs=pairs[:32], eval_pairs=pairs[32:], cfg=cfg, output_dir=tmp_path)
    m = _metrics(tmp_path)
    ev0 = next(e for e in m if e["step"] == 0)
    first = next(e for e in m if e["step"] == 1 and "loss" in e)  # the first update's batch, policy = reference
    if loss_type == "sigmoid":
        # Evaluation batches are scored in the loop's layout: bit for bit (the bug left 5e-5 here).
        assert ev0["eval_dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
        assert abs(ev0["eval_reward_chosen"]) < 1e-6 and abs(ev0["eval_reward_rejected"]) < 1e-6
        # Training batches are cut differently from the reference pass's (other padding): 1e-4.
        assert first["dpo_loss"] == pytest.approx(math.log(2), abs=1e-4)
    else:  # KTO: log-ratio 0 and KL estimate 0 -> 1 - sigmoid(0) for every example
        assert ev0["eval_kto_loss"] == pytest.approx(0.5, abs=1e-6) and ev0["eval_kl"] < 1e-6
        assert first["kto_loss"] == pytest.approx(0.5, abs=1e-4)


def test_a_reference_cache_scored_at_another_precision_is_not_reused(init_dir, tmp_path):
    from transformers import AutoTokenizer

    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.train.dpo import DPOObjective
    from llm_recipe.train.dpo_data import tokenize_dpo_pairs
    from llm_recipe.train.loop import make_accelerator
    from llm_recipe.train.reference_logps import attach_reference_logps

    tok = AutoTokenizer.from_pretrained(init_dir)
    ex = tokenize_dpo_pairs(style_preference_pairs(8, 0), tok, get_chat_format("chatml"), 128)
    model = load_causal_lm(init_dir)
    values = {}
    for mp in ("no", "bf16", "bf16", "no"):
        cfg = DPOConfig(compute=ComputeConfig(mixed_precision=mp))
        rep = attach_reference_logps(model, DPOObjective(tok.pad_token_id, cfg), ex, [], tmp_path, 4,
                                     accelerator=make_accelerator(cfg.compute))
        values.setdefault(mp, []).append((rep["reused"], [e.ref_chosen for e in ex]))
    assert [r for r, _ in values["bf16"]] == [False, True]  # recomputed at bf16, then reused
    assert values["no"][1][0] is False  # the bf16 cache was not taken for fp32
    assert values["no"][0][1] == values["no"][1][1] != values["bf16"][0][1]


@pytest.mark.parametrize("compute", ["bf16-autocast", "bf16-weights"])
def test_rl_reference_and_pi_old_at_the_policys_precision(init_dir, tmp_path, compute):
    """GRPO, one rollout, one minibatch, one epoch: before the update the policy is the reference
    and pi_old, so the logged KL to the reference and the update's approx KL to pi_old are 0."""
    from scorers import LengthScorer
    from transformers import AutoTokenizer

    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.train.grpo import run_grpo
    from llm_recipe.train.rl_loop import RLSetup

    comp = ComputeConfig(**COMPUTE[compute])
    tok = AutoTokenizer.from_pretrained(init_dir)
    prompts = [p.messages()[-1]["content"] for p in style_preference_pairs(8, 1)]
    s = RLSetup.build(load_causal_lm(init_dir, comp.dtype), tok, LengthScorer(), prompts, [])
    cfg = GRPOConfig(iterations=1, rollout_batch_size=8, group_size=4, minibatch_size=8, epochs=1, beta=0.04,
                     lr=1e-5, sampling=SamplingConfig(max_new_tokens=6, temperature=1.0), success_prefix=None,
                     eval_prompts=1, compute=comp)
    torch.manual_seed(0)
    res = run_grpo(s, cfg, tmp_path / "grpo", save=False)
    rec = res.history[0]
    assert rec["kl"] == 0.0  # old vs reference, summed over each response
    assert abs(rec["approx_kl"]) < 1e-7 and rec["clipfrac"] == 0.0  # current vs old at the first update


def test_a_one_step_grpo_update_takes_pi_old_from_its_own_forward(init_dir, tmp_path, monkeypatch):
    """One epoch, one minibatch (TRL's GRPO defaults): log pi_old is the update's forward, detached,
    so the no-grad pass that computed it is saved; the run trains to the weights (up to float
    rounding), losses and KL of a run that makes that pass (bf16 autocast, where the sampling
    log-probs are not pi_old)."""
    from scorers import LengthScorer
    from transformers import AutoTokenizer

    import llm_recipe.train.rl_loop as rl_loop
    from llm_recipe.models.loading import load_causal_lm
    from llm_recipe.train.grpo import run_grpo
    from llm_recipe.train.rl_loop import RLSetup, RLTrainer

    comp = ComputeConfig(mixed_precision="bf16")
    tok = AutoTokenizer.from_pretrained(init_dir)
    prompts = [p.messages()[-1]["content"] for p in style_preference_pairs(8, 1)]
    cfg = GRPOConfig(iterations=2, rollout_batch_size=8, group_size=4, minibatch_size=8, epochs=1, beta=0.04,
                     lr=1e-3, sampling=SamplingConfig(max_new_tokens=6, temperature=1.0), success_prefix=None,
                     eval_prompts=1, compute=comp)
    calls = {"n": 0}
    forward = rl_loop.rl_forward

    def counted(*a, **kw):
        calls["n"] += 1
        return forward(*a, **kw)

    monkeypatch.setattr(rl_loop, "rl_forward", counted)

    def run(name):
        calls["n"] = 0
        s = RLSetup.build(load_causal_lm(init_dir, comp.dtype), tok, LengthScorer(), prompts, [])
        torch.manual_seed(0)
        res = run_grpo(s, cfg, tmp_path / name, save=False)
        return s.policy.state_dict(), res.history, calls["n"]

    w_reuse, h_reuse, n_reuse = run("reuse")
    monkeypatch.setattr(RLTrainer, "_old_from_update", lambda self, r: False)
    w_pass, h_pass, n_pass = run("pass")
    assert n_pass - n_reuse == cfg.iterations  # one no-grad pass per iteration saved
    for k in w_pass:  # equal up to float rounding: the two forwards batch the rows in other orders
        torch.testing.assert_close(w_reuse[k], w_pass[k], rtol=0, atol=1e-7)
    assert [h["kl"] for h in h_reuse] == [h["kl"] for h in h_pass] and h_reuse[1]["kl"] != 0.0
    assert [h["loss"] for h in h_reuse] == [h["loss"] for h in h_pass]
