"""Stage 2a': the curated corpus as token shards, with the recipe's tokenizer.

    stage_token_data(cfg, files, tokenizer, out)   `pretrain.token_data`; else, when the recipe curates
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


def stage_token_data(cfg: RecipeConfig, files: list[Path], tokenizer, out: Path) -> Path | None:
    if cfg.pretrain.token_data:
        return Path(cfg.pretrain.token_data)
    if cfg.curate is None or cfg.curate.tokenize is None or cfg.pretrain.data:
        return None
    return distributed.on_main(_tokenize, cfg, files, tokenizer, out)


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
