"""Next-token logits of a few choice tokens after each of many prompts: what a causal LM judge
reads (A vs B for a pairwise judge, the digits 0-5 for a pointwise grader). No sampling, so the
verdict is deterministic.

    choice_logits(model, seqs, choice_ids, pad_id, batch_size) -> [n, len(choice_ids)] float array
Prompts are left-padded so every one ends in the last column, read with `logits_to_keep=1`
(only one row of the vocabulary projection is computed per prompt).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


@torch.no_grad()
def choice_logits(model, seqs: Sequence[Sequence[int]], choice_ids: Sequence[int], pad_id: int | None,
                  batch_size: int = 16) -> np.ndarray:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = pad_id if pad_id is not None else 0
    cols = torch.tensor(list(choice_ids))
    out = np.zeros((len(seqs), len(cols)))
    try:
        for s in range(0, len(seqs), batch_size):
            chunk = seqs[s : s + batch_size]
            width = max(len(x) for x in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for i, x in enumerate(chunk):
                ids[i, width - len(x) :] = torch.tensor(x)
                attn[i, width - len(x) :] = 1
            pos = (attn.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device),
                           position_ids=pos.to(device), logits_to_keep=1).logits[:, -1].float()
            out[s : s + len(chunk)] = logits[:, cols.to(logits.device)].cpu().numpy()
    finally:
        model.train(was_training)
    return out
