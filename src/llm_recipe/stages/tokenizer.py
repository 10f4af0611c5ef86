"""Stage 2a: the tokenizer. A model named by `model.name_or_path` brings its own; otherwise a
byte-level BPE is trained on the corpus (once: a complete `tokenizer/` of the same corpus and settings
is reused; a corpus with no usable documents is an error, not a tokenizer trained on nothing)."""

from __future__ import annotations

from pathlib import Path

from .. import distributed
from ..config import PretrainConfig, RecipeConfig
from ..files import is_complete, write_complete
from ..models.loading import load_tokenizer
from ..provenance import input_hash
from ..tokenizer.train import train_and_save
from ..train.pretrain import usable_documents


def stage_tokenizer(cfg: RecipeConfig, files: list[Path], out: Path):
    if cfg.model.name_or_path:  # an existing model brings its own tokenizer
        return load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
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
