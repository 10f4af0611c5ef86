"""Stage 2a: the tokenizer. A model named by `model.name_or_path` brings its own (extended with
tokens learned from the corpus when `tokenizer.extend` says so: `tokenizer/extend.py`); a preset
model on given token shards uses the tokenizer their headers name; otherwise a byte-level BPE is
trained on the corpus. Made once: the stage marker keys it by the corpus files' content and the
settings; a corpus with no usable documents is an error, not a tokenizer trained on nothing."""

from __future__ import annotations

from pathlib import Path

from .. import console, distributed
from ..config import PretrainConfig, RecipeConfig
from ..data.token_shards import tokenizer_sha256
from ..files import write_complete
from ..models.loading import load_tokenizer
from ..tokenizer.extend import extend_and_save
from ..tokenizer.train import train_and_save
from ..train.pretrain import usable_documents
from .context import Artifacts, RunContext
from .contract import Stage, stage_key
from .tokens import shards_tokenizer


def key(ctx: RunContext) -> dict:
    cfg = ctx.cfg
    if cfg.model.name_or_path and not cfg.tokenizer.extend:
        return stage_key(ctx, {"model": cfg.model.name_or_path}, models={"model": cfg.model.name_or_path})
    if cfg.model.name_or_path:
        return stage_key(ctx, {"extend": cfg.tokenizer.extend.model_dump(mode="json")},
                         inputs=ctx.artifacts.get("corpus_files") or [], models={"model": cfg.model.name_or_path})
    if cfg.pretrain is not None and cfg.pretrain.token_data:
        return stage_key(ctx, {"token_data": str(cfg.pretrain.token_data)})
    return stage_key(ctx, cfg.tokenizer, inputs=ctx.artifacts["corpus_files"])


def run(ctx: RunContext) -> Artifacts:
    cfg, tok_dir = ctx.cfg, ctx.out / "tokenizer"
    if cfg.model.name_or_path and not cfg.tokenizer.extend:  # an existing model brings its own tokenizer
        return {"tokenizer": cfg.model.name_or_path}
    files = [Path(f) for f in ctx.artifacts.get("corpus_files") or []]
    if cfg.model.name_or_path:  # ... extended with tokens learned from the corpus
        base = load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
        distributed.on_main(_extend, cfg, files, base, tok_dir)
        return {"tokenizer": str(tok_dir)}
    if cfg.pretrain is not None and cfg.pretrain.token_data:  # a preset model on given shards: their tokenizer
        return {"tokenizer": str(shards_tokenizer(cfg.pretrain.token_data).name_or_path)}
    distributed.on_main(_train, cfg, files, tok_dir)  # trained once, on the main process
    return {"tokenizer": str(tok_dir)}


def load(ctx: RunContext):
    """The run's tokenizer (trained, extended, the shards' or the starting model's)."""
    return load_tokenizer(ctx.artifacts["tokenizer"], ctx.cfg.model.trust_remote_code)


def _documents(cfg: RecipeConfig, files: list[Path]):
    max_bad = cfg.pretrain.max_bad_records if cfg.pretrain else PretrainConfig().max_bad_records
    return usable_documents(files, max_bad)[0]  # a failed read leaves no tokenizer trained on nothing


def _train(cfg: RecipeConfig, files: list[Path], tok_dir: Path) -> None:
    docs = _documents(cfg, files)
    write_complete(tok_dir, lambda d: train_and_save(
        (t for _, t in docs), d, vocab_size=cfg.tokenizer.vocab_size, min_frequency=cfg.tokenizer.min_frequency,
        max_chars=cfg.tokenizer.max_chars))


def _extend(cfg: RecipeConfig, files: list[Path], base, tok_dir: Path) -> None:
    docs, e, made = _documents(cfg, files), cfg.tokenizer.extend, []
    write_complete(tok_dir, lambda d: made.append(extend_and_save(
        base, (t for _, t in docs), d, new_tokens=e.new_tokens, min_frequency=e.min_frequency,
        max_chars=e.max_chars)), info={"base": tokenizer_sha256(base)})
    info = made[0][1]
    console.log(f"tokenizer: {info['added']} tokens added to {len(base)} (learned from "
                f"{info['trained_on_chars']:,} characters; {info['used_on_corpus']} occur in the encoded corpus)")


STAGE = Stage("tokenizer", run, key, lambda cfg: cfg.pretrain is not None)
