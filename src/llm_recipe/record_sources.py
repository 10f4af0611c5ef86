"""Records from wherever a user keeps them, one reader for every stage that reads records.

    iter_source(source, split=None) -> Iterator[(where, dict | BadLine)]

A source is
  * a file: JSONL (`.jsonl`/`.json`/`.ndjson`), Parquet, CSV / TSV, Arrow (`.arrow`, the shards of a
    `datasets` folder), each optionally `.gz` / `.zst` where the format allows; web pages: WARC
    (`.warc`, `.warc.gz`) and HTML files (`.html`, `.htm`), one record per page (`web_records`);
  * a folder: a `datasets` `save_to_disk` folder (Dataset or DatasetDict), or a folder of such files;
  * a hub dataset name (`org/name`), loaded by `datasets` in streaming mode (needs the network).
`NAME:SPLIT` picks a split of a DatasetDict or a hub dataset (default: train, or the only split).

Everything streams (line by line, Parquet/Arrow batch by batch, hub datasets as an iterable), so a
large input is never loaded whole. `where` names the record for skip accounting: `file:line` for
line formats, `file:row N` for columnar ones. A record that cannot be read is a `BadLine` (counted
by the caller with its reason), never an exception; a source that does not exist is a one-line
`FileNotFoundError`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

from . import console
from .cell_literals import parse_cell
from .files import BadLine, iter_jsonl, open_text_bytes
from .web_records import is_web_file, iter_web

JSONL_EXT = (".jsonl", ".json", ".ndjson")
TABLE_EXT = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".arrow": "arrow"}
COMPRESSED = (".gz", ".zst")
DATASET_FOLDER_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
Record = tuple[str, "dict | BadLine"]


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    for c in COMPRESSED:
        name = name.removesuffix(c)
    suffix = os.path.splitext(name)[1]
    return "jsonl" if suffix in JSONL_EXT else TABLE_EXT.get(suffix) or is_web_file(path.name)


def _split_name(source: str) -> tuple[str, str | None]:
    """'name:test' -> ('name', 'test') unless the whole string is an existing path."""
    if Path(source).exists() or ":" not in source:
        return source, None
    name, split = source.rsplit(":", 1)
    return (name, split) if split and split.replace("_", "").replace("-", "").isalnum() else (source, None)


def _rows(where: str, batches) -> Iterator[Record]:
    row = 0
    for batch in batches:
        for rec in batch.to_pylist():
            row += 1
            yield f"{where}:row {row}", rec


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        yield from _rows(str(path), pf.iter_batches(batch_size=1024))


def _arrow(path: Path) -> Iterator[Record]:
    import pyarrow as pa

    with pa.memory_map(str(path)) as src:
        try:
            reader = pa.ipc.open_stream(src)  # what `datasets` writes
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(src)
            yield from _rows(str(path), (reader.get_batch(i) for i in range(reader.num_record_batches)))
            return
        yield from _rows(str(path), reader)


def _note_cells(path: Path, parsed: dict[tuple[str, str], int]) -> None:
    """One line per file that held list/dict cells as Python or NumPy text (how `datasets` / pandas
    write list columns to CSV): how many were parsed back, per column, and how many stayed text."""
    if not any(kind != "json" for _, kind in parsed):
        return
    by_kind: dict[str, list[str]] = {}
    for (col, kind), n in sorted(parsed.items()):
        by_kind.setdefault(kind, []).append(f"{col} {n}")
    said = [f"{kind} text parsed: {', '.join(cols)}" for kind, cols in by_kind.items() if kind in ("python", "numpy")]
    if "unparsed" in by_kind:
        said.append(f"looked like a list/dict but is not one, kept as text: {', '.join(by_kind['unparsed'])}")
    console.log(f"{path}: CSV cells holding lists/dicts ({'; '.join(said)})")


def _csv(path: Path) -> Iterator[Record]:
    """CSV / TSV rows; cells holding a list or dict (JSON, or the Python / NumPy text `datasets` writes)
    are parsed back (`cell_literals`), counted per column and said once per file."""
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    parsed: dict[tuple[str, str], int] = {}

    def cell(col: str, value):
        if not isinstance(value, str):
            return value
        out, kind = parse_cell(value)
        if kind is not None:
            parsed[col, kind] = parsed.get((col, kind), 0) + 1
        return out

    with open_text_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.DictReader(text, delimiter=delimiter)
        try:
            for rec in reader:
                if None in rec:  # more cells than header columns
                    yield f"{path}:{reader.line_num}", BadLine(str(path), reader.line_num, "bad_csv_row", "extra cells")
                    continue
                yield f"{path}:{reader.line_num}", {k.strip(): cell(k.strip(), v) for k, v in rec.items()
                                                    if k is not None}
        except UnicodeDecodeError as e:  # the rest of the file cannot be split into rows reliably
            yield f"{path}:{reader.line_num + 1}", BadLine(str(path), reader.line_num + 1, "not_utf8", str(e))
        except csv.Error as e:
            yield f"{path}:{reader.line_num}", BadLine(str(path), reader.line_num, "bad_csv", str(e))
    _note_cells(path, parsed)


def _file(path: Path) -> Iterator[Record]:
    fmt = file_format(path)
    if fmt == "jsonl":
        for lineno, rec in iter_jsonl(path):
            yield f"{path}:{lineno}", rec
    elif fmt == "parquet":
        yield from _parquet(path)
    elif fmt == "csv":
        yield from _csv(path)
    elif fmt == "arrow":
        yield from _arrow(path)
    elif fmt in ("warc", "html"):
        yield from iter_web(path)
    else:
        raise FileNotFoundError(f"{path}: unknown record format (expected .jsonl, .parquet, .csv, .tsv, .arrow, "
                                ".warc[.gz], .html, a datasets folder or a hub dataset name)")


def _pick_split(splits, source: str, split: str | None):
    names = list(splits)
    if split is None:
        split = "train" if "train" in names or len(names) != 1 else names[0]
    if split not in names:
        raise FileNotFoundError(f"{source}: no split '{split}' (splits: {', '.join(names)}); name one as {source}:SPLIT")
    return splits[split]


def _dataset_folder(path: Path, split: str | None) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        ds = _pick_split(ds, str(path), split)
    yield from _rows(str(path), ds.data.to_batches(max_chunksize=1024))


def _hub(name: str, split: str | None) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split or "train", streaming=True)
        rows = iter(ds)
        first = next(rows, None)
    except Exception as e:  # offline, unknown name, no such split: one line, not a hub traceback
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileNotFoundError(f"{name}: not a local file or folder, and loading it as a hub dataset failed "
                                f"({msg[:200]})") from None
    if first is None:
        return
    yield f"{name}:row 1", first
    for i, rec in enumerate(rows, start=2):
        yield f"{name}:row {i}", rec


def is_hub_name(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not file_format(Path(name))


def check_source(source: str | os.PathLike, what: str) -> None:
    """A missing local source is an error naming what it was for (before any reading starts)."""
    name = _split_name(str(source))[0]
    if not Path(name).exists() and not is_hub_name(name):
        raise FileNotFoundError(f"{name}: {what} not found (a file, a datasets folder or a hub dataset name)")


def iter_source(source: str | os.PathLike, split: str | None = None) -> Iterator[Record]:
    name, named_split = _split_name(str(source))
    split = split or named_split
    path = Path(name)
    if path.is_file():
        yield from _file(path)
    elif path.is_dir():
        if any((path / m).is_file() for m in DATASET_FOLDER_MARKERS):
            yield from _dataset_folder(path, split)
            return
        files = sorted(f for f in path.rglob("*") if f.is_file() and file_format(f)
                       and not any(part.startswith(".") for part in f.relative_to(path).parts))
        if not files:
            raise FileNotFoundError(f"{path}: no .jsonl/.parquet/.csv/.arrow/.warc/.html files inside and not a "
                                    "datasets folder")
        for f in files:
            yield from _file(f)
    elif is_hub_name(name):
        yield from _hub(name, split)
    else:
        raise FileNotFoundError(f"{name}: no such file or folder")


# Skips of well-formed records (no preference to learn, longer than the configured length): shown,
# but not counted as bad data.
NOT_BAD = {"tie", "chosen_equals_rejected", "too_long", "prompt_too_long", "no_trainable_tokens", "unpaired_no_partner",
           "judge_position_disagreement"}


def check_skips(what: str, kept: int, skipped: dict[str, int], examples: list[str], max_share: float,
                field: str) -> None:
    """Say what was skipped and why (every stage that reads records); one line of error when nothing
    is usable or more than `max_share` of the records were bad (`field` names the setting)."""
    n = sum(skipped.values())
    if not n and kept:
        return
    total = kept + n
    why = ", ".join(f"{r} {c}" for r, c in sorted(skipped.items(), key=lambda x: -x[1])) or "no records at all"
    first = f"; first: {examples[0]}" if examples else ""
    if not kept:
        raise ValueError(f"{what}: no usable records ({total} read; skipped: {why}{first})")
    bad = sum(c for r, c in skipped.items() if r not in NOT_BAD)
    if bad / total > max_share:
        raise ValueError(f"{what}: {bad} of {total} records are unusable ({bad / total:.0%}: {why}{first}), more "
                         f"than {field}={max_share:g}; fix the data or raise {field}")
    console.log(f"{what}: kept {kept} of {total} records; skipped {n} ({why}{first})")
