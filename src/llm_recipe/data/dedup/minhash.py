"""Vectorized MinHash signatures and the LSH band/row choice for a Jaccard threshold.

Signatures: every shingle is already a uniformly mixed 32-bit hash (see `shingles`), so each
of the `num_perm` "permutations" can be a cheap bijection of 32-bit words,
`h_p(x) = a_p * x + b_p mod 2^32` with odd `a_p`. Because the inputs are random-looking, the
minimum of h_p over a set is equally likely to come from any element of the set, which is all
MinHash needs (P[min h_p(A) = min h_p(B)] = J(A, B)); `tests/test_dedup.py` checks the
estimator's mean and variance against the binomial ones. Working in uint32 halves memory
traffic versus 64-bit arithmetic, and the per-permutation loop (multiply, add,
`minimum.reduceat` over document segments) runs on a reused buffer over a whole batch.

Banding: a pair with Jaccard s becomes an LSH candidate with probability
`P(s) = 1 - (1 - s^r)^b` (b bands of r rows). For a threshold t, (b, r) minimise
`w_fp * integral_0^t P(s) ds + w_fn * integral_t^1 (1 - P(s)) ds` over b * r <= num_perm.
With exact verification of candidates afterwards, false positives only cost time while
false negatives are lost duplicates, hence the recall-leaning default weights.
"""

from __future__ import annotations

import numpy as np

from .shingles import ShingleBatch, fmix64

EMPTY = np.uint32(0xFFFFFFFF)  # signature value of a document with no shingles
_POLY = np.uint64(0x9E3779B97F4A7C15)


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that a pair with Jaccard `s` shares at least one band."""
    return 1.0 - (1.0 - np.power(s, rows)) ** bands


def lsh_params(
    threshold: float, num_perm: int, fp_weight: float = 0.1, fn_weight: float = 0.9
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive / false-negative area of the S-curve."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be >= 2, got {num_perm}")
    b, r = np.array(
        [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    ).T
    grid = 2000
    s = (np.arange(grid) + 0.5) / grid  # midpoint rule on [0, 1]
    p = s_curve(s[None, :], b[:, None], r[:, None])
    below = s <= threshold
    fp = np.where(below, p, 0.0).sum(axis=1) / grid
    fn = np.where(below, 0.0, 1.0 - p).sum(axis=1) / grid
    best = int(np.argmin(fp_weight * fp + fn_weight * fn))
    return int(b[best]), int(r[best])


class MinHasher:
    """`num_perm` seeded permutations; `signatures()` maps a shingle batch to (docs, num_perm)."""

    def __init__(self, num_perm: int = 128, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = (rng.integers(0, 2**32, num_perm, dtype=np.uint64) | 1).astype(np.uint32)
        self.b = rng.integers(0, 2**32, num_perm, dtype=np.uint64).astype(np.uint32)

    def signatures(self, batch: ShingleBatch, chunk: int = 100_000) -> np.ndarray:
        """(docs, num_perm) uint32; a document without shingles gets all-EMPTY."""
        n_docs = len(batch.offsets) - 1
        nonempty = np.flatnonzero(np.diff(batch.offsets) > 0)
        sig = np.full((self.num_perm, len(nonempty)), EMPTY, dtype=np.uint32)
        # reduceat needs the start of each non-empty document only (for an empty one it would
        # return the next document's first value)
        starts = batch.offsets[nonempty]
        ends = np.append(starts[1:], batch.offsets[-1])
        buf = np.empty(chunk, dtype=np.uint32)
        d0 = 0
        while d0 < len(starts):
            # ~chunk shingles at a time: x and buf stay in L2 cache across all permutations,
            # which is about twice as fast as streaming the whole batch from RAM per permutation
            d1 = max(int(np.searchsorted(ends, starts[d0] + chunk, side="right")), d0 + 1)
            lo, hi = int(starts[d0]), int(ends[d1 - 1])
            x = batch.hashes[lo:hi]
            b = buf[: hi - lo] if hi - lo <= chunk else np.empty(hi - lo, dtype=np.uint32)
            rel = starts[d0:d1] - lo
            for p in range(self.num_perm):
                np.multiply(x, self.a[p], out=b)
                np.add(b, self.b[p], out=b)
                np.minimum.reduceat(b, rel, out=sig[p, d0:d1])
            d0 = d1
        out = np.full((n_docs, self.num_perm), EMPTY, dtype=np.uint32)
        out[nonempty] = sig.T
        return out


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(docs, bands) uint64: one hash of each band's `rows` signature values."""
    h = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    view = sig[:, : bands * rows].reshape(sig.shape[0], bands, rows)
    for k in range(rows):
        h *= _POLY
        h += view[:, :, k]
    return fmix64(h)


