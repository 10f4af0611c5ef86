"""Pretraining data streamed from token shards by memory map (`data.token_shards`).

    data = pretrain_data(token_dir, tokenizer, cfg, seed)   # checked shards -> train / val windows
    Trainer(model, data.objective, data.train, cfg, out, eval_data=data.val, seed=seed)

Windows. Per split, each source's streams are concatenated (virtually: files are never copied or
loaded) and cut into windows of `block_size` tokens; a window may hold the end of one document and
the start of the next (packing), and the tail of a source that does not fill a window is dropped
and counted. A window is read from the memory maps when the loop asks for it, so memory does not
grow with the corpus: the only per-corpus state is a few integers per stream.

Order. An epoch is a sequence of window ids: every training window once, or, with the folder's
`mixture.json` (`curate.mixing`), `weight x token_budget / block_size` windows per source, a source
with fewer windows repeated (each repeat in a fresh order, the last one a random subset: `epochs`
as in `data.mixing`) and a larger one subsampled. Position k of epoch e is window
`pi_e(k)` where `pi_e` is a seeded pseudo-random permutation (`Permutation`: a Feistel network
with cycle walking, computed per index), so the order is a pure function of (seed, epoch, k): the
loop's checkpoint (epoch, batch in epoch) and RNG states are all a resume needs, and nothing of
size O(corpus) is ever built. The loop splits every global batch over the ranks (`rank::world`),
so processes read disjoint windows.

Validation is the shards' `val` split (held out by document when tokenizing), in a fixed order
that spreads the first batches over every source and file.

Document mask (`pretrain.document_mask`): position ids restart at every document start inside a
window (transformers' Llama then attends only within a document: sdpa and flash-attention detect
packed sequences from the position ids) and the first token of each document is not predicted
from the previous one: the loss is that of running each document piece on its own.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import PretrainConfig
from ..config.curate import ExecutorConfig
from ..data.mixing import MixingError, mixture_targets
from ..data.readers import ShardReader
from ..data.token_shards import ShardError, Stream, TokenShards
from ..data.tokenize import tokenize_corpus
from ..record_sources import check_skips, check_source

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a strong 64-bit mixer), element-wise on uint64."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A seeded pseudo-random bijection of [0, n), evaluated per index in O(1) memory: a 4-round
    Feistel network over the smallest even number of bits covering n, with cycle walking (an
    image >= n is mapped again until it lands in range: on average < 4 passes)."""

    def __init__(self, n: int, key: Sequence[int]) -> None:
        if n <= 0:
            raise ValueError("a permutation of nothing")
        self.n = n
        bits = max(2, (n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = np.random.SeedSequence(list(key)).generate_state(4, np.uint64)

    def _round(self, x: np.ndarray) -> np.ndarray:
        h = np.uint64(self.half)
        left, right = x >> h, x & self.mask
        for k in self.keys:
            left, right = right, left ^ (_mix64(right ^ k) & self.mask)
        return (left << h) | right

    def __call__(self, i: np.ndarray | int) -> np.ndarray:
        x = self._round(np.atleast_1d(np.asarray(i, dtype=np.uint64)))
        out = x >= np.uint64(self.n)
        while out.any():
            x[out] = self._round(x[out])
            out = x >= np.uint64(self.n)
        return x.astype(np.int64)


@dataclass
class Window:
    tokens: np.ndarray  # block_size ids (int64)
    starts: np.ndarray  # positions p > 0 inside the window where a document begins


class SourceWindows:
    """One source's streams of one split, concatenated, as windows of `block` tokens."""

    def __init__(self, source: str, streams: list[Stream], block: int, vocab_size: int) -> None:
        self.source, self.streams, self.block, self.vocab_size = source, streams, block, vocab_size
        self.cum = np.cumsum([0] + [s.tokens for s in streams]).astype(np.int64)
        self.tokens = int(self.cum[-1])
        self.windows = self.tokens // block
        self.dropped_tail = self.tokens - self.windows * block

    def __getitem__(self, w: int) -> Window:
        start = w * self.block
        stop = start + self.block
        i = int(np.searchsorted(self.cum, start, "right")) - 1
        parts, starts, pos = [], [], start
        while pos < stop:
            s, base = self.streams[i], int(self.cum[i])
            a, b = pos - base, min(stop - base, s.tokens)
            parts.append(np.asarray(s.ids[a:b], dtype=np.int64))
            starts.append(s.doc_starts(a, b) - a + (pos - start))
            pos, i = pos + (b - a), i + 1
        tokens = np.concatenate(parts)
        if tokens.max() >= self.vocab_size:  # nothing is trained on ids the model has no row for
            bad = self.streams[int(np.searchsorted(self.cum, start, "right")) - 1]
            raise ShardError(f"{bad.bin}: token id {int(tokens.max())} >= the vocabulary size {self.vocab_size}")
        st = np.concatenate(starts)
        return Window(tokens, st[st > 0])


def _golden_stride(n: int) -> int:
    """A step coprime with n near n / golden ratio: i -> i * step mod n visits every item, spread out."""
    step = max(1, round(n * 0.6180339887))
    while math.gcd(step, n) != 1:
        step += 1
    return step


def _sources(shards: TokenShards, split: str, block: int, vocab: int) -> dict[str, SourceWindows]:
    return {src: SourceWindows(src, streams, block, vocab) for src, streams in shards.by_source(split).items()}


class _EpochBatches(Sequence):
    """The global batches of one epoch, made when asked for (`Trainer._micro_batches` indexes it)."""

    def __init__(self, data: ShardWindows, seed: int, epoch: int, global_batch: int) -> None:
        self.data, self.bs = data, global_batch
        self.perm = Permutation(len(data), [seed, epoch])
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.data) // self.bs

    def __getitem__(self, b: int) -> np.ndarray:
        if not 0 <= b < len(self):
            raise IndexError(b)
        k = self.perm(np.arange(b * self.bs, (b + 1) * self.bs))
        return self.data.window_ids(k, self.seed, self.epoch)


class ShardWindows(Sequence):
    """The training windows: `len` = windows per epoch, `epoch_batches` the order (module docstring),
    `[window id]` a `Window` read from the memory maps."""

    def __init__(self, shards: TokenShards, block: int, vocab_size: int, mixture: dict | None = None,
                 mixture_file: Path | None = None) -> None:
        self.sources = _sources(shards, "train", block, vocab_size)
        self.names = list(self.sources)
        avail = np.array([self.sources[s].windows for s in self.names], dtype=np.int64)
        self.base = np.concatenate([[0], np.cumsum(avail)])  # window id = base[source] + local window
        counts = self._counts(avail, mixture, block, mixture_file or shards.root, shards)
        self.counts = np.array([counts.get(s, 0) for s in self.names], dtype=np.int64)
        self.avail = avail
        self.cum_counts = np.concatenate([[0], np.cumsum(self.counts)])

    def _counts(self, avail: np.ndarray, mixture: dict | None, block: int, where: Path,
                shards: TokenShards) -> dict[str, int]:
        have = dict(zip(self.names, avail.tolist(), strict=True))
        if mixture is None:
            if not sum(have.values()):
                raise ShardError(f"{shards.headers[0].parent}: {sum(s.tokens for s in self.sources.values()):,} "
                                 f"training tokens: fewer than one window of {block}")
            return have
        try:
            counts, _ = mixture_targets(have, mixture["weights"], mixture["token_budget"] // block,
                                        mixture["max_epochs"])
        except MixingError as e:
            raise ShardError(f"{where}: {e} (counted in windows of {block} tokens)") from None
        return counts

    def __len__(self) -> int:
        return int(self.cum_counts[-1])

    def __getitem__(self, wid: int) -> Window:
        s = int(np.searchsorted(self.base, wid, "right")) - 1
        return self.sources[self.names[s]][int(wid - self.base[s])]

    def epoch_batches(self, *, seed: int, epoch: int, global_batch: int) -> _EpochBatches:
        if len(self) < global_batch:
            raise ValueError(f"{len(self)} training windows is fewer than one batch of {global_batch}")
        return _EpochBatches(self, seed, epoch, global_batch)

    def window_ids(self, k: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """Positions k (already permuted) of epoch `epoch` -> window ids: a position falls in a source's
        share; repeat r of that source is a fresh permutation of its windows."""
        src = np.searchsorted(self.cum_counts, k, "right") - 1
        j = k - self.cum_counts[src]
        rep, local = j // self.avail[src], j % self.avail[src]
        out = np.empty_like(k)
        for s, r in {(int(a), int(b)) for a, b in zip(src, rep, strict=True)}:
            sel = (src == s) & (rep == r)
            if self.counts[s] == self.avail[s]:  # every window once: the epoch permutation suffices
                out[sel] = self.base[s] + local[sel]
            else:
                out[sel] = self.base[s] + Permutation(int(self.avail[s]), [seed, epoch, s, r])(local[sel])
        return out

    def report(self) -> dict[str, Any]:
        return {"windows_per_epoch": len(self), "sources": {
            s: {"windows": int(self.avail[i]), "samples_per_epoch": int(self.counts[i]),
                "epochs": round(float(self.counts[i] / self.avail[i]), 4) if self.avail[i] else None,
                "dropped_tail_tokens": self.sources[s].dropped_tail} for i, s in enumerate(self.names)}}


class HeldOutWindows(Sequence):
    """The validation windows in a fixed order spread over sources and files (`eval_data`)."""

    def __init__(self, shards: TokenShards, block: int, vocab_size: int) -> None:
        self.sources = _sources(shards, "val", block, vocab_size)
        self.names = list(self.sources)
        self.base = np.concatenate([[0], np.cumsum([self.sources[s].windows for s in self.names])]).astype(np.int64)
        n = int(self.base[-1])
        self.step = _golden_stride(n) if n else 1

    def __len__(self) -> int:
        return int(self.base[-1])

    def _one(self, i: int) -> Window:
        if not 0 <= i < len(self):
            raise IndexError(i)
        wid = (i * self.step) % len(self)
        s = int(np.searchsorted(self.base, wid, "right")) - 1
        return self.sources[self.names[s]][wid - int(self.base[s])]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        return self._one(i)

    def blocks(self, n: int) -> np.ndarray:
        """The first n windows as a [n, block] array (the eval stage's held-out text)."""
        return np.stack([w.tokens for w in self[:n]]) if len(self) else np.zeros((0, 0), np.int64)


class DocumentMaskedLM:
    """Next-token loss with no attention across documents in a window (module docstring)."""

    def collate(self, windows: list[Window]) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(np.stack([w.tokens for w in windows])).long()
        pos = np.tile(np.arange(ids.shape[1]), (len(windows), 1))
        labels = ids.clone()
        for row, w in enumerate(windows):
            bounds = [*w.starts.tolist(), ids.shape[1]]  # each document piece after the first restarts at 0
            for p, q in zip(bounds[:-1], bounds[1:], strict=True):
                pos[row, p:q] = np.arange(q - p)
            labels[row, torch.from_numpy(w.starts).long()] = -100
        loss_tokens = int((labels[:, 1:] != -100).sum())
        return {"input_ids": ids, "position_ids": torch.from_numpy(pos).long(), "labels": labels,
                "loss_tokens": torch.tensor(loss_tokens)}

    def loss(self, model, batch):
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                    use_cache=False)
        return out.loss, {"n_tokens": batch["input_ids"].numel()}


@dataclass
class PretrainData:
    shards: TokenShards
    train: ShardWindows
    val: HeldOutWindows
    mixture: dict | None
    report: dict[str, Any] = field(default_factory=dict)


def read_mixture(root: Path) -> tuple[dict | None, Path]:
    path = root / "mixture.json"
    if not path.exists():
        return None, path
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (OSError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: not a readable mixture ({e})") from None


def pretrain_data(token_dir: str | os.PathLike, tokenizer, cfg: PretrainConfig) -> PretrainData:
    """The checked shards of `token_dir` as training and validation windows for `tokenizer`'s model."""
    shards = TokenShards(token_dir)
    shards.require_tokenizer(tokenizer)
    mixture, where = read_mixture(shards.root)
    vocab = len(tokenizer)
    train = ShardWindows(shards, cfg.block_size, vocab, mixture, where)
    val = HeldOutWindows(shards, cfg.block_size, vocab)
    report = {"token_data": str(shards.root), "tokenizer_sha256": shards.meta["tokenizer_sha256"],
              "dtype": shards.meta["dtype"], "shards": len(shards.headers), "mixture": mixture is not None,
              "train": train.report(), "val_windows": len(val),
              "val_documents": sum(s.documents for s in shards.streams if s.split == "val")}
    return PretrainData(shards, train, val, mixture, report)


def heldout_blocks(token_dir: str | os.PathLike, tokenizer, block: int, n: int) -> tuple[np.ndarray, int]:
    """The first n validation windows of a shard folder as a [n, block] array (the eval stage's
    held-out text: the very windows pretraining validated on), and how many there are."""
    shards = TokenShards(token_dir)
    shards.require_tokenizer(tokenizer)
    val = HeldOutWindows(shards, block, len(tokenizer))
    return val.blocks(min(n, len(val))), len(val)


def shard_inputs(shards: TokenShards) -> list[Path]:
    """What identifies the data of a run: the headers (they hold each file's sha256) and the mixture."""
    mixture = shards.root / "mixture.json"
    return [*shards.headers, *([mixture] if mixture.exists() else [])]


def documents_to_shards(files: Sequence[str | os.PathLike], out_dir: Path, tokenizer, cfg: PretrainConfig,
                        seed: int) -> dict:
    """Pretraining documents (JSONL / Parquet / CSV / datasets folders / hub names / .txt = one
    document per file) -> token shards in `out_dir`, resumable; the skipped records said and checked
    against `max_bad_records`. The in-memory path of old is this over a small corpus."""
    for f in files:
        check_source(f, "pretraining data")
    stats = tokenize_corpus(files, out_dir, tokenizer, val_fraction=cfg.val_fraction, seed=seed,
                            executor=ExecutorConfig(workers=1, progress=False), reader=ShardReader(text_unit="file"),
                            redo_on_change=True)
    skipped: dict[str, int] = {}
    for step in ("read", "tokenize"):
        for reason, n in stats["steps"].get(step, {}).get("dropped", {}).items():
            skipped[reason] = skipped.get(reason, 0) + n
    examples = [f"{b['where']}: {b['reason']}" for b in stats["bad_input"][:20]]
    check_skips("pretraining data", stats["docs_out"], skipped, examples, cfg.max_bad_records,
                "pretrain.max_bad_records")
    return {"records_in": stats["records_in"], "documents": stats["docs_out"], "skipped": skipped,
            "examples": examples, "tokens": stats["tokens"]}
