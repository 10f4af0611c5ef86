"""Stage 2a': the curated corpus as token shards, with the recipe's tokenizer.

    STAGE (tokens)                                 `pretrain.token_data`; else, when the recipe curates
                                                   with `curate.tokenize`, the curated files tokenized
                                                   into `<output_dir>/curated/tokens` (on the main
                                                   process; resumes by shard; tokenized again when the
                                                   corpus or the tokenizer changed); else None (the
                                                   pretrain stage tokenizes its documents itself)
    shards_tokenizer(token_data)                   the tokenizer a shard folder was written with (its
                                                   headers name the folder; checked by sha256)
"""

from __future__ import annotations

from pathlib import Path

from .. import console, distributed
from ..config import RecipeConfig
from ..data.token_shards import TokenShards
from ..data.tokenize import tokenize_corpus
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def needs_tokens(cfg: RecipeConfig) -> bool:
    """Pretraining on shards that are not its own: given ones, or the curated corpus tokenized by
    `curate.tokenize` (otherwise the pretrain stage tokenizes its documents itself)."""
    if cfg.pretrain is None:
        return False
    return bool(cfg.pretrain.token_data) or (cfg.curate is not None and cfg.curate.tokenize is not None
                                             and not cfg.pretrain.data)


def key(ctx: RunContext) -> dict:
    from ..train.run_folder import tokenizer_hash
    from . import tokenizer as tokenizer_stage

    cfg = ctx.cfg
    if cfg.pretrain.token_data:
        return stage_key(ctx, {"token_data": str(cfg.pretrain.token_data)})
    return stage_key(ctx, cfg.curate.tokenize, inputs=ctx.artifacts["corpus_files"],
                     mixing=cfg.curate.mixing.model_dump(mode="json") if cfg.curate.mixing else None,
                     tokenizer=tokenizer_hash(tokenizer_stage.load(ctx)))


def run(ctx: RunContext) -> Artifacts:
    """`pretrain.token_data`, or the curated files tokenized into `<run>/curated/tokens`."""
    from . import tokenizer as tokenizer_stage

    if ctx.cfg.pretrain.token_data:
        return {"token_data": str(ctx.cfg.pretrain.token_data)}
    files = [Path(f) for f in ctx.artifacts["corpus_files"]]
    return {"token_data": str(distributed.on_main(_tokenize, ctx.cfg, files, tokenizer_stage.load(ctx), ctx.out))}


def _tokenize(cfg: RecipeConfig, files: list[Path], tokenizer, out: Path) -> Path:
    t, token_dir = cfg.curate.tokenize, out / "curated" / "tokens"
    stats = tokenize_corpus(files, token_dir, t.tokenizer or tokenizer, val_fraction=t.val_fraction,
                            seed=cfg.seed, batch_size=t.batch_size, executor=cfg.curate.executor,
                            mixing=cfg.curate.mixing, redo_on_change=True)
    total = stats["tokens"].get("total", {})
    console.log(f"tokenize: {total.get('tokens', 0):,} tokens in {len(stats['outputs'])} shards "
                f"({total.get('tokens_per_char')} tokens per character) -> {token_dir}")
    return token_dir


def shards_tokenizer(token_data: Path):
    """Pretraining a preset model on given shards: their tokenizer, from the folder their headers name."""
    from transformers import AutoTokenizer

    shards = TokenShards(token_data)
    where = Path(shards.meta.get("tokenizer") or "")
    if not (where / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{shards.headers[0]}: its tokenizer {str(where)!r} is not a tokenizer folder here; "
                                "set model.name_or_path to a model with that tokenizer")
    tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    shards.require_tokenizer(tok)
    return tok


STAGE = Stage("tokens", run, key, needs_tokens)
