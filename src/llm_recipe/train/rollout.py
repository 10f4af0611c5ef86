"""The rollout phase shared by PPO and GRPO: sample responses, score them, re-score tokens.

  generate()          batched sampling from the current policy with the project's one decoding loop
                      (`infer.sampling.decode`: KV cache, a prompt repeated in the batch prefilled
                      once), at the configured temperature / top-k / top-p. Unlike
                      `infer.sampling.sample` the stop token is *kept* as the response's last token:
                      stopping is an action the policy is trained on (without it a length reward
                      could never be resisted), and the whole batch draws from one seeded generator
                      (one `multinomial` per step, not per row).
  token_logprobs()    a forward pass over prompt + response returning per-token log-probs of the
                      response (at the sampling temperature, as TRL does) and optionally entropies
                      and the last hidden states (for a value head). The pass runs on a compact
                      layout (`rollout_forward`: shared prompts or packed sequences) and maps the
                      result back to the batch layout below.
  score_responses()   sequence rewards from any `Scorer` (reward model(s), rules), with the optional
                      length penalty and the fixed penalty for responses that never stopped.

Layout of a rollout batch: prompts left-padded to width P (so every prompt ends in one column),
responses right-padded to width T; `response_mask` [B, T] marks real response tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import SamplingConfig
from ..infer.sampling import decode, left_pad, logits_processors
from .rl_math import entropy_from_logits
from .rollout_forward import decoder_and_head, padded_inputs, response_states


@dataclass
class Rollout:
    prompts: list  # what the scorer sees (prompt text or messages), one per row
    query_ids: torch.Tensor  # [B, P] left-padded
    query_mask: torch.Tensor  # [B, P]
    response_ids: torch.Tensor  # [B, T] right-padded with pad_id
    response_mask: torch.Tensor  # [B, T] float
    stopped: torch.Tensor  # [B] bool: the response ended with a stop token
    texts: list[str]  # decoded responses, without the stop token
    logp: torch.Tensor | None = None  # [B, T] log-probs of the sampled tokens at sampling time (0 on padding)

    def __len__(self) -> int:
        return self.response_ids.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)

    def select(self, idx: torch.Tensor) -> Rollout:
        il = idx.tolist()
        return Rollout([self.prompts[i] for i in il], self.query_ids[idx], self.query_mask[idx],
                       self.response_ids[idx], self.response_mask[idx], self.stopped[idx],
                       [self.texts[i] for i in il], None if self.logp is None else self.logp[idx])


@torch.no_grad()
def generate(model, tokenizer, prompts: list, prompt_ids: Sequence[Sequence[int]], params: SamplingConfig, *,
             stop_ids: Sequence[int], seed: int) -> Rollout:
    """Sample one response per prompt (repeat prompts for GRPO groups) with the project's one
    decoding loop (`infer.sampling.decode`), the whole batch drawing from one seeded generator.
    Deterministic for a seed. The log-prob of each sampled token (raw logits / temperature, as
    `token_logprobs` computes it) is kept: it is log pi_old, so the update phase need not recompute
    it with another forward pass (TRL's PPO does the same)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    query, qmask = left_pad(prompt_ids, pad_id)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    procs = logits_processors(params)

    def choose(raw: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
        scores = procs(seq, raw)
        if params.temperature == 0:
            return scores.argmax(-1)
        return torch.multinomial(torch.softmax(scores, -1).cpu(), 1, generator=gen).squeeze(1).to(raw.device)

    was_training = model.training
    model.eval()
    try:
        d = decode(model, query, qmask, params.max_new_tokens, choose, stop_ids=stop_ids, pad_id=pad_id,
                   logprob_temperature=params.temperature)
    finally:
        model.train(was_training)
    n = d.tokens.shape[1]
    mask = (torch.arange(n, device=d.lengths.device)[None, :] < d.lengths[:, None]).float()
    texts = [tokenizer.decode(row[: int(length) - int(stop)], skip_special_tokens=True)
             for row, length, stop in zip(d.tokens.tolist(), d.lengths, d.stopped, strict=True)]
    return Rollout(list(prompts), query.cpu(), qmask.cpu(), d.tokens.cpu(), mask.cpu(), d.stopped.cpu(), texts,
                   d.logps.cpu())


def token_logprobs(model, r: Rollout, temperature: float = 1.0, *, entropy: bool = False,
                   hidden: bool = False) -> dict[str, torch.Tensor]:
    """Log-probs [B, T] of the response tokens under `model` (grad flows if enabled by the caller),
    0 on padding. Logits are divided by the sampling temperature, the distribution the tokens were
    drawn from. The forward uses the cheapest exact layout (`rollout_forward`: shared prompts or
    packed sequences, vocabulary projection on response positions only); `hidden` adds the final
    hidden state [B, T, H] at the position that produced each token (what a value head reads)."""
    device = next(model.parameters()).device
    split = decoder_and_head(model)
    if split is not None:
        h = response_states(split[0], r, device)
        logits = split[1](h).float()
    else:  # logits are not a plain projection of the last state: one padded pass of the whole model
        ids, attn, pos = padded_inputs(r, device)
        T = r.response_ids.shape[1]
        o = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=T + 1,
                  output_hidden_states=hidden)
        logits = o.logits[:, :-1].float()  # position j predicts response token j
        h = o.hidden_states[-1][:, -T - 1 : -1] if hidden else None
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    mask = r.response_mask.to(device)
    target = r.response_ids.to(device)
    logp = torch.gather(torch.log_softmax(logits, -1), 2, target[:, :, None]).squeeze(2) * mask
    out = {"logp": logp}
    if entropy:
        out["entropy"] = entropy_from_logits(logits.detach()) * mask
    if hidden:
        out["hidden"] = h
    return out


def score_responses(scorer, r: Rollout, *, missing_eos_penalty: float | None = None,
                    length_penalty: float = 0.0) -> np.ndarray:
    """Sequence rewards: scorer score, minus `length_penalty` per response token, minus
    `missing_eos_penalty` for responses cut by max_new_tokens (never stopped)."""
    scores = np.asarray(scorer.score(r.prompts, r.texts), dtype=np.float64).copy()
    if length_penalty:
        scores -= length_penalty * r.lengths.numpy()
    if missing_eos_penalty is not None:
        scores -= missing_eos_penalty * (~r.stopped).numpy()
    return scores


