"""Tokenization as a curation step: documents -> binary token shards (`token_shards`).

    stats = tokenize_corpus(files, "runs/x/curated/tokens", tokenizer, val_fraction=0.05, seed=0)

`Tokenize` is a pipeline `Step`: each batch is encoded with the tokenizer's Rust batch encoder
(`encode_batch_fast`, special tokens as the tokenizer adds them: BOS for Llama-style ones), an EOS
is appended to every document, and each document is assigned to `train` or `val` by a hash of its
id (`splits`' rule: the validation split is held out by document). A document with no text token
is dropped with reason `no_tokens`. `tokenize_corpus` runs it on the curation executors (local
process pool or Ray, `executor` config) with `fmt="tokens"`, so it resumes by shard like every
step, and adds to `stats.json`: tokens per source (train / val), characters, tokens per character.
With a `mixing` block, the mixture's weights and epochs are checked against the tokens each source
has and written to `mixture.json`; pretraining applies them by sampling windows (no copy).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from ..config.curate import ExecutorConfig, MixingConfig
from ..files import read_json, write_json
from ..run_keys import differences, run_key
from .executor import run_local
from .mixing import mixture_targets
from .pipeline import Doc, Step, Tally
from .readers import ShardReader
from .token_shards import ShardError, shard_meta, summarize, tokenizer_sha256


class Tokenize(Step):
    """Attach `tokens` (ids + EOS, the shard's dtype), `text_tokens` and `split` to every document."""

    name = "tokenize"

    def __init__(self, tokenizer, meta: dict[str, Any]) -> None:
        super().__init__()
        self.backend = tokenizer.backend_tokenizer  # a `tokenizers.Tokenizer`: pickles to the workers
        self.meta = meta
        self.dtype = np.dtype(meta["dtype"])
        self.cutoff = int(meta["val_fraction"] * 2**32)
        self.special = len(self.backend.encode("", add_special_tokens=True).ids)  # what the tokenizer adds (BOS)

    def process(self, batch: list[Doc], tally: Tally) -> list[Doc]:
        encodings = self.backend.encode_batch_fast([d["text"] for d in batch], add_special_tokens=True)
        eos, seed, special, kept = [self.meta["eos_id"]], self.meta["split_seed"], self.special, []
        for doc, enc in zip(batch, encodings, strict=True):
            ids = enc.ids
            if len(ids) <= special:
                tally.drop(doc, "no_tokens")
                continue
            doc["tokens"], doc["text_tokens"] = np.array(ids + eos, self.dtype), len(ids) - special
            held = xxhash.xxh32_intdigest(str(doc["id"]).encode(), seed=seed) < self.cutoff
            doc["split"] = "val" if held else "train"
            kept.append(doc)
        tally.modified("tokenized", len(kept))
        return kept

    def __repr__(self) -> str:
        return f"Tokenize(tokenizer={self.meta['tokenizer_sha256'][:12]}, val_fraction={self.meta['val_fraction']})"


def _stored_fingerprint(out: Path) -> dict | None:
    marker = out / ".state" / "run.json"
    try:
        return read_json(marker).get("fingerprint")
    except (OSError, ValueError):
        return None


def token_mixture(summary: dict, mixing: MixingConfig) -> dict:
    """The mixture over token shards: per source the train tokens it has, its target (weight x
    budget) and the epochs that takes; a source short of data is a `MixingError` (as `mix`)."""
    have = {s: v["train_tokens"] for s, v in summary["sources"].items()}
    targets, norm = mixture_targets(have, mixing.weights, mixing.token_budget, mixing.max_epochs)
    return {"weights": norm, "token_budget": mixing.token_budget, "max_epochs": mixing.max_epochs,
            "sources": {s: {"weight": norm[s], "target_tokens": targets[s], "available_tokens": have[s],
                            "epochs": round(targets[s] / have[s], 4)} for s in sorted(targets)},
            "unused_sources": sorted(set(have) - set(targets))}


def tokenize_corpus(
    files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    tokenizer,
    *,
    val_fraction: float,
    seed: int,
    batch_size: int = 1000,
    executor: ExecutorConfig | None = None,
    reader: ShardReader | None = None,
    mixing: MixingConfig | None = None,
    redo_on_change: bool = False,
) -> dict:
    """Tokenize `files` (curated shards, or any corpus files) into `out_dir/data/` token shards;
    returns (and writes) `out_dir/stats.json` with the `tokens` summary (and `mixture`).
    `redo_on_change`: a folder tokenized from other inputs or by another tokenizer is tokenized
    again (a derived folder: the recipe's), instead of being a `ResumeMismatch` (the curate command's)."""
    from transformers import AutoTokenizer

    if isinstance(tokenizer, (str, os.PathLike)):
        if not Path(tokenizer).is_dir():
            raise FileNotFoundError(f"{tokenizer}: no such tokenizer folder (curate.tokenize.tokenizer)")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ShardError(f"tokenizer {tokenizer.name_or_path!r} is not a fast (Rust) tokenizer: token shards "
                         "need one")
    meta = shard_meta(tokenizer, val_fraction=val_fraction, split_seed=seed)
    paths = [Path(f) for f in files]
    ex = executor or ExecutorConfig(workers=1, progress=False)
    fingerprint = run_key({"tokenizer_sha256": tokenizer_sha256(tokenizer), "val_fraction": val_fraction,
                           "batch_size": batch_size}, seed=seed, inputs=paths)
    stored = _stored_fingerprint(Path(out_dir))
    if redo_on_change and stored is not None and differences(stored, fingerprint):
        ex = ex.model_copy(update={"resume": False})
    common = dict(reader=reader or ShardReader(), fmt="tokens", batch_size=batch_size, resume=ex.resume,
                  fingerprint=fingerprint, progress=ex.progress, writer_meta=meta)
    out = Path(out_dir)
    (out / "stats.json").unlink(missing_ok=True)  # the folder's completion marker: written last, below
    if ex.backend == "ray":
        from .ray_executor import run_ray

        stats = run_ray(paths, [Tokenize(tokenizer, meta)], out, num_cpus=None if ex.ray_address else ex.workers,
                        address=ex.ray_address, **common)
    else:
        stats = run_local(paths, [Tokenize(tokenizer, meta)], out, workers=ex.workers, **common)
    stats["tokens"] = summarize([Path(p) for p in stats["outputs"]]) if stats["outputs"] else {"sources": {}}
    if mixing is not None:
        stats["mixture"] = token_mixture(stats["tokens"], mixing)
        write_json(out / "mixture.json", stats["mixture"])
    else:
        (out / "mixture.json").unlink(missing_ok=True)
    write_json(out / "stats.json", stats)
    return stats
