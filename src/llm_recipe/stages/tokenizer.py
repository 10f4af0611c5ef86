"""Stage 2a: the tokenizer. A model named by `model.name_or_path` brings its own; otherwise a
byte-level BPE is trained on the corpus (once: the stage marker keys it by the corpus files' content
and the tokenizer settings; a corpus with no usable documents is an error, not a tokenizer trained
on nothing)."""

from __future__ import annotations

from pathlib import Path

from .. import distributed
from ..config import PretrainConfig, RecipeConfig
from ..files import write_complete
from ..models.loading import load_tokenizer
from ..tokenizer.train import train_and_save
from ..train.pretrain import usable_documents
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def key(ctx: RunContext) -> dict:
    if ctx.cfg.model.name_or_path:
        return stage_key(ctx, {"model": ctx.cfg.model.name_or_path}, models={"model": ctx.cfg.model.name_or_path})
    return stage_key(ctx, ctx.cfg.tokenizer, inputs=ctx.artifacts["corpus_files"])


def run(ctx: RunContext) -> Artifacts:
    if ctx.cfg.model.name_or_path:  # an existing model brings its own tokenizer
        return {"tokenizer": ctx.cfg.model.name_or_path}
    tok_dir = ctx.out / "tokenizer"
    distributed.on_main(_train, ctx.cfg, [Path(f) for f in ctx.artifacts["corpus_files"]], tok_dir)  # main process only
    return {"tokenizer": str(tok_dir)}


def load(ctx: RunContext):
    """The run's tokenizer (the trained one, or the starting model's)."""
    return load_tokenizer(ctx.artifacts["tokenizer"], ctx.cfg.model.trust_remote_code)


def _train(cfg: RecipeConfig, files: list[Path], tok_dir: Path) -> None:
    max_bad = cfg.pretrain.max_bad_records if cfg.pretrain else PretrainConfig().max_bad_records
    docs, _ = usable_documents(files, max_bad)  # a failed read leaves no tokenizer trained on nothing
    write_complete(tok_dir, lambda d: train_and_save(
        (t for _, t in docs), d, vocab_size=cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
        max_chars=cfg.tokenizer.max_chars))


STAGE = Stage("tokenizer", run, key, lambda cfg: cfg.pretrain is not None)
