"""Per-document data on disk: append-only arrays, hash partitions, an id table, a drop table.

Fuzzy dedup keeps per-document data (band hashes, signatures, shingles) for the whole corpus.
Holding it in RAM caps the corpus size, so every such array is appended batch by batch to a
raw file and memory-mapped when a later phase needs it; the OS pages it in and out, and the
process only ever holds one batch plus whatever one phase works on (e.g. one band).

With `spill: true` the dedup steps keep nothing per document in memory at all: documents are row
numbers, their string ids live in an `IdTable`, exact digests and id hashes are sorted one hash
`Partitions` file at a time (equal keys always share a file), and the result is a `DropTable` that
workers search through memory maps.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import xxhash


class SpillArray:
    """A growing 2-D (rows x width) or 1-D array of one dtype, stored as a raw file."""

    def __init__(self, path: str | os.PathLike, dtype: np.dtype | type, width: int | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.width = width
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()/read()

    def append(self, arr: np.ndarray) -> None:
        assert self._f is not None, f"{self.path.name} was pickled: read-only"
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if self.width is not None and (arr.ndim != 2 or arr.shape[1] != self.width):
            raise ValueError(f"{self.path.name}: expected rows of width {self.width}, got {arr.shape}")
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def close(self) -> None:
        if self._f is not None and not self._f.closed:
            self._f.close()

    def __getstate__(self) -> dict:
        """Pickled (to a worker) as a closed, readable array."""
        self.close()
        return {**self.__dict__, "_f": None}

    def read(self) -> np.ndarray:
        """The whole array as a read-only memory map (an empty array when nothing was added)."""
        self.close()
        shape = (self.rows, self.width) if self.width is not None else (self.rows,)
        if self.rows == 0:
            return np.zeros(shape, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=shape)

    def __len__(self) -> int:
        return self.rows


def id_keys(ids: list[str]) -> np.ndarray:
    """(n, 2) uint64: the 128-bit xxh3 of each id (at 128 bits a collision is not a practical risk)."""
    out = np.empty((len(ids), 2), dtype=np.uint64)
    for k, i in enumerate(ids):
        out[k] = divmod(xxhash.xxh3_128_intdigest(i.encode("utf-8", "surrogatepass")), 1 << 64)
    return out


class Partitions:
    """Rows of uint64 columns spilled to `n` files by the value of column 0 (a hash), so equal keys
    land in one file and each file is sorted on its own: memory holds 1/n of the rows, not all."""

    def __init__(self, directory: str | os.PathLike, width: int, n: int = 64):
        self.n = n
        self.files = [SpillArray(Path(directory) / f"part_{p:03d}.u64", np.uint64, width) for p in range(n)]

    def append(self, rows: np.ndarray) -> None:
        part = (rows[:, 0] % np.uint64(self.n)).astype(np.intp)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.n + 1))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            self.files[p].append(rows[order[bounds[p] : bounds[p + 1]]])

    def sorted(self) -> Iterator[np.ndarray]:
        """Each partition's rows in memory, sorted by column 0, then 1, ..."""
        for f in self.files:
            a = np.array(f.read())
            yield a[np.lexsort(a.T[::-1])] if len(a) else a

    def remove(self) -> None:
        for f in self.files:
            f.close()
            f.path.unlink(missing_ok=True)


class IdTable:
    """Document ids by row number, on disk: their utf-8 bytes in one file, end offsets in another.
    Dedup works on row numbers; only reports and audit records need the strings back."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._bytes: BinaryIO | None = open(self.directory / "ids.bin", "wb")  # noqa: SIM115 - close()
        self._ends = SpillArray(self.directory / "id_ends.i64", np.int64)
        self._end = 0

    def append(self, ids: list[str]) -> None:
        assert self._bytes is not None, "IdTable is closed"
        raw = [i.encode("utf-8", "surrogatepass") for i in ids]
        ends = self._end + np.cumsum([len(r) for r in raw], dtype=np.int64)
        self._bytes.write(b"".join(raw))
        self._ends.append(ends)
        self._end = int(ends[-1]) if len(ends) else self._end

    def close(self) -> None:
        """Finish writing; the table stays readable and can be pickled to workers."""
        if self._bytes is not None:
            self._bytes.close()
            self._bytes = None
        self._ends.close()

    def get(self, rows: Iterable[int]) -> list[str]:
        """The ids of `rows` (positioned reads: nothing is mapped into this process)."""
        self.close()
        out = []
        with open(self.directory / "id_ends.i64", "rb") as ends, open(self.directory / "ids.bin", "rb") as data:
            for r in rows:
                start = int.from_bytes(os.pread(ends.fileno(), 8, 8 * (int(r) - 1)), "little") if r else 0
                end = int.from_bytes(os.pread(ends.fileno(), 8, 8 * int(r)), "little")
                out.append(os.pread(data.fileno(), end - start, start).decode("utf-8", "surrogatepass"))
        return out

    def __getstate__(self) -> dict:
        self.close()
        return self.__dict__


class DropTable:
    """Dropped document id -> row of its cluster's kept document, for `process` on the workers:
    (id hash, kept row) rows partitioned by hash, each partition sorted and saved, then looked up
    through memory maps, so neither the driver nor a worker holds the whole list."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._parts: Partitions | None = Partitions(self.directory / "pending", 3)

    def add(self, keys: np.ndarray, kept_rows: np.ndarray) -> None:
        assert self._parts is not None, "DropTable is finished"
        self._parts.append(np.column_stack([keys, kept_rows.astype(np.uint64)]))

    def finish(self) -> None:
        assert self._parts is not None, "DropTable is finished"
        for p, a in enumerate(self._parts.sorted()):
            np.save(self.directory / f"hi_{p:03d}.npy", np.ascontiguousarray(a[:, 0]))
            np.save(self.directory / f"rest_{p:03d}.npy", np.ascontiguousarray(a[:, 1:]))
        n = self._parts.n
        self._parts.remove()
        self._parts = None
        self.n = n

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Kept row per key, -1 for ids not dropped."""
        out = np.full(len(keys), -1, dtype=np.int64)
        part = (keys[:, 0] % np.uint64(self.n)).astype(np.intp)
        for p in np.unique(part).tolist():
            hi = np.load(self.directory / f"hi_{p:03d}.npy", mmap_mode="r")
            rest = np.load(self.directory / f"rest_{p:03d}.npy", mmap_mode="r")
            if not len(hi):
                continue
            ks = np.flatnonzero(part == p)
            j = np.minimum(np.searchsorted(hi, keys[ks, 0]), len(hi) - 1)
            hit = hi[j] == keys[ks, 0]
            found = hit & (rest[j, 0] == keys[ks, 1])
            out[ks[found]] = rest[j[found], 1].astype(np.int64)
            for k, jj in zip(ks[hit & ~found].tolist(), j[hit & ~found].tolist(), strict=True):
                while jj < len(hi) and hi[jj] == keys[k, 0]:  # equal high halves (rare): scan on
                    if rest[jj, 0] == keys[k, 1]:
                        out[k] = int(rest[jj, 1])
                        break
                    jj += 1
        return out
