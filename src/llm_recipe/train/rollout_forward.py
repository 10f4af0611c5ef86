"""Forward passes over a rollout without wasted compute: shared prompts, packed sequences.

Every PPO/GRPO iteration runs several forward passes over the same rollout (reference, critic,
policy forward + backward for every minibatch and epoch). Two layouts cut their tokens, with the
same outputs as a plain padded batch (tests compare them):

  shared prompts  GRPO samples G responses per prompt. `shared_prompt_states` runs each distinct
                  prompt once (its KV cache copied to its G rows) and only the responses per row;
                  gradients from all G rows flow back into the one prompt pass.
  packing         otherwise, `pack_rollout` removes the padding (below).

A rollout batch is laid out for generation: prompts left-padded to the longest prompt, responses
right-padded to the longest response. A forward pass over that layout spends compute on every pad
column: with chat prompts of 10-80 tokens, about a third of a minibatch's tokens are padding.
PPO/GRPO run four kinds of passes over each rollout (reference, critic, policy + backward for
every minibatch and epoch), so that third is a third of the run.

`pack_rollout` instead concatenates each sequence's real tokens (prompt, then response) and
packs the sequences first-fit-decreasing into rows as wide as the longest one. Positions restart
at 0 for every sequence and no attention mask is passed: transformers then reads the sequence
boundaries from the position ids and builds a block-diagonal causal mask (the same mechanism as
packed SFT), so every token sees exactly its own sequence and the outputs equal the padded ones.
Not every architecture reads boundaries from position ids (OPT, Bloom and Falcon derive positions
or ALiBi from the attention mask), so each layout is checked once per model on a small batch
against the padded pass (`layout_ok`) and the padded pass is used where a layout disagrees.
`src[i, j]` is the flat index of the position whose output predicts (or values) response token j
of sequence i: the gather that maps packed outputs back to the rollout's [B, T] layout.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from ..infer.sampling import distinct_prompts


@dataclass
class PackedRollout:
    input_ids: torch.Tensor  # [R, W]
    position_ids: torch.Tensor  # [R, W]: restart at 0 for every sequence (and for the row's tail padding)
    src: torch.Tensor  # [B, T] flat index into R*W of the state before response token j

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[R, W, ...] packed outputs -> [B, T, ...] at the response positions."""
        flat = x.reshape(-1, *x.shape[2:])
        return flat.index_select(0, self.src.reshape(-1)).reshape(*self.src.shape, *x.shape[2:])


def first_fit_decreasing(seq_len: list[int], width: int) -> tuple[list[tuple[int, int]], list[int]]:
    """(row, offset) of every sequence and the fill of every row. Ties keep input order, so the
    packing is a pure function of the lengths."""
    fill: list[int] = []
    place = [(0, 0)] * len(seq_len)
    for i in sorted(range(len(seq_len)), key=lambda i: -seq_len[i]):
        row = next((k for k, f in enumerate(fill) if f + seq_len[i] <= width), len(fill))
        if row == len(fill):
            fill.append(0)
        place[i] = (row, fill[row])
        fill[row] += seq_len[i]
    return place, fill


def best_packing(seq_len: list[int]) -> tuple[int, list[tuple[int, int]], list[int]]:
    """The row width (1x to 2x the longest sequence) whose packing has the fewest slots. Rows of
    exactly the longest length rarely fit two sequences; somewhat wider rows do, and attention
    cost grows with width, so wider than 2x is not tried."""
    longest = max(seq_len)
    best = None
    for factor in (1.0, 1.25, 1.5, 1.75, 2.0):
        width = int(longest * factor)
        place, fill = first_fit_decreasing(seq_len, width)
        if best is None or len(fill) * width < best[0] * len(best[2]):
            best = (width, place, fill)
    return best


def pack_rollout(query_ids: torch.Tensor, query_mask: torch.Tensor, response_ids: torch.Tensor,
                 response_mask: torch.Tensor, pad_id: int, device=None) -> PackedRollout:
    B, T = response_ids.shape
    q_len = query_mask.sum(1).tolist()
    r_len = response_mask.sum(1).long().tolist()
    seq_len = [p + t for p, t in zip(q_len, r_len, strict=True)]
    if min(q_len) < 1:
        raise ValueError("every rollout row needs at least one prompt token (the state before its first response token)")
    width, place, fill = best_packing(seq_len)
    ids = torch.full((len(fill), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(fill), width), dtype=torch.long)
    src = torch.zeros((B, T), dtype=torch.long)
    P = query_ids.shape[1]
    arange_t = torch.arange(T)
    for i, (row, off) in enumerate(place):
        p, t = q_len[i], r_len[i]
        ids[row, off : off + p] = query_ids[i, P - p :]
        ids[row, off + p : off + p + t] = response_ids[i, :t]
        pos[row, off : off + p + t] = torch.arange(p + t)
        # the state at prompt end predicts response token 0; past the response, any valid index (masked)
        src[i] = row * width + off + p - 1 + torch.where(arange_t < t, arange_t, 0)
    for row, f in enumerate(fill):
        pos[row, f:] = torch.arange(width - f)  # tail padding: one more segment, attending only to itself
    return PackedRollout(ids.to(device), pos.to(device), src.to(device))


_SPLIT_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_and_head(model):
    """(decoder, lm_head) if `model`'s logits are exactly lm_head(decoder(x).last_hidden_state),
    else None (soft-capped or scaled logits, exotic wrappers). Checked once per model on a short
    input. The split lets a forward apply the vocabulary projection to the response positions only,
    not to every prompt token."""
    if model not in _SPLIT_OK:
        _SPLIT_OK[model] = _checked_split(model)
    return _SPLIT_OK[model]


def _checked_split(model):
    try:
        dec, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):  # no separate decoder / head to call
        return None
    if dec is None or head is None:
        return None
    ids = torch.arange(1, 6, device=next(model.parameters()).device)[None] % model.config.vocab_size
    was = model.training
    model.eval()  # dropout would make the two passes differ
    try:
        with torch.no_grad():
            full = model(input_ids=ids, use_cache=False).logits
            split = head(dec(input_ids=ids, use_cache=False).last_hidden_state)
    except TypeError:  # a decoder that does not take these arguments: use the whole model
        return None
    finally:
        model.train(was)
    return (dec, head) if torch.allclose(full, split, atol=1e-5, rtol=1e-4) else None


def shared_prompt_groups(r) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows of the distinct prompts, row -> distinct prompt) when prompts repeat enough (at most
    half as many distinct prompts as rows) for a shared-prompt pass to pay off; else None."""
    first, inverse = distinct_prompts(r.query_ids, r.query_mask)
    return None if 2 * len(first) > len(r.query_ids) else (first, inverse)


def shared_prompt_states(decoder, r, device, groups: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Final hidden states [B, T, H] at the positions that produce each response token: the prompt
    pass over the distinct prompts (KV cache kept), then one pass over all responses on top of
    their prompt's cache."""
    first, inverse = groups
    qm = r.query_mask[first]
    lead = int(qm.any(0).long().argmax())  # columns that are padding in every distinct prompt
    q_ids, qm = r.query_ids[first][:, lead:].to(device), qm[:, lead:].to(device)
    o = decoder(input_ids=q_ids, attention_mask=qm, position_ids=(qm.cumsum(-1) - 1).clamp(min=0), use_cache=True)
    inverse = inverse.to(device)
    cache = o.past_key_values
    cache.reorder_cache(inverse)  # index_select per layer: differentiable, grads sum over the G rows
    full_mask = torch.cat([qm[inverse], r.response_mask.long().to(device)], 1)
    pos = qm.sum(1)[inverse][:, None] + torch.arange(r.response_ids.shape[1], device=device)
    h = decoder(input_ids=r.response_ids.to(device), attention_mask=full_mask, position_ids=pos,
                past_key_values=cache, use_cache=True).last_hidden_state
    # response token 0 is produced by the prompt's last state, token j by response position j-1
    return torch.cat([o.last_hidden_state[:, -1][inverse][:, None], h[:, :-1]], 1)


def padded_inputs(r, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids) of the plain layout: left-padded prompts +
    right-padded responses, positions from the mask; columns that are padding in every row are
    dropped (a minibatch's prompts are often all shorter than the rollout's longest)."""
    first = int(r.query_mask.any(0).long().argmax())
    ids = torch.cat([r.query_ids[:, first:], r.response_ids], 1).to(device)
    attn = torch.cat([r.query_mask[:, first:], r.response_mask.long()], 1).to(device)
    return ids, attn, (attn.cumsum(-1) - 1).clamp(min=0)


def padded_states(decoder, r, device) -> torch.Tensor:
    """Final hidden states from the plain layout: what the other layouts must equal."""
    ids, attn, pos = padded_inputs(r, device)
    h = decoder(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).last_hidden_state
    return h[:, -r.response_ids.shape[1] - 1 : -1]


def _packed_states(decoder, r, device) -> torch.Tensor:
    pk = pack_rollout(r.query_ids, r.query_mask, r.response_ids, r.response_mask, 0, device)
    return pk.gather(decoder(input_ids=pk.input_ids, position_ids=pk.position_ids, use_cache=False).last_hidden_state)


def _shared_states(decoder, r, device, groups=None) -> torch.Tensor:
    return shared_prompt_states(decoder, r, device, groups if groups is not None else shared_prompt_groups(r))


_LAYOUTS = {"packed": _packed_states, "shared": _shared_states}
_LAYOUT_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _probe_rollout(vocab: int, device) -> SimpleNamespace:
    """8 rows: 2 prompts (3 and 5 tokens) x 4 responses of 1-4 tokens, so that both layouts apply."""
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, vocab, (n,), generator=g) for n in (3, 5)]
    q, qm = torch.zeros((8, 5), dtype=torch.long), torch.zeros((8, 5), dtype=torch.long)
    for i in range(8):
        q[i, 5 - len(prompts[i % 2]):], qm[i, 5 - len(prompts[i % 2]):] = prompts[i % 2], 1
    rm = (torch.arange(4)[None] < torch.tensor([1, 4, 2, 3, 4, 1, 3, 2])[:, None]).float()
    return SimpleNamespace(query_ids=q, query_mask=qm, response_ids=torch.randint(1, vocab, (8, 4), generator=g) * rm.long(),
                           response_mask=rm)


def layout_ok(decoder, kind: str) -> bool:
    """Whether `kind` ('packed' / 'shared') gives this model the padded layout's hidden states:
    checked once per model (a few tiny forward passes), then cached."""
    cache = _LAYOUT_OK.setdefault(decoder, {})
    if kind not in cache:
        device = next(decoder.parameters()).device
        r = _probe_rollout(decoder.config.vocab_size, device)
        was = decoder.training
        decoder.eval()
        try:
            with torch.no_grad():
                want = padded_states(decoder, r, device)
                got = _LAYOUTS[kind](decoder, r, device)
            m = r.response_mask.to(device).bool()
            cache[kind] = bool(torch.allclose(got[m], want[m], atol=1e-4, rtol=1e-3))
        except (RuntimeError, ValueError, TypeError):  # e.g. a model whose cache cannot be reordered
            cache[kind] = False
        finally:
            decoder.train(was)
    return cache[kind]


def response_states(decoder, r, device) -> torch.Tensor:
    """Final hidden states [B, T, H] that produce (and value) each response token, computed with
    the cheapest layout this model supports: shared prompts when prompts repeat, else packed
    sequences, else the padded batch."""
    groups = shared_prompt_groups(r)
    if groups is not None and layout_ok(decoder, "shared"):
        return _shared_states(decoder, r, device, groups)
    if layout_ok(decoder, "packed"):
        return _packed_states(decoder, r, device)
    return padded_states(decoder, r, device)
