"""Stage 2a: the tokenizer. A model named by `model.name_or_path` brings its own; otherwise a
byte-level BPE is trained on the corpus (once: a finished `tokenizer/` is reused)."""

from __future__ import annotations

from pathlib import Path

from .. import distributed
from ..config import RecipeConfig
from ..models.loading import load_tokenizer
from ..tokenizer.train import train_and_save
from ..train.pretrain import read_documents


def stage_tokenizer(cfg: RecipeConfig, files: list[Path], out: Path):
    if cfg.model.name_or_path:  # an existing model brings its own tokenizer
        return load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tok_dir)
    return distributed.on_main(_train, cfg, files, tok_dir)  # trained once, on the main process


def _train(cfg: RecipeConfig, files: list[Path], tok_dir: Path):
    docs, _ = read_documents(files)
    return train_and_save((t for _, t in docs), tok_dir, vocab_size=cfg.tokenizer.vocab_size,
                          min_frequency=cfg.tokenizer.min_frequency, max_chars=cfg.tokenizer.max_chars)
