"""Append-only numpy arrays on disk, read back as memory maps.

Fuzzy dedup keeps per-document data (band hashes, signatures, shingles) for the whole corpus.
Holding it in RAM caps the corpus size, so every such array is appended batch by batch to a
raw file and memory-mapped when a later phase needs it; the OS pages it in and out, and the
process only ever holds one batch plus whatever one phase works on (e.g. one band).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class SpillArray:
    """A growing 2-D (rows x width) or 1-D array of one dtype, stored as a raw file."""

    def __init__(self, path: str | os.PathLike, dtype: np.dtype | type, width: int | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.width = width
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "wb")  # noqa: SIM115 - closed in close()/read()

    def append(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if self.width is not None and (arr.ndim != 2 or arr.shape[1] != self.width):
            raise ValueError(f"{self.path.name}: expected rows of width {self.width}, got {arr.shape}")
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def read(self) -> np.ndarray:
        """The whole array as a read-only memory map (an empty array when nothing was added)."""
        self.close()
        shape = (self.rows, self.width) if self.width is not None else (self.rows,)
        if self.rows == 0:
            return np.zeros(shape, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=shape)

    def __len__(self) -> int:
        return self.rows
