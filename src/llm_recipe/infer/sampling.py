"""Sampling from a causal LM: batched, KV-cached, seeded per prompt.

The logit transforms are transformers' own processors (repetition penalty, temperature, top-k,
top-p), applied in that order. What this module adds, and why it is a loop of its own instead of
`model.generate`:
  * every prompt draws from its own generator seeded from (seed, prompt index), so a prompt's
    sample does not depend on which other prompts share its batch, or on the batch size;
  * stop strings end a sample and are cut from its text; any of several stop tokens (eos, a chat
    format's end-of-turn marker) ends it too, and each sample reports why it ended.
temperature == 0 is greedy decoding (argmax after the repetition penalty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ..config import SamplingConfig


@dataclass
class Generation:
    text: str
    token_ids: list[int]  # generated tokens, without the stop token
    finish_reason: str  # "stop_token" | "stop_string" | "length"


def logits_processors(p: SamplingConfig) -> LogitsProcessorList:
    procs = LogitsProcessorList()
    if p.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(p.repetition_penalty))
    if p.temperature > 0:
        if p.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(p.temperature))
        if p.top_k is not None and p.top_k > 0:
            procs.append(TopKLogitsWarper(p.top_k))
        if p.top_p is not None and p.top_p < 1.0:
            procs.append(TopPLogitsWarper(p.top_p))
    return procs


def next_token_distribution(scores: torch.Tensor, seq: torch.Tensor, p: SamplingConfig) -> torch.Tensor:
    """Probabilities the next token is drawn from, after all transforms ([B, V])."""
    scores = logits_processors(p)(seq, scores.float())
    return torch.softmax(scores, dim=-1)


def row_generators(seed: int, n: int) -> list[torch.Generator]:
    """One generator per prompt, seeded from (seed, index) via numpy's SeedSequence."""
    states = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(s.generate_state(1, np.uint64)[0] >> 1)) for s in states]


def choose_tokens(scores: torch.Tensor, seq: torch.Tensor, p: SamplingConfig,
                  gens: Sequence[torch.Generator]) -> torch.Tensor:
    if p.temperature == 0:
        if p.repetition_penalty != 1.0:
            scores = logits_processors(p)(seq, scores.float())
        return scores.argmax(dim=-1)
    probs = next_token_distribution(scores, seq, p).cpu()
    return torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(gens)]).to(scores.device)


def distinct_prompts(query: torch.Tensor, qmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row of the first occurrence of each distinct left-padded prompt, row -> its distinct prompt)."""
    uniq, inverse = torch.unique(torch.cat([query, qmask], 1), dim=0, return_inverse=True)
    rows = torch.arange(len(query), device=query.device)
    first = torch.full((len(uniq),), len(query), dtype=torch.long, device=query.device)
    return first.scatter_reduce(0, inverse, rows, reduce="amin"), inverse


def prefill(model, query: torch.Tensor, qmask: torch.Tensor) -> tuple[torch.Tensor, object]:
    """First forward of generation over left-padded prompts: last-position logits [B, V] (float)
    and the KV cache. A prompt that occurs several times in the batch (Best-of-N's N samples,
    GRPO's G per prompt) is run once and its cache rows are copied: the prompt's forward is most
    of a short generation's compute."""
    first, inverse = distinct_prompts(query, qmask)
    shared = len(first) < len(query)
    q, m = (query[first], qmask[first]) if shared else (query, qmask)
    o = model(input_ids=q, attention_mask=m, position_ids=(m.cumsum(-1) - 1).clamp(min=0), use_cache=True,
              logits_to_keep=1)
    raw, past = o.logits[:, -1, :].float(), o.past_key_values
    if shared:
        raw = raw[inverse]
        past.reorder_cache(inverse)
    return raw, past


@torch.no_grad()
def _sample_batch(model, prompts: list[list[int]], p: SamplingConfig, gens, stop_ids: set[int],
                  pad_id: int, tokenizer, use_cache: bool) -> list[Generation]:
    device = next(model.parameters()).device
    width = max(len(x) for x in prompts)
    # Left padding puts every prompt's last token in the last column, so one step feeds all rows.
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, x in enumerate(prompts):
        ids[i, width - len(x):] = torch.tensor(x)
        attn[i, width - len(x):] = 1
    ids, attn = ids.to(device), attn.to(device)
    seq = ids
    out_ids: list[list[int]] = [[] for _ in prompts]
    reason: list[str | None] = [None] * len(prompts)
    past = None
    step_ids = ids
    for _ in range(p.max_new_tokens):
        if use_cache and past is None:
            logits, past = prefill(model, ids, attn)
        else:
            pos = (attn.cumsum(-1) - 1).clamp(min=0)
            if use_cache:
                pos = pos[:, -step_ids.shape[1]:]
            out = model(input_ids=step_ids, attention_mask=attn, position_ids=pos, past_key_values=past,
                        use_cache=use_cache, logits_to_keep=1)
            past, logits = (out.past_key_values if use_cache else None), out.logits[:, -1, :]
        nxt = choose_tokens(logits, seq, p, gens)
        for i, t in enumerate(nxt.tolist()):
            if reason[i] is not None:
                continue
            if t in stop_ids:
                reason[i] = "stop_token"
                continue
            out_ids[i].append(t)
            if p.stop:
                text = tokenizer.decode(out_ids[i], skip_special_tokens=True)
                if any(s in text for s in p.stop):
                    reason[i] = "stop_string"
        if all(r is not None for r in reason):
            break
        finished = torch.tensor([r is not None for r in reason], device=device)
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)  # finished rows idle on padding
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        step_ids = nxt[:, None] if use_cache else seq
    results = []
    for i, toks in enumerate(out_ids):
        text = tokenizer.decode(toks, skip_special_tokens=True)
        if reason[i] == "stop_string":
            text = text[: min(text.find(s) for s in p.stop if s in text)]
        results.append(Generation(text, toks, reason[i] or "length"))
    return results


def sample(model, tokenizer, prompts: Sequence[Sequence[int]], params: SamplingConfig, seed: int = 0, *,
           stop_token_ids: Sequence[int] | None = None, batch_size: int = 32,
           use_cache: bool = True) -> list[Generation]:
    """Continue each tokenized prompt. Prompts are batched by length (less padding); the result
    order is the input order and does not depend on `batch_size`."""
    was_training = model.training
    model.eval()
    stops = set(stop_token_ids if stop_token_ids is not None else [tokenizer.eos_token_id])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gens = row_generators(seed, len(prompts))
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    try:
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            outs = _sample_batch(model, [list(prompts[i]) for i in idx], params, [gens[i] for i in idx], stops,
                                 pad_id, tokenizer, use_cache)
            for i, g in zip(idx, outs, strict=True):
                results[i] = g
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
