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

from collections.abc import Callable, Sequence
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


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts left-padded to one width (every prompt's last token in the last column, so one step
    feeds all rows) and their attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask


# (raw next-token logits [B, V] as float, tokens so far [B, L]) -> the chosen tokens [B]
Chooser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Decoded:
    tokens: torch.Tensor  # [B, n] every step's token, the stop token included; padding after a row finished
    stopped: torch.Tensor  # [B] bool: the row ended on a stop token
    stop_string: torch.Tensor  # [B] bool: the row ended because its text holds a stop string
    lengths: torch.Tensor  # [B] the row's real tokens (its stop token included)
    logps: torch.Tensor | None  # [B, n] log-prob of each token under raw logits / temperature (0 after the end)


@torch.no_grad()
def decode(model, query: torch.Tensor, qmask: torch.Tensor, max_new_tokens: int, choose: Chooser, *,
           stop_ids: Sequence[int], pad_id: int, use_cache: bool = True, logprob_temperature: float | None = None,
           stop_string: Callable[[int, list[int]], bool] | None = None) -> Decoded:
    """The one token-by-token loop of the project (sampling, evaluation, Best-of-N, rollouts):
    left-padded prompts are prefilled once (a prompt repeated in the batch is run once, `prefill`),
    then each step feeds every row its last token with the KV cache; a row ends on a stop token or
    when `stop_string(row, tokens)` says its text holds a stop string, and then idles on padding
    (masked out of attention) until every row has ended or `max_new_tokens` were generated.
    `logprob_temperature` also returns each chosen token's log-prob under logits / temperature (RL's
    log pi_old). Deterministic for a deterministic `choose`."""
    device = next(model.parameters()).device
    query, qmask = query.to(device), qmask.to(device)
    B = query.shape[0]
    stops = torch.tensor(sorted(set(stop_ids)), device=device)
    out = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((B, max_new_tokens), dtype=torch.float32, device=device) \
        if logprob_temperature is not None else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    stopped, by_string = done.clone(), done.clone()
    lengths = torch.full((B,), max_new_tokens, dtype=torch.long, device=device)
    seq, attn, n, past = query, qmask, 0, None
    texts: list[list[int]] = [[] for _ in range(B)]
    if use_cache:
        raw, past = prefill(model, query, qmask)
    else:
        raw = model(input_ids=query, attention_mask=qmask, position_ids=(qmask.cumsum(-1) - 1).clamp(min=0),
                    use_cache=False, logits_to_keep=1).logits[:, -1, :].float()
    for t in range(max_new_tokens):
        nxt = torch.where(done, torch.full_like(done, pad_id, dtype=torch.long), choose(raw, seq))
        out[:, t] = nxt
        if logps is not None:
            temp = logprob_temperature
            lsm = torch.log_softmax(raw / temp if temp not in (0, 1) else raw, -1)
            logps[:, t] = lsm.gather(1, nxt[:, None]).squeeze(1)
        n = t + 1
        is_stop = torch.isin(nxt, stops) & ~done
        if stop_string is not None:
            for i in (~done & ~is_stop).nonzero().flatten().tolist():
                texts[i].append(int(nxt[i]))
                by_string[i] = stop_string(i, texts[i])
        stopped |= is_stop
        ended = is_stop | (by_string & ~done)
        lengths[ended] = n
        done |= ended
        if bool(done.all()) or n == max_new_tokens:
            break
        seq = torch.cat([seq, nxt[:, None]], 1)
        attn = torch.cat([attn, (~done | ended).long()[:, None]], 1)
        if use_cache:
            o = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=attn.sum(-1, keepdim=True) - 1,
                      past_key_values=past, use_cache=True, logits_to_keep=1)
            past = o.past_key_values
        else:
            o = model(input_ids=seq, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                      use_cache=False, logits_to_keep=1)
        raw = o.logits[:, -1, :].float()
    lengths = lengths.clamp(max=n)
    if logps is not None:  # 0 after a row's end
        logps = logps[:, :n] * (torch.arange(n, device=device)[None, :] < lengths[:, None]).float()
    return Decoded(out[:, :n], stopped, by_string, lengths, logps)


def per_row_chooser(p: SamplingConfig, gens: Sequence[torch.Generator]) -> Chooser:
    """Each row draws from its own generator (a prompt's sample does not depend on its batch)."""
    return lambda raw, seq: choose_tokens(raw, seq, p, gens)


def _generations(d: Decoded, p: SamplingConfig, tokenizer) -> list[Generation]:
    results = []
    for i, row in enumerate(d.tokens.tolist()):
        toks = row[: int(d.lengths[i]) - int(d.stopped[i])]  # without the stop token
        text = tokenizer.decode(toks, skip_special_tokens=True)
        if d.stop_string[i]:
            text = text[: min(text.find(s) for s in p.stop if s in text)]
        reason = "stop_token" if d.stopped[i] else "stop_string" if d.stop_string[i] else "length"
        results.append(Generation(text, toks, reason))
    return results


def _sample_batch(model, prompts: list[list[int]], p: SamplingConfig, gens, stop_ids: set[int],
                  pad_id: int, tokenizer, use_cache: bool) -> list[Generation]:
    query, qmask = left_pad(prompts, pad_id)

    def has_stop_string(_i: int, toks: list[int]) -> bool:
        text = tokenizer.decode(toks, skip_special_tokens=True)
        return any(s in text for s in p.stop)

    d = decode(model, query, qmask, p.max_new_tokens, per_row_chooser(p, gens), stop_ids=sorted(stop_ids),
               pad_id=pad_id, use_cache=use_cache, stop_string=has_stop_string if p.stop else None)
    return _generations(d, p, tokenizer)


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
