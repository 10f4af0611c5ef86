"""Sampling: greedy equivalences, nucleus on a hand-made distribution, seeds, KV cache, stops."""

import math

import pytest
import torch

from llm_recipe.config import SamplingConfig
from llm_recipe.infer.generate import generate_texts
from llm_recipe.infer.sampling import next_token_distribution, sample
from llm_recipe.models.presets import build_preset_model

PROMPTS = ["東京は", "The capital of France", "### Instruction:\nWhat", "猫"]


@pytest.fixture(scope="module")
def model(tokenizer):
    m = build_preset_model("micro", tokenizer, seed=0)
    return m.eval()


@pytest.fixture(scope="module")
def prompt_ids(tokenizer):
    return tokenizer(PROMPTS)["input_ids"]


def _ids(gens):
    return [g.token_ids for g in gens]


def test_temperature_zero_is_greedy_and_matches_transformers(model, tokenizer, prompt_ids):
    greedy = sample(model, tokenizer, prompt_ids, SamplingConfig(max_new_tokens=12, temperature=0), stop_token_ids=[])
    for ids, g in zip(prompt_ids, greedy, strict=True):
        ref = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0,
                             eos_token_id=None)
        assert g.token_ids == ref[0, len(ids):].tolist()
        assert g.finish_reason == "length"
    # The limit T -> 0 of sampling is greedy; top-k = 1 at any temperature is greedy.
    cold = sample(model, tokenizer, prompt_ids, SamplingConfig(max_new_tokens=12, temperature=1e-4), seed=3,
                  stop_token_ids=[])
    top1 = sample(model, tokenizer, prompt_ids, SamplingConfig(max_new_tokens=12, temperature=1.5, top_k=1), seed=4,
                  stop_token_ids=[])
    assert _ids(cold) == _ids(greedy) == _ids(top1)


def test_top_p_keeps_the_minimal_nucleus_on_a_hand_made_distribution():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    scores, seq = probs.log(), torch.zeros((1, 1), dtype=torch.long)

    def dist(**kw):
        return next_token_distribution(scores, seq, SamplingConfig(temperature=1.0, **kw))[0]

    # p=0.75: {0.5, 0.3} is the smallest set with mass >= 0.75; renormalised to 0.625 / 0.375.
    torch.testing.assert_close(dist(top_p=0.75), torch.tensor([0.0, 0.625, 0.0, 0.375]))
    # p=0.9 needs the third token as well (0.8 < 0.9 <= 0.95).
    torch.testing.assert_close(dist(top_p=0.9), torch.tensor([0.0, 0.5, 0.15, 0.3]) / 0.95)
    # p=0.4: the single most likely token already covers it.
    torch.testing.assert_close(dist(top_p=0.4), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(dist(top_k=2), torch.tensor([0.0, 0.5, 0.0, 0.3]) / 0.8)
    # Temperature 2 flattens: p_i ∝ p_i^(1/2).
    flat = probs[0].sqrt() / probs[0].sqrt().sum()
    torch.testing.assert_close(next_token_distribution(scores, seq, SamplingConfig(temperature=2.0))[0], flat)


def test_repetition_penalty_lowers_seen_tokens():
    scores = torch.tensor([[2.0, -1.0, 1.0, 0.5]])
    seq = torch.tensor([[0, 1]])  # tokens 0 and 1 were seen
    p = next_token_distribution(scores, seq, SamplingConfig(temperature=1.0, repetition_penalty=2.0))[0]
    # transformers' rule: positive logits divided, negative multiplied by the penalty.
    expect = torch.softmax(torch.tensor([1.0, -2.0, 1.0, 0.5]), -1)
    torch.testing.assert_close(p, expect)


def test_fixed_seed_reproduces_and_batching_does_not_change_samples(model, tokenizer, prompt_ids):
    p = SamplingConfig(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.95)
    a = sample(model, tokenizer, prompt_ids, p, seed=7, stop_token_ids=[])
    b = sample(model, tokenizer, prompt_ids, p, seed=7, stop_token_ids=[])
    c = sample(model, tokenizer, prompt_ids, p, seed=8, stop_token_ids=[])
    assert _ids(a) == _ids(b) and _ids(a) != _ids(c)
    # Each prompt has its own generator: batch size 1 (no padding, no neighbours) gives the same samples.
    one = sample(model, tokenizer, prompt_ids, p, seed=7, stop_token_ids=[], batch_size=1)
    assert _ids(one) == _ids(a)


def test_kv_cache_and_left_padded_batches_match_recomputation(model, tokenizer, prompt_ids):
    p = SamplingConfig(max_new_tokens=10, temperature=0)
    cached = sample(model, tokenizer, prompt_ids, p, stop_token_ids=[], batch_size=4)
    uncached = sample(model, tokenizer, prompt_ids, p, stop_token_ids=[], batch_size=4, use_cache=False)
    alone = sample(model, tokenizer, prompt_ids, p, stop_token_ids=[], batch_size=1)
    assert _ids(cached) == _ids(uncached) == _ids(alone)


def test_repeated_prompts_share_one_prefill_and_sample_as_if_alone(model, tokenizer, prompt_ids, monkeypatch):
    # Best-of-N samples the same prompt N times: its prefill runs once (the cache is copied), and
    # each row still samples exactly what it samples alone (batch size 1, no sharing possible).
    rows = []
    real = model.forward

    def recording(*a, **k):
        rows.append(tuple(k["input_ids"].shape))
        return real(*a, **k)

    ids = [prompt_ids[0]] * 4 + [prompt_ids[2]] * 4
    p = SamplingConfig(max_new_tokens=10, temperature=1.0)
    monkeypatch.setattr(model, "forward", recording)
    shared = sample(model, tokenizer, ids, p, seed=5, stop_token_ids=[], batch_size=8)
    monkeypatch.undo()
    assert rows[0][0] == 2 and all(r == (8, 1) for r in rows[1:])  # prefill: 2 distinct prompts; then 8 rows
    alone = sample(model, tokenizer, ids, p, seed=5, stop_token_ids=[], batch_size=1)
    assert _ids(shared) == _ids(alone)
    assert len({tuple(x) for x in _ids(shared)[:4]}) > 1  # the copies still sample differently


def test_stop_strings_and_stop_tokens(model, tokenizer, prompt_ids):
    p = SamplingConfig(max_new_tokens=24, temperature=1.0)
    full = sample(model, tokenizer, prompt_ids[:1], p, seed=5, stop_token_ids=[])[0]
    text = full.text
    # A stop string that first occurs a few characters in.
    i = next(i for i in range(3, len(text) - 2) if text.find(text[i : i + 2]) == i)
    stop = text[i : i + 2]
    cut = sample(model, tokenizer, prompt_ids[:1], SamplingConfig(max_new_tokens=24, temperature=1.0, stop=[stop]),
                 seed=5, stop_token_ids=[])[0]
    assert cut.finish_reason == "stop_string" and cut.text == text[:i]
    # A stop token ends the sample right before its first occurrence.
    k = 5
    tok_stop = sample(model, tokenizer, prompt_ids[:1], p, seed=5, stop_token_ids=[full.token_ids[k]])[0]
    first = full.token_ids.index(full.token_ids[k])
    assert tok_stop.finish_reason == "stop_token" and tok_stop.token_ids == full.token_ids[:first]


def test_generate_texts_keeps_its_api(model, tokenizer):
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0, repetition_penalty=1.0)
    outs = generate_texts(model, tokenizer, PROMPTS, greedy, seed=0)
    assert len(outs) == 4 and all(isinstance(o, str) for o in outs)
    ids = tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
    ref = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=tokenizer.eos_token_id)
    assert outs[1] == tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
    assert math.isfinite(len(outs[0]))
