"""LSH banding with one spill file per band, and candidate pairs from shared buckets.

Documents get consecutive indices in the order they are added. Band hashes are appended to
`band_XXX.u64` (8 bytes per document per band), so adding a batch holds only that batch. When
candidates are requested, one band at a time is memory-mapped and argsorted: documents with
equal hashes form a bucket. Peak memory is therefore one band (16 bytes/doc with the sort
order) plus the candidate pairs, not the whole index as with an in-memory hash table; with
`partitions` a band is also split by hash and sorted one partition at a time.

A bucket of size g yields all g(g-1)/2 pairs while g <= `max_bucket` so that verification can
judge every pair; a larger bucket (e.g. a boilerplate page copied thousands of times) yields a
star around its first document instead, which keeps the component connected at O(g) cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .spill import Partitions, SpillArray


def bucket_pairs(hashes: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """(m, 2) int64 pairs (i < j) of positions that share a hash value."""
    order = np.argsort(hashes, kind="stable")  # stable: ties stay in index order
    return sorted_bucket_pairs(hashes[order], order, max_bucket)


def sorted_bucket_pairs(sorted_h: np.ndarray, order: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """`bucket_pairs` of hashes already sorted, `order` their positions (ties in position order)."""
    new = np.empty(len(sorted_h), dtype=bool)
    if len(sorted_h) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    new[0] = True
    np.not_equal(sorted_h[1:], sorted_h[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(sorted_h)))
    out = []
    for g in np.unique(sizes[sizes >= 2]):
        members = order[starts[sizes == g][:, None] + np.arange(g)]  # (buckets, g)
        if g <= max_bucket:
            i, j = np.triu_indices(g, 1)
            out.append(np.stack([members[:, i].ravel(), members[:, j].ravel()], axis=1))
        else:
            first = np.repeat(members[:, :1], g - 1, axis=1)
            out.append(np.stack([first.ravel(), members[:, 1:].ravel()], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    return np.sort(pairs, axis=1)  # members are index-ordered, but be explicit


def pair_keys(pairs: np.ndarray) -> np.ndarray:
    """Sorted unique uint64 keys `i << 32 | j` of (i, j) rows (documents indices < 2^32)."""
    p = pairs.astype(np.uint64)
    return np.unique((p[:, 0] << np.uint64(32)) | p[:, 1])


def keys_to_pairs(keys: np.ndarray) -> np.ndarray:
    return np.stack(
        [(keys >> np.uint64(32)).astype(np.int64), (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)],
        axis=1,
    ).reshape(-1, 2)


class BandIndex:
    """Band hashes of every added document, spilled to disk per band."""

    def __init__(self, bands: int, directory: str | os.PathLike):
        self.bands = bands
        self.directory = Path(directory)
        self._files = [SpillArray(self.directory / f"band_{k:03d}.u64", np.uint64) for k in range(bands)]

    def __len__(self) -> int:
        return len(self._files[0])

    def add(self, band_hashes: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Append (docs, bands) hashes. Rows where `mask` is False get a unique dummy hash.

        Dummies keep positions aligned with document indices while guaranteeing that such
        documents (e.g. empty after normalization) never land in a bucket with another one.
        """
        if mask is not None and not mask.all():
            band_hashes = band_hashes.copy()
            idx = np.arange(len(self), len(self) + len(band_hashes), dtype=np.uint64)
            # the top bit marks dummies; real hashes with it set are remapped below
            band_hashes[mask] &= np.uint64(0x7FFFFFFFFFFFFFFF)
            band_hashes[~mask] = (idx[~mask] | np.uint64(1 << 63))[:, None]
        else:
            band_hashes = band_hashes & np.uint64(0x7FFFFFFFFFFFFFFF)
        for k, f in enumerate(self._files):
            f.append(band_hashes[:, k])

    def candidate_pairs(self, max_bucket: int = 64, partitions: int = 1) -> tuple[np.ndarray, dict[str, int]]:
        """Unique candidate pairs over all bands, plus counts for the report. `partitions` > 1:
        each band is split by hash into that many files and sorted one at a time, so memory holds
        1/partitions of a band instead of all of it (same pairs)."""
        keys = np.zeros(0, dtype=np.uint64)
        raw = 0
        for f in self._files:
            if partitions == 1:
                pairs = bucket_pairs(np.asarray(f.read()), max_bucket)
            else:
                parts = self._split(f, partitions)
                found = [sorted_bucket_pairs(a[:, 0], a[:, 1].astype(np.int64), max_bucket) for a in parts.sorted()]
                parts.remove()
                pairs = np.concatenate(found)
            raw += len(pairs)
            # merged band by band so memory holds the union, never all bands' pairs at once
            keys = np.union1d(keys, pair_keys(pairs))
        return keys_to_pairs(keys), {"band_pairs": raw, "candidate_pairs": len(keys)}

    def _split(self, band: SpillArray, partitions: int, chunk: int = 1 << 20) -> Partitions:
        """One band's (hash, document) rows in hash partitions, read from its file chunk by chunk."""
        parts = Partitions(self.directory / "band_parts", 2, partitions)
        band.close()
        for s in range(0, len(band), chunk):
            h = np.fromfile(band.path, np.uint64, min(chunk, len(band) - s), offset=8 * s)
            parts.append(np.column_stack([h, np.arange(s, s + len(h), dtype=np.uint64)]))
        return parts

    def close(self) -> None:
        for f in self._files:
            f.close()
