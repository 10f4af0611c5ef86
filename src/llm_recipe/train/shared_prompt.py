"""One row per preference pair: [shared prefix | chosen tail | rejected tail] (RM and DPO).

Chosen and rejected responses share their prompt. Laid out as one row, the rejected tail attends
to the prefix but not to the chosen tail, and its position ids restart where the prefix ends, so
every token sees exactly the context it would see in its own row: the outputs equal those of
two separate rows, while the prefix is encoded once and the batch has half the rows.

    common_prefix_length(a, b)                         tokens two sequences share from the start
    shared_rows(prefixes, chosen, rejected, pad_id)   ids, positions, segments, boolean 4-D mask
    attention_mask_for(model, allowed, setting)        that mask as the model's attention takes it

Segments: 0 prefix, 1 chosen tail, 2 rejected tail, -1 padding (padding attends to itself only,
so its rows of the softmax stay finite).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_rows(prefixes: Sequence[Sequence[int]], chosen: Sequence[Sequence[int]],
                rejected: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded rows of prefix + chosen tail + rejected tail, one per pair."""
    n = len(prefixes)
    width = max(len(p) + len(c) + len(r) for p, c, r in zip(prefixes, chosen, rejected, strict=True))
    ids = np.full((n, width), pad_id, dtype=np.int64)
    pos = np.zeros((n, width), dtype=np.int64)
    seg = np.full((n, width), -1, dtype=np.int64)
    for b, (p, c, r) in enumerate(zip(prefixes, chosen, rejected, strict=True)):
        k, lc, lr = len(p), len(c), len(r)
        ids[b, : k + lc + lr] = [*p, *c, *r]
        pos[b, : k + lc] = np.arange(k + lc)
        pos[b, k + lc : k + lc + lr] = np.arange(k, k + lr)
        seg[b, :k], seg[b, k : k + lc], seg[b, k + lc : k + lc + lr] = 0, 1, 2
    s = torch.from_numpy(seg)
    q, kk = s[:, :, None], s[:, None, :]
    allowed = torch.ones(width, width, dtype=torch.bool).tril() & (kk >= 0) & ~((q == 2) & (kk == 1))
    allowed |= torch.eye(width, dtype=torch.bool) & (q < 0)
    return {"input_ids": torch.from_numpy(ids), "position_ids": torch.from_numpy(pos), "segments": s,
            "allowed": allowed[:, None]}


def attention_mask_for(model, allowed: torch.Tensor, setting: str) -> torch.Tensor:
    """The boolean [B, 1, W, W] mask for sdpa, or the additive float mask eager attention takes.
    Other kernels (flash-attention) take no 4-D mask: the error names the `setting` to turn off."""
    core = getattr(model, "module", model)  # DDP / FSDP wrap the model
    impl = getattr(core.config, "_attn_implementation", "sdpa")
    if impl == "sdpa":
        return allowed
    if impl == "eager":
        dtype = next(core.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)
    raise ValueError(f"{setting} needs sdpa or eager attention (model uses '{impl}'): set {setting}=false")
