"""Stage 2a: the tokenizer. A model named by `model.name_or_path` brings its own; otherwise a
byte-level BPE is trained on the corpus (once: a complete `tokenizer/` of the same corpus and settings
is reused; a corpus with no usable documents is an error, not a tokenizer trained on nothing)."""

from __future__ import annotations

from pathlib import Path

from .. import console, distributed
from ..config import PretrainConfig, RecipeConfig
from ..data.token_shards import tokenizer_sha256
from ..files import is_complete, write_complete
from ..models.loading import load_tokenizer
from ..provenance import input_hash
from ..tokenizer.extend import extend_and_save
from ..tokenizer.train import train_and_save
from ..train.pretrain import usable_documents
from .tokens import shards_tokenizer


def stage_tokenizer(cfg: RecipeConfig, files: list[Path], out: Path):
    if cfg.model.name_or_path:  # an existing model brings its own tokenizer (extended, if asked)
        tok = load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
        return _extended(cfg, files, tok, out) if cfg.tokenizer.extend else tok
    if cfg.pretrain is not None and cfg.pretrain.token_data:  # a preset model on given shards: their tokenizer
        return shards_tokenizer(cfg.pretrain.token_data)
    tok_dir = out / "tokenizer"
    # what it was trained on: a tokenizer of other data or settings is trained again, not reused
    key = {"inputs": {str(f): input_hash(f) for f in files}, "tokenizer": cfg.tokenizer.model_dump(mode="json")}
    if is_complete(tok_dir, {"key": key}):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tok_dir)
    return distributed.on_main(_train, cfg, files, tok_dir, key)  # trained once, on the main process


def _train(cfg: RecipeConfig, files: list[Path], tok_dir: Path, key: dict):
    max_bad = cfg.pretrain.max_bad_records if cfg.pretrain else PretrainConfig().max_bad_records
    docs, _ = usable_documents(files, max_bad)  # a failed read leaves no tokenizer trained on nothing
    trained = []
    write_complete(tok_dir, lambda d: trained.append(train_and_save(
        (t for _, t in docs), d, vocab_size=cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
        max_chars=cfg.tokenizer.max_chars)), info={"key": key})
    return trained[0]


def _extended(cfg: RecipeConfig, files: list[Path], base, out: Path):
    """The model's tokenizer with tokens learned from the corpus (`tokenizer/extend.py`), made once."""
    tok_dir = out / "tokenizer"
    key = {"inputs": {str(f): input_hash(f) for f in files}, "extend": cfg.tokenizer.extend.model_dump(mode="json"),
           "base": tokenizer_sha256(base)}
    if is_complete(tok_dir, {"key": key}):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tok_dir)
    return distributed.on_main(_extend, cfg, files, base, tok_dir, key)


def _extend(cfg: RecipeConfig, files: list[Path], base, tok_dir: Path, key: dict):
    max_bad = cfg.pretrain.max_bad_records if cfg.pretrain else PretrainConfig().max_bad_records
    docs, _ = usable_documents(files, max_bad)
    e, made = cfg.tokenizer.extend, []
    write_complete(tok_dir, lambda d: made.append(extend_and_save(
        base, (t for _, t in docs), d, new_tokens=e.new_tokens, min_frequency=e.min_frequency,
        max_chars=e.max_chars)), info={"key": key})
    info = made[0][1]
    console.log(f"tokenizer: {info['added']} tokens added to {len(base)} (learned from "
                f"{info['trained_on_chars']:,} characters; {info['used_on_corpus']} occur in the encoded corpus)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)  # from its final folder (`extension.json` is found there)
