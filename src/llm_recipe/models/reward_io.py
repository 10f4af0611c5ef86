"""Reading rewards from a reward model: shared by training (`train.reward_model`), scoring
(`infer.reward`, Best-of-N, RL) and labelling (`preference`).

A reward model is a `*ForSequenceClassification` (num_labels=1) over the conversation rendered in
a chat format, the response as the last assistant turn. Its reward is the head at the last
non-pad token (transformers' own rule) or the mean over all tokens (`pooling="mean"`).

    reward_format(tok)          the format rewards are computed in (saved one, else Alpaca)
    render_response / encode    conversation text of (prompt, response) -> token ids
    collate_plain               right-padded rows (TRL's layout; what scoring uses)
    sequence_rewards            one reward per row: the model's logits (last) or mean pooling
    token_rewards               the head's output at every position, captured inside forward
    score_token_ids             rewards of many sequences, batched by length, in input order
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from ..tokenizer.chat_formats import ChatFormat, get_chat_format, render, resolve_chat_format

RM_INFO_FILE = "reward_model.json"
DEFAULT_FORMAT = "alpaca_en"  # for base models that carry no chat format yet


def reward_format(tokenizer, requested: str | None = None) -> ChatFormat:
    """The chat format rewards are computed in: the requested one, else the one saved with the
    model, else Alpaca (a pretrained model without SFT has none)."""
    if requested is None and not getattr(tokenizer, "chat_template", None):
        return get_chat_format(DEFAULT_FORMAT)
    return resolve_chat_format(tokenizer, requested)


def render_response(fmt: ChatFormat, tokenizer, prompt: str | list[dict], response: str) -> str:
    """The text a reward is computed on: the conversation with `response` as the last turn."""
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return render(fmt, [*msgs, {"role": "assistant", "content": response}], tokenizer).text


def encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    # Rendered text already holds the format's special tokens (BOS included): add none.
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def last_non_pad(ids: Sequence[int], pad_id: int | None) -> int:
    """Index the reward is read at: the rightmost non-pad token (transformers' rule, so the
    trained head is read where `AutoModelForSequenceClassification` reads it)."""
    if pad_id is None:
        return len(ids) - 1
    for i in range(len(ids) - 1, -1, -1):
        if ids[i] != pad_id:
            return i
    return 0


def collate_plain(seqs: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded rows (TRL's layout; also what scoring uses)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        attn[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": attn}


@contextlib.contextmanager
def token_rewards(model):
    """Capture the head's output for EVERY position ([batch, seq, 1]) during the model's forward.

    The sequence classifier applies its head to all positions and then keeps the last non-pad
    one; the hook keeps them all, so any position or pooling can be read. The head runs inside
    the model's own forward, which DDP/FSDP wrappers need (sharded weights are only gathered
    there). Mean pooling = mean of per-position rewards, as the head is affine.
    """
    core = getattr(model, "module", model)  # DDP / FSDP wrap the model; the head lives inside
    captured: list[torch.Tensor] = []
    handle = core.score.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        yield captured
    finally:
        handle.remove()


def pool_rewards(r: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    w = weights.to(r.dtype)
    return (r * w).sum(1) / w.sum(1)


def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One reward per right-padded row: exactly `AutoModelForSequenceClassification`'s logits
    for last-token pooling."""
    if pooling == "last":
        return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.squeeze(-1).float()
    with token_rewards(model) as captured:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return pool_rewards(captured[-1].squeeze(-1).float(), attention_mask)


@torch.no_grad()
def score_token_ids(model, seqs: Sequence[Sequence[int]], pad_id: int, pooling: str = "last",
                    batch_size: int = 32) -> np.ndarray:
    """Rewards of tokenized sequences, batched by length (less padding), in input order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.zeros(len(seqs), dtype=np.float64)
    try:
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = collate_plain([seqs[i] for i in idx], pad_id)
            r = sequence_rewards(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), pooling)
            out[idx] = r.cpu().double().numpy()
    finally:
        model.train(was_training)
    return out
