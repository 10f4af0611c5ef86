"""Rollout forward layouts (packed sequences, shared prompts, shared prefill) give the padded
batch's numbers: log-probs, values, gradients and sampled tokens."""

from __future__ import annotations

import pytest
import torch

from llm_recipe.config import SamplingConfig
from llm_recipe.train.rollout import Rollout, generate, token_logprobs
from llm_recipe.train.rollout_forward import (
    best_packing,
    decoder_and_head,
    layout_ok,
    pack_rollout,
    shared_prompt_groups,
)

T = 7


@pytest.fixture(scope="module")
def model(tokenizer):
    from llm_recipe.models.presets import build_preset_model

    return _sharpened(build_preset_model("micro", tokenizer, seed=1))


def _sharpened(model):
    """Weights of std 0.3 instead of the init's 0.02: a fresh model's next-token distribution is
    nearly uniform, so a layout that attended to the wrong tokens could still match to 1e-5."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model


def _rollout(vocab: int, prompt_lens: list[int], resp_lens: list[int], repeat: int = 1, seed: int = 0) -> Rollout:
    """Left-padded prompts of the given lengths (each repeated `repeat` times in a row, as GRPO
    lays out groups), right-padded responses of the given lengths."""
    g = torch.Generator().manual_seed(seed)
    distinct = [torch.randint(5, vocab, (n,), generator=g).tolist() for n in prompt_lens]
    prompts = [p for p in distinct for _ in range(repeat)]
    width = max(prompt_lens)
    q = torch.zeros((len(prompts), width), dtype=torch.long)
    qm = torch.zeros_like(q)
    for i, p in enumerate(prompts):
        q[i, width - len(p):], qm[i, width - len(p):] = torch.tensor(p), 1
    B = len(prompts)
    rm = (torch.arange(T)[None] < torch.tensor(resp_lens)[:, None]).float()
    resp = torch.randint(5, vocab, (B, T), generator=g) * rm.long()
    return Rollout([""] * B, q, qm, resp, rm, torch.ones(B, dtype=torch.bool), [""] * B)


def _padded_logp(model, r: Rollout) -> torch.Tensor:
    """The reference: one forward over the padded batch, the layout before packing existed."""
    ids = torch.cat([r.query_ids, r.response_ids], 1)
    attn = torch.cat([r.query_mask, r.response_mask.long()], 1)
    o = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0))
    logits = o.logits[:, -T - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(2, r.response_ids[:, :, None]).squeeze(2) * r.response_mask


def _logp_and_grads(model, fn, r, w):
    model.zero_grad()
    logp = fn(model, r)
    (logp * w).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return logp.detach(), grads


def _assert_same(model, r):
    w = torch.randn(r.response_mask.shape, generator=torch.Generator().manual_seed(1))
    want, gw = _logp_and_grads(model, _padded_logp, r, w)
    got, gg = _logp_and_grads(model, lambda m, x: token_logprobs(m, x)["logp"], r, w)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    scale = max(float(g.abs().max()) for g in gw)  # fp32 sums in another order: tolerance relative to the grads' scale
    for a, b in zip(gg, gw, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4 * scale, rtol=1e-3)


def test_packing_fills_rows_and_keeps_every_token(model):
    # 12 sequences of very different lengths: packed rows hold several of them.
    r = _rollout(model.config.vocab_size, [3, 20, 5, 11, 2, 17, 8, 4, 14, 6, 9, 1], [7, 2, 5, 7, 1, 3, 6, 7, 4, 7, 2, 5])
    pk = pack_rollout(r.query_ids, r.query_mask, r.response_ids, r.response_mask, pad_id=0)
    real = int(r.query_mask.sum() + r.response_mask.sum())
    padded = r.query_ids.numel() + r.response_ids.numel()
    assert pk.input_ids.numel() < 0.8 * padded  # the padding is gone ...
    assert int((pk.input_ids != 0).sum()) == int(((r.query_ids != 0) & (r.query_mask == 1)).sum()
                                                 + ((r.response_ids != 0) & (r.response_mask == 1)).sum())
    assert pk.input_ids.numel() >= real  # ... and no token was dropped
    # every sequence starts at position 0 and counts up without a gap
    assert int((pk.position_ids == 0).sum()) >= len(r)
    assert shared_prompt_groups(r) is None  # distinct prompts: the packed layout is used


def test_best_packing_never_wider_than_padding():
    width, place, fill = best_packing([10, 9, 4, 3, 2])
    assert len(fill) * width <= 5 * 10
    assert all(f <= width for f in fill)
    assert sorted(place) == sorted(set(place))  # no two sequences share a slot start


def test_packed_logprobs_and_grads_equal_padded(model):
    assert layout_ok(model.get_decoder(), "packed")  # Llama reads sequence boundaries from positions
    _assert_same(model, _rollout(model.config.vocab_size, [3, 9, 5, 1, 12, 4], [7, 2, 5, 7, 1, 6]))


def test_shared_prompt_logprobs_and_grads_equal_padded(model):
    # 3 prompts x 4 samples, responses of different lengths: GRPO's layout
    r = _rollout(model.config.vocab_size, [4, 9, 2], [7, 3, 1, 6, 7, 7, 2, 5, 4, 7, 6, 1], repeat=4)
    groups = shared_prompt_groups(r)
    assert groups is not None and len(groups[0]) == 3
    assert layout_ok(model.get_decoder(), "shared")
    _assert_same(model, r)


def test_fallback_when_logits_are_not_a_plain_projection(model, tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    assert decoder_and_head(model) is not None  # Llama: logits = lm_head(last hidden state)
    cfg = Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=1.0)
    torch.manual_seed(0)
    capped = Gemma2ForCausalLM(cfg)
    assert decoder_and_head(capped) is None  # soft-capped logits: the full forward is used
    _assert_same(capped, _rollout(cfg.vocab_size, [3, 8, 5], [7, 2, 4]))


def test_architectures_without_packed_positions_use_the_padded_pass(tokenizer):
    from transformers import OPTConfig, OPTForCausalLM

    # OPT derives positions from the attention mask, so packed rows would attend across sequences
    cfg = OPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    ffn_dim=64, word_embed_proj_dim=32)
    torch.manual_seed(0)
    opt = _sharpened(OPTForCausalLM(cfg)).eval()  # OPT has dropout on by default
    assert not layout_ok(opt.get_decoder(), "packed")
    assert layout_ok(opt.get_decoder(), "shared")  # prompt cache + attention mask: fine
    _assert_same(opt, _rollout(cfg.vocab_size, [3, 9, 5, 1, 12, 4], [7, 2, 5, 7, 1, 6]))
    _assert_same(opt, _rollout(cfg.vocab_size, [4, 9], [7, 3, 1, 6, 2, 7, 5, 4], repeat=4))


def test_critic_values_equal_padded(model, tokenizer):
    from transformers import LlamaForSequenceClassification

    from llm_recipe.train.ppo import critic_values

    torch.manual_seed(0)
    critic = LlamaForSequenceClassification(model.config.__class__(**{**model.config.to_dict(), "num_labels": 1}))
    for r in (_rollout(model.config.vocab_size, [3, 9, 5, 1], [7, 2, 5, 7]),
              _rollout(model.config.vocab_size, [4, 9], [7, 3, 1, 6, 2, 7], repeat=3)):
        ids = torch.cat([r.query_ids, r.response_ids], 1)
        attn = torch.cat([r.query_mask, r.response_mask.long()], 1)
        h = critic.model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0))
        want = critic.score(h.last_hidden_state[:, -T - 1 : -1]).squeeze(-1) * r.response_mask
        torch.testing.assert_close(critic_values(critic, r), want, atol=2e-5, rtol=1e-4)


def test_generate_shared_prefill_samples_the_same_tokens(model, tokenizer, monkeypatch):
    import llm_recipe.infer.sampling as sampling

    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    ids = [p for p in prompts for _ in range(4)]  # each prompt 4 times, as GRPO samples
    params = SamplingConfig(max_new_tokens=6, temperature=1.0)
    shared = generate(model, tokenizer, [""] * len(ids), ids, params, stop_ids=[tokenizer.eos_token_id], seed=3)

    def one_pass_per_row(m, q, qm):  # the prefill without sharing
        o = m(input_ids=q, attention_mask=qm, position_ids=(qm.cumsum(-1) - 1).clamp(min=0), use_cache=True,
              logits_to_keep=1)
        return o.logits[:, -1].float(), o.past_key_values

    monkeypatch.setattr(sampling, "prefill", one_pass_per_row)
    plain = generate(model, tokenizer, [""] * len(ids), ids, params, stop_ids=[tokenizer.eos_token_id], seed=3)
    assert torch.equal(shared.response_ids, plain.response_ids)
    torch.testing.assert_close(shared.logp, plain.logp, atol=1e-5, rtol=1e-4)
    # the G samples of one prompt differ (one generator for the batch, not one per row)
    assert len({tuple(x) for x in shared.response_ids[:4].tolist()}) > 1
