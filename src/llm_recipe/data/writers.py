"""Write documents as sharded JSONL (optionally .gz / .zst) or Parquet, atomically.

`ShardWriter(out_dir, prefix)` streams documents into `prefix-00000.jsonl`,
`prefix-00001.jsonl`, ... rolling to a new file every `max_docs` documents. Each file is
written through `llm_recipe.files.atomic_write` (temp file + rename), so a crash leaves either
a complete file or none. Parquet files store `meta` as a JSON string column (heterogeneous
dicts do not fit one Arrow struct type); `readers.ShardReader` decodes it back.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

from ..files import atomic_write
from .pipeline import Doc

FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet")
_PARQUET_ROW_GROUP = 4096


class _JsonlSink:
    def __init__(self, raw: IO[bytes], fmt: str) -> None:
        self._raw = raw
        if fmt == "jsonl.gz":
            # mtime=0: same documents -> byte-identical file (reproducible outputs)
            self._f: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)
        elif fmt == "jsonl.zst":
            import zstandard

            self._f = zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)
        else:
            self._f = raw

    def write(self, docs: list[Doc]) -> None:
        self._f.write("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode())

    def close(self) -> None:
        if self._f is not self._raw:
            self._f.close()


class _ParquetSink:
    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._writer: Any = None
        self._rows: list[Doc] = []

    def write(self, docs: list[Doc]) -> None:
        self._rows.extend(docs)
        if len(self._rows) >= _PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()),
                            ("url", pa.string()), ("meta", pa.string())])
        cols = {
            "id": [str(d["id"]) for d in self._rows],
            "text": [d["text"] for d in self._rows],
            "source": [d.get("source") for d in self._rows],
            "url": [d.get("url") for d in self._rows],
            "meta": [json.dumps(d.get("meta") or {}, ensure_ascii=False) for d in self._rows],
        }
        table = pa.table(cols, schema=schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._raw, schema, compression="zstd")
        self._writer.write_table(table)
        self._rows = []

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()


class WholeOrNothing:
    """A writer used as a context manager: `close()` (files renamed into place) when the block ends
    normally, `abort()` (temp files removed, nothing renamed) when it raises."""

    def close(self) -> list[Path]:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ShardWriter(WholeOrNothing):
    """Stream docs into rolling, atomically written files; `close()` returns their paths."""

    def __init__(self, out_dir: str | os.PathLike, prefix: str, fmt: str = "jsonl",
                 max_docs: int = 100_000) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"output format must be one of {FORMATS}, got {fmt!r}")
        self.out_dir, self.prefix, self.fmt, self.max_docs = Path(out_dir), prefix, fmt, max_docs
        self.files: list[Path] = []
        self._stack: contextlib.ExitStack | None = None
        self._sink: _JsonlSink | _ParquetSink | None = None
        self._in_file = 0

    def _open(self) -> None:
        path = self.out_dir / f"{self.prefix}-{len(self.files):05d}.{self.fmt}"
        self._stack = contextlib.ExitStack()
        raw = self._stack.enter_context(atomic_write(path, "wb"))
        self._sink = _ParquetSink(raw) if self.fmt == "parquet" else _JsonlSink(raw, self.fmt)
        self.files.append(path)
        self._in_file = 0

    def _finish(self) -> None:
        if self._sink is not None and self._stack is not None:
            self._sink.close()
            self._stack.close()  # fsync + rename into place
        self._sink = self._stack = None

    def write(self, docs: list[Doc]) -> None:
        i = 0
        while i < len(docs):
            if self._sink is None or self._in_file >= self.max_docs:
                self._finish()
                self._open()
            take = docs[i : i + self.max_docs - self._in_file]
            self._sink.write(take)
            self._in_file += len(take)
            i += len(take)

    def close(self) -> list[Path]:
        self._finish()
        return self.files

    def abort(self) -> None:
        """Discard the file being written (its temp file is removed, nothing is renamed)."""
        if self._stack is not None:
            with contextlib.suppress(RuntimeError):
                self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._sink = self._stack = None
        if self.files:
            self.files.pop()
