"""Binary token shards: the format, the writer and the checked reader.

Curation's last step (`data.tokenize`) writes, per input shard `<key>` and per (source, split) of its
documents, a *stream*: the documents' token ids back to back, an EOS after each one.

    data/<key>.tokens.json              header (written last): format, tokenizer sha256, dtype,
                                        EOS/BOS ids, the split's fraction and seed, one entry per
                                        stream (source, split, file names, documents, tokens, text
                                        tokens, characters, sha256 of both files)
    data/<key>.<source>.<split>.bin     token ids, little-endian uint16 when the vocabulary fits
                                        (< 65,536 ids), else uint32 (nanoGPT's / Megatron's .bin)
    data/<key>.<source>.<split>.idx     document boundaries: little-endian uint64 offsets into the
                                        .bin, one per document plus a leading 0 (document i is
                                        tokens [idx[i], idx[i+1]), its EOS included)

Files are written through `files.atomic_write` (temp + fsync + rename), the header last, so a shard
is there whole or not at all. `TokenShards(folder)` opens a folder of them and checks, before any
token is read: the headers agree (one tokenizer, dtype, EOS); every .bin has exactly the bytes its
header says (a truncated shard is named); every .idx starts at 0, ends at the stream's token count
and never goes back (an index that disagrees with its shard is named); the last token is EOS.
`require_tokenizer(sha256)` names a shard written by another tokenizer. Each problem is one
`ShardError` line naming the file. Reading is by memory map (`np.memmap`): nothing is loaded that
a window does not touch, so memory does not grow with the corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write
from .writers import WholeOrNothing

FORMAT = "llm-recipe-token-shard"
VERSION = 1
HEADER_SUFFIX = ".tokens.json"
OFFSET_DTYPE = np.dtype("<u8")
_CHECK_CHUNK = 1 << 20  # index entries read at a time when checking (no memory map: RSS stays flat)


class ShardError(ValueError):
    """A token shard that cannot be trained on: one line naming the file."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (nanoGPT's choice for GPT-2's 50k vocabulary), else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of everything that decides a text's ids: a fast tokenizer's full serialization
    (normalizer, pre-tokenizer, model, post-processor, added tokens), else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "to_str"):  # padding / truncation are call-time settings, not the ids of a text
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        text = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    else:
        text = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return hashlib.sha256(text.encode()).hexdigest()


def shard_meta(tokenizer, *, val_fraction: float, split_seed: int) -> dict[str, Any]:
    """What every header of one tokenization records about how its tokens were made."""
    if tokenizer.eos_token_id is None:
        raise ShardError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no EOS token: documents "
                         "in a token shard are separated by EOS")
    vocab = len(tokenizer)
    return {"format": FORMAT, "version": VERSION, "tokenizer_sha256": tokenizer_sha256(tokenizer),
            "tokenizer": str(getattr(tokenizer, "name_or_path", "")), "vocab_size": vocab,
            "dtype": token_dtype(vocab).name, "eos_id": int(tokenizer.eos_token_id),
            "bos_id": None if tokenizer.bos_token_id is None else int(tokenizer.bos_token_id),
            "val_fraction": val_fraction, "split_seed": split_seed}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40] or "_"


class _StreamWriter:
    """One (source, split) stream of a shard: .bin and .idx written as the documents arrive."""

    def __init__(self, stack: contextlib.ExitStack, out_dir: Path, stem: str, dtype: np.dtype) -> None:
        self.bin_name, self.idx_name = f"{stem}.bin", f"{stem}.idx"
        self.bin = stack.enter_context(atomic_write(out_dir / self.bin_name, "wb"))
        self.idx = stack.enter_context(atomic_write(out_dir / self.idx_name, "wb"))
        self.dtype = dtype
        self.bin_hash, self.idx_hash = hashlib.sha256(), hashlib.sha256()
        self.documents = self.tokens = self.text_tokens = self.chars = 0
        self._put_idx(np.zeros(1, OFFSET_DTYPE))

    def _put_idx(self, offsets: np.ndarray) -> None:
        raw = offsets.astype(OFFSET_DTYPE).tobytes()
        self.idx.write(raw)
        self.idx_hash.update(raw)

    def add(self, docs: list[dict]) -> None:
        arrays = [d["tokens"] for d in docs]
        lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
        raw = np.concatenate(arrays).astype(self.dtype, copy=False).tobytes()
        self.bin.write(raw)
        self.bin_hash.update(raw)
        self._put_idx(self.tokens + np.cumsum(lengths))
        self.documents += len(docs)
        self.tokens += int(lengths.sum())
        self.text_tokens += sum(int(d["text_tokens"]) for d in docs)
        self.chars += sum(len(d["text"]) for d in docs)

    def entry(self, source: str, split: str) -> dict[str, Any]:
        return {"source": source, "split": split, "bin": self.bin_name, "idx": self.idx_name,
                "documents": self.documents, "tokens": self.tokens, "text_tokens": self.text_tokens,
                "chars": self.chars, "bin_sha256": self.bin_hash.hexdigest(), "idx_sha256": self.idx_hash.hexdigest()}


class TokenShardWriter(WholeOrNothing):
    """The executor's writer for `fmt="tokens"`: documents carrying `tokens` (ids, EOS last),
    `text_tokens` and `split` go to their (source, split) stream; `close()` writes the header last
    and returns `[header path]` (no header for a shard whose documents were all dropped)."""

    def __init__(self, out_dir: str | os.PathLike, prefix: str, meta: dict[str, Any]) -> None:
        self.out_dir, self.prefix, self.meta = Path(out_dir), prefix, meta
        self.dtype = np.dtype(meta["dtype"])
        self._stack = contextlib.ExitStack()
        self._streams: dict[tuple[str, str], _StreamWriter] = {}

    def write(self, docs: list[dict]) -> None:
        groups: dict[tuple[str, str], list[dict]] = {}
        for d in docs:
            groups.setdefault((str(d.get("source")), d["split"]), []).append(d)
        for key, group in groups.items():
            if key not in self._streams:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                stem = f"{self.prefix}.{_safe(key[0])}.{key[1]}"
                if any(s.bin_name == f"{stem}.bin" for s in self._streams.values()):
                    stem += f"-{len(self._streams)}"  # two source names that sanitize alike
                self._streams[key] = _StreamWriter(self._stack, self.out_dir, stem, self.dtype)
            self._streams[key].add(group)

    def close(self) -> list[Path]:
        self._stack.close()  # fsync + rename every stream into place, then the header
        if not self._streams:
            return []
        streams = [w.entry(src, split) for (src, split), w in sorted(self._streams.items())]
        header = {**self.meta, "streams": streams, **_totals(streams)}
        path = self.out_dir / f"{self.prefix}{HEADER_SUFFIX}"
        with atomic_write(path) as f:
            json.dump(header, f, ensure_ascii=False, indent=1)
        return [path]

    def abort(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)  # temp files removed



def _totals(streams: list[dict]) -> dict[str, int]:
    return {k: sum(s[k] for s in streams) for k in ("documents", "tokens", "text_tokens", "chars")}


@dataclass
class Stream:
    """One checked (source, split) stream of a shard, memory-mapped on first use."""

    source: str
    split: str
    bin: Path
    idx: Path
    documents: int
    tokens: int
    dtype: np.dtype
    _tokens: np.ndarray | None = None
    _offsets: np.ndarray | None = None

    @property
    def ids(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.memmap(self.bin, dtype=self.dtype, mode="r", shape=(self.tokens,))
        return self._tokens

    @property
    def offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._offsets = np.memmap(self.idx, dtype=OFFSET_DTYPE, mode="r", shape=(self.documents + 1,))
        return self._offsets

    def doc_starts(self, start: int, stop: int) -> np.ndarray:
        """Offsets in [start, stop) where a document begins (binary search: O(log n) pages)."""
        off = self.offsets
        lo, hi = np.searchsorted(off, start, "left"), np.searchsorted(off, stop, "left")
        return np.asarray(off[lo:hi], dtype=np.int64)

    def __getstate__(self) -> dict:  # memory maps are reopened where the stream is unpickled
        return {**self.__dict__, "_tokens": None, "_offsets": None}


def _read_header(path: Path) -> dict:
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: not a readable token shard header ({e.__class__.__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ShardError(f"{path}: not a token shard header (no format {FORMAT!r})")
    if header.get("version") != VERSION:
        raise ShardError(f"{path}: token shard format version {header.get('version')}, this reader knows {VERSION}")
    return header


def _check_stream(header_path: Path, entry: dict, dtype: np.dtype, eos_id: int) -> Stream:
    folder = header_path.parent
    s = Stream(entry["source"], entry["split"], folder / entry["bin"], folder / entry["idx"],
               int(entry["documents"]), int(entry["tokens"]), dtype)
    for f in (s.bin, s.idx):
        if not f.is_file():
            raise ShardError(f"{f}: missing (listed by {header_path.name})")
    size, want = s.bin.stat().st_size, s.tokens * dtype.itemsize
    if size != want:
        how = "truncated" if size < want else "longer than its header says"
        raise ShardError(f"{s.bin}: {how}: {size:,} bytes, {header_path.name} says {s.tokens:,} tokens "
                         f"x {dtype.itemsize} = {want:,} bytes")
    n_idx = s.idx.stat().st_size // OFFSET_DTYPE.itemsize
    if n_idx != s.documents + 1 or s.idx.stat().st_size % OFFSET_DTYPE.itemsize:
        raise ShardError(f"{s.idx}: index disagrees with its shard: {n_idx:,} offsets for "
                         f"{s.documents:,} documents (expected {s.documents + 1:,})")
    _check_offsets(s)
    with open(s.bin, "rb") as f:  # the stream ends with a document's EOS
        f.seek(want - dtype.itemsize)
        last = int(np.frombuffer(f.read(dtype.itemsize), dtype)[0])
    if last != eos_id:
        raise ShardError(f"{s.bin}: does not end with EOS ({last} != {eos_id}): not a complete stream")
    return s


def _check_offsets(s: Stream) -> None:
    """0 first, the token count last, strictly increasing (every document has its EOS), read in
    chunks from the file (not mapped, so a large index leaves no resident pages behind)."""
    prev = -1
    with open(s.idx, "rb") as f:
        while chunk := f.read(_CHECK_CHUNK * OFFSET_DTYPE.itemsize):
            off = np.frombuffer(chunk, OFFSET_DTYPE).astype(np.int64)
            if prev < 0 and off[0] != 0:
                raise ShardError(f"{s.idx}: index disagrees with its shard {s.bin.name}: first offset {off[0]}, not 0")
            steps = np.diff(np.concatenate([[prev], off])) if prev >= 0 else np.diff(off)
            if (steps <= 0).any():
                raise ShardError(f"{s.idx}: index disagrees with its shard {s.bin.name}: offsets go back or "
                                 "repeat (an empty document)")
            prev = int(off[-1])
    if prev != s.tokens:
        raise ShardError(f"{s.idx}: index disagrees with its shard {s.bin.name}: last offset {prev:,}, "
                         f"the shard has {s.tokens:,} tokens")


def shard_folder(path: str | os.PathLike) -> Path:
    """The folder holding the headers: `path` itself or its `data/` (a curation output folder)."""
    p = Path(path)
    return p / "data" if (p / "data").is_dir() and not list(p.glob(f"*{HEADER_SUFFIX}")) else p


class TokenShards:
    """Every shard of a folder, checked (see the module docstring); streams by split and source."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.root = Path(folder)
        data = shard_folder(folder)
        if not data.is_dir():
            raise ShardError(f"{self.root}: no such token shard folder")
        if (data.parent / ".state").is_dir() and not (data.parent / "stats.json").exists():
            raise ShardError(f"{data.parent}: an unfinished tokenization (no stats.json yet): run it again to "
                             "finish it (it resumes by shard)")
        self.headers = sorted(data.glob(f"*{HEADER_SUFFIX}"))
        if not self.headers:
            raise ShardError(f"{data}: no token shards (*{HEADER_SUFFIX}) in this folder")
        self.meta: dict[str, Any] = {}
        self.streams: list[Stream] = []
        for path in self.headers:
            header = _read_header(path)
            meta = {k: header.get(k) for k in ("tokenizer_sha256", "dtype", "eos_id", "bos_id", "vocab_size",
                                               "val_fraction", "split_seed", "tokenizer")}
            if not self.meta:
                self.meta = meta
            for k in ("tokenizer_sha256", "dtype", "eos_id", "val_fraction", "split_seed"):
                if meta[k] != self.meta[k]:
                    raise ShardError(f"{path}: {k} {meta[k]!r} differs from {self.headers[0].name}'s "
                                     f"{self.meta[k]!r}: shards of two tokenizations in one folder")
            dtype = np.dtype(meta["dtype"])
            self.streams += [_check_stream(path, e, dtype, meta["eos_id"]) for e in header.get("streams", [])]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    def require_tokenizer(self, tokenizer) -> None:
        """Training on ids of another tokenizer would be silent garbage: refuse, naming a shard."""
        want = tokenizer_sha256(tokenizer)
        if self.meta["tokenizer_sha256"] != want:
            raise ShardError(f"{self.headers[0]}: written by another tokenizer (sha256 "
                             f"{self.meta['tokenizer_sha256'][:12]}…, {self.meta.get('tokenizer') or '?'}) than "
                             f"the model's ({want[:12]}…); tokenize the corpus again with this tokenizer")

    def by_source(self, split: str) -> dict[str, list[Stream]]:
        out: dict[str, list[Stream]] = {}
        for s in self.streams:
            if s.split == split:
                out.setdefault(s.source, []).append(s)
        return dict(sorted(out.items()))


def summarize(headers: list[Path]) -> dict[str, Any]:
    """Tokens per source (train / val), characters and tokens per character, from the headers."""
    sources: dict[str, dict[str, int]] = {}
    meta: dict[str, Any] = {}
    for path in headers:
        header = _read_header(Path(path))
        meta = meta or {k: header[k] for k in ("tokenizer_sha256", "tokenizer", "vocab_size", "dtype", "eos_id")}
        for e in header["streams"]:
            s = sources.setdefault(e["source"], {"documents": 0, "tokens": 0, "text_tokens": 0, "chars": 0,
                                                 "train_tokens": 0, "val_tokens": 0, "val_documents": 0})
            for k in ("documents", "tokens", "text_tokens", "chars"):
                s[k] += e[k]
            s[f"{e['split']}_tokens"] += e["tokens"]
            if e["split"] == "val":
                s["val_documents"] += e["documents"]
    for s in sources.values():
        s["tokens_per_char"] = round(s["text_tokens"] / s["chars"], 4) if s["chars"] else None
    total = {k: sum(s[k] for s in sources.values()) for k in ("documents", "tokens", "text_tokens", "chars",
                                                               "train_tokens", "val_tokens")}
    total["tokens_per_char"] = round(total["text_tokens"] / total["chars"], 4) if total["chars"] else None
    return {**meta, "shards": len(headers), "total": total, "sources": dict(sorted(sources.items()))}
