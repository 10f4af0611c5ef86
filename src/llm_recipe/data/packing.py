"""Pack tokenized documents into fixed-length blocks for next-token prediction.

Documents are concatenated as `<s> doc </s> <s> doc </s> ...` and cut into `block_size`
chunks, so no compute is spent on padding. The tail that does not fill a block is dropped
and counted (never silently).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class PackStats:
    documents: int = 0
    empty_documents: int = 0
    tokens: int = 0
    blocks: int = 0
    dropped_tail_tokens: int = 0


def pack_token_lists(token_lists: Iterable[list[int]], block_size: int, eos_id: int) -> tuple[np.ndarray, PackStats]:
    """Return `[n_blocks, block_size]` int32 blocks and counts of what went where."""
    stats = PackStats()
    pieces: list[np.ndarray] = []
    for ids in token_lists:
        stats.documents += 1
        if len(ids) <= 1:  # only BOS: the document had no text
            stats.empty_documents += 1
            continue
        arr = np.asarray(ids, dtype=np.int32)
        pieces.append(arr)
        pieces.append(np.asarray([eos_id], dtype=np.int32))
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    stats.tokens = int(stream.size)
    stats.blocks = stream.size // block_size
    stats.dropped_tail_tokens = int(stream.size - stats.blocks * block_size)
    return stream[: stats.blocks * block_size].reshape(stats.blocks, block_size), stats
