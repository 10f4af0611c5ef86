"""Read corpus shards (JSONL, Parquet, CSV/TSV, Arrow, plain text, WARC / HTML web pages; .gz / .zst
too) into documents.

One input file is one shard; a `datasets` save_to_disk folder is its Arrow files, and a hub
dataset name (`org/name`, streamed by `datasets`) is one shard. Readers yield documents or `BadLine`s (file, line, reason): a
record that cannot become a document is counted by reason and named by `file:line` in the
audit, never raised. Reason codes: `invalid_json`, `not_utf8`, `not_object`, `missing_text`,
`bad_text_type`, `empty_text`, `empty_file`, `unreadable_file`; web pages add theirs (`not_html`,
`no_payload`, `too_large`, `undecidable_charset`, `truncated_record`, `corrupt_gzip`, `corrupt_warc`:
see `web_records`), where `line` is the record's byte offset in the WARC file. A WARC file is one
shard (resume is by shard); a web record keeps its WARC headers in `meta` and `meta.format: html`
marks it for the `extract` step.

Field rules (all formats)
    text    from `text_key` (default "text"); must be a non-empty string.
    id      from `id_key` (default "id"), else `"{file stem}:{line}"`.
    source  the record's `source`, else `default_source`, else the file stem (`web.jsonl` -> web).
    url     optional; `None` when absent.
    meta    the record's `meta` dict (Parquet stores it as a JSON string), plus any extra
            top-level fields, so nothing the user had is lost.

Plain text (`.txt`, `.md`, `.text`): `text_unit="file"` makes the whole file one document;
`text_unit="paragraph"` makes every blank-line separated block a document (id `stem:line`,
where line is the block's first line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..files import BadLine, iter_jsonl, max_record_bytes, open_text_bytes, set_max_record_bytes
from ..record_sources import (
    COMPRESSED,
    DATASET_FOLDER_MARKERS,
    file_format,
    is_hub_name,
    iter_source,
)
from .pipeline import Doc

TEXT_EXT = (".txt", ".md", ".text")
_CORE = ("id", "text", "source", "url", "meta")


def _base_suffix(path: Path) -> str:
    name = path.name.lower()
    for c in COMPRESSED:
        if name.endswith(c):
            name = name[: -len(c)]
    return os.path.splitext(name)[1]


def _stem(path: Path) -> str:
    name = path.name
    for c in COMPRESSED:
        if name.lower().endswith(c):
            name = name[: -len(c)]
    return os.path.splitext(name)[0]


def detect_format(path: Path) -> str | None:
    """Plain text (a corpus-only format), else the record format `record_sources` reads."""
    return "text" if _base_suffix(path) in TEXT_EXT else file_format(path)


def list_shards(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files / directories (recursively) into the sorted list of readable shards.

    A missing path is a `FileNotFoundError` with a one-line message; a directory without a
    single readable file is one too (pointing at a wrong folder is the common mistake).
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists() and is_hub_name(str(p)):
            out.append(p)  # a hub dataset: one shard, read by `datasets`
            continue
        if not p.exists():
            raise FileNotFoundError(f"{p}: input path does not exist")
        if p.is_dir() and any((p / m).is_file() for m in DATASET_FOLDER_MARKERS):
            out.extend(sorted(p.rglob("*.arrow")))  # a datasets folder: its Arrow shards (not its JSON metadata)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and detect_format(f)
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise FileNotFoundError(f"{p}: no .jsonl/.parquet/.csv/.arrow/.txt/.warc/.html files (optionally "
                                        ".gz/.zst) inside")
            out.extend(found)
        else:
            if detect_format(p) is None:
                raise FileNotFoundError(f"{p}: unknown input format (expected .jsonl, .parquet, .csv, .arrow, .txt, "
                                        ".warc[.gz], .html)")
            out.append(p)
    return out


class ShardReader:
    """Picklable reader settings; `read(path)` yields `Doc | BadLine`."""

    def __init__(
        self,
        text_key: str = "text",
        id_key: str = "id",
        default_source: str | None = None,
        text_unit: str = "paragraph",
    ) -> None:
        if text_unit not in ("file", "paragraph"):
            raise ValueError(f"text_unit must be 'file' or 'paragraph', got {text_unit!r}")
        self.text_key, self.id_key = text_key, id_key
        self.default_source, self.text_unit = default_source, text_unit
        self.max_record_bytes = max_record_bytes()  # the caller's cap, carried to worker processes

    def read(self, path: str | os.PathLike) -> Iterator[Doc | BadLine]:
        set_max_record_bytes(self.max_record_bytes)
        path = Path(path)
        fmt = "source" if not path.exists() else detect_format(path)
        n = 0
        try:
            records = self._jsonl(path) if fmt == "jsonl" else self._text(path) if fmt == "text" else self._source(path)
            for rec in records:
                n += 1
                yield rec
        except (OSError, EOFError, ValueError) as e:  # truncated gzip, corrupt parquet, ...
            yield BadLine(str(path), n + 1, "unreadable_file", f"{type(e).__name__}: {e}"[:200])
            return
        if n == 0:
            yield BadLine(str(path), 0, "empty_file")

    def _make_doc(self, rec: dict, path: Path, line: int) -> Doc | BadLine:
        text = rec.get(self.text_key)
        if text is None:
            return BadLine(str(path), line, "missing_text", f"no '{self.text_key}' field")
        if not isinstance(text, str):
            return BadLine(str(path), line, "bad_text_type", type(text).__name__)
        if not text.strip():
            return BadLine(str(path), line, "empty_text")
        meta = rec.get("meta")
        if isinstance(meta, str):  # Parquet round trip stores meta as JSON
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = {"meta": meta}
        meta = dict(meta) if isinstance(meta, dict) else ({} if meta is None else {"meta": meta})
        skip = {self.text_key, self.id_key, *_CORE}
        meta.update({k: v for k, v in rec.items() if k not in skip})
        doc_id = rec.get(self.id_key)
        return {
            "id": str(doc_id) if doc_id is not None else f"{_stem(path)}:{line}",
            "text": text,
            "source": str(rec.get("source") or self.default_source or _stem(path)),
            "url": rec.get("url"),
            "meta": meta,
        }

    def _jsonl(self, path: Path) -> Iterator[Doc | BadLine]:
        for line, rec in iter_jsonl(path):
            yield rec if isinstance(rec, BadLine) else self._make_doc(rec, path, line)

    def _source(self, path: Path) -> Iterator[Doc | BadLine]:
        """Parquet, CSV, Arrow and hub datasets, through the record reader every stage uses (row N)."""
        for i, (_, rec) in enumerate(iter_source(path), start=1):
            yield rec if isinstance(rec, BadLine) else self._make_doc(rec, path, i)

    def _text(self, path: Path) -> Iterator[Doc | BadLine]:
        with open_text_bytes(path) as f:
            raw = f.read()
        if self.text_unit == "file":
            if raw.strip():
                yield self._decode_block(raw, path, 1)
            return
        block: list[bytes] = []
        start = 0
        for lineno, line in enumerate(raw.splitlines(keepends=True), start=1):
            if line.strip():
                if not block:
                    start = lineno
                block.append(line)
            elif block:
                yield self._decode_block(b"".join(block), path, start)
                block = []
        if block:
            yield self._decode_block(b"".join(block), path, start)

    def _decode_block(self, raw: bytes, path: Path, line: int) -> Doc | BadLine:
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            return BadLine(str(path), line, "not_utf8", str(e))
        return self._make_doc({"text": text}, path, line)
