"""Perplexity on held-out text: exp(mean negative log-likelihood per predicted token).

    text_perplexity(model, blocks)        packed blocks of plain text (the corpus validation split)
    answer_perplexity(model, examples)    assistant tokens only of tokenized chat examples (the SFT
                                          validation answers), given their prompts

Token-weighted over the whole set (not a mean of batch means), so it does not depend on the
batch size. Perplexities of models with different tokenizers count different tokens and are not
comparable; within one run they share a tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..train.sft_data import IGNORE, Example, collate_rows, single_rows


def _summary(nll_sum: float, tokens: int) -> dict:
    return {"tokens": tokens, "nll": nll_sum / tokens, "ppl": math.exp(nll_sum / tokens)} if tokens else \
        {"tokens": 0, "nll": None, "ppl": None}


@torch.no_grad()
def text_perplexity(model, blocks: np.ndarray, batch_size: int = 8) -> dict:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    try:
        for s in range(0, len(blocks), batch_size):
            ids = torch.from_numpy(np.asarray(blocks[s : s + batch_size])).long().to(device)
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum").item()
            tokens += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    return _summary(nll, tokens)


@torch.no_grad()
def answer_perplexity(model, examples: Sequence[Example], pad_id: int, batch_size: int = 8) -> dict:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = single_rows(examples)
    nll, tokens = 0.0, 0
    try:
        for s in range(0, len(rows), batch_size):
            b = collate_rows(rows[s : s + batch_size], pad_id)
            logits = model(input_ids=b["input_ids"].to(device), position_ids=b["position_ids"].to(device),
                           use_cache=False).logits[:, :-1].float()
            target = b["labels"][:, 1:].to(device)
            keep = target != IGNORE
            nll += F.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            tokens += int(keep.sum())
    finally:
        model.train(was_training)
    return _summary(nll, tokens)


@torch.no_grad()
def bits_per_character(model, tokenizer, texts: Sequence[str], start_id: int | None = None) -> dict:
    """Held-out negative log-likelihood in bits per character: comparable across tokenizers (a
    tokenizer that spends more tokens per character is not rewarded or punished for it). Each text
    is scored whole after one start token (`start_id`, default the tokenizer's BOS, else EOS: a
    document boundary), so every one of its tokens is predicted; total bits / total characters."""
    device = next(model.parameters()).device
    start = start_id if start_id is not None else (
        tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id)
    was_training = model.training
    model.eval()
    nll, chars, tokens = 0.0, 0, 0
    try:
        for text in texts:
            ids = [start, *tokenizer(text, add_special_tokens=False)["input_ids"]]
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
            nll += F.cross_entropy(logits, x[0, 1:], reduction="sum").item()
            chars, tokens = chars + len(text), tokens + len(ids) - 1
    finally:
        model.train(was_training)
    return {"bits_per_char": nll / math.log(2) / chars if chars else None, "chars": chars, "tokens": tokens,
            "chars_per_token": chars / tokens if tokens else None, "texts": len(texts)}
