"""The one train / held-out split of the project: by a hash of each item's key.

Every stage splits this way (pretraining documents by id, SFT conversations by their first user
message, preference pairs by prompt): the split is stable under reordering and under adding
items, and items with the same key (the same prompt asked twice) never straddle it, so held-out
figures are measured on keys never trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import xxhash

T = TypeVar("T")


def split_by_key(items: Iterable[T], key: Callable[[T], str], eval_fraction: float,
                 seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, held-out): an item is held out when xxh32(key, seed) < eval_fraction * 2**32."""
    cutoff = int(eval_fraction * 2**32)
    train: list[T] = []
    held: list[T] = []
    for item in items:
        (held if xxhash.xxh32_intdigest(key(item).encode(), seed=seed) < cutoff else train).append(item)
    return train, held
