"""Stage 1: the pretraining corpus (curated, given, or the bundled sample).

    run(ctx)                    pretraining files: `pretrain.data`, else the curated corpus (when the
                                recipe has `curate:`), else the bundled sample corpus
    curate_recipe(cfg)          `curate()` over `curate.input.paths`, or the bundled sample corpus
                                (with labelled noise when `sample_noise_per_type` > 0), into
                                `<output_dir>/curated`: what `llm-recipe curate` and the recipe call
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import console, distributed
from ..config import RecipeConfig
from ..data.curate import CurateResult, curate
from ..demo.noisy_corpus import generate_noisy_corpus
from ..demo.sample_corpus import generate_sample_corpus, sample_corpus_files
from ..demo.web_pages import write_web_sample
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def key(ctx: RunContext) -> dict:
    cfg = ctx.cfg
    given = list(cfg.pretrain.data) if cfg.pretrain is not None and cfg.pretrain.data else []
    curate_inputs = list(cfg.curate.input.paths) if cfg.curate is not None and not given else []
    return stage_key(ctx, {"curate": cfg.curate.model_dump(mode="json") if cfg.curate and not given else None,
                           "corpus": cfg.corpus.model_dump(mode="json")}, inputs=[*given, *curate_inputs])


def run(ctx: RunContext) -> Artifacts:
    """Pretraining documents: explicit files, else the curated corpus, else the raw sample (made
    on the main process; every process gets the file list)."""
    files = distributed.on_main(_corpus_files, ctx.cfg, ctx.out)
    return {"corpus": str(Path(files[0]).parent) if files else str(ctx.out), "corpus_files": [str(f) for f in files]}


def _corpus_files(cfg: RecipeConfig, out: Path) -> list[Path]:
    if cfg.pretrain is not None and cfg.pretrain.data:
        return list(cfg.pretrain.data)
    if cfg.curate is not None:
        res = curate_recipe(cfg)
        console.log(f"curate: {len(res.files)} shards in {res.out_dir} (stats: {res.out_dir / 'stats.json'})")
        return list(res.files)
    corpus_dir = generate_sample_corpus(out / "corpus", cfg.corpus.docs_per_source, cfg.corpus.seed)
    return sample_corpus_files(corpus_dir)


def curate_recipe(recipe_cfg: RecipeConfig, out_dir: str | os.PathLike | None = None) -> CurateResult:
    """Curate per `recipe_cfg.curate` into `<output_dir>/curated` (what the corpus stage calls)."""
    if recipe_cfg.curate is None:
        raise FileNotFoundError("the config has no 'curate:' section")
    out = Path(out_dir) if out_dir is not None else Path(recipe_cfg.output_dir) / "curated"
    cfg = recipe_cfg.curate
    inputs = list(cfg.input.paths) or sample_inputs(recipe_cfg, out)
    return curate(cfg, out, inputs=inputs, seed=recipe_cfg.seed)


def sample_inputs(recipe_cfg: RecipeConfig, work_dir: str | os.PathLike) -> list[Path]:
    """The bundled sample corpus as curation input, with labelled noise if configured."""
    c, n = recipe_cfg.corpus, recipe_cfg.curate.input.sample_noise_per_type
    # the synthetic crawl (source "crawl"): WARC pages for the web steps
    web = [write_web_sample(Path(work_dir) / "web_sample", seed=c.seed)] if recipe_cfg.curate.input.sample_web else []
    if n == 0:
        return sample_corpus_files(generate_sample_corpus(docs_per_source=c.docs_per_source, seed=c.seed)) + web
    out = generate_noisy_corpus(Path(work_dir) / "noisy_sample", docs_per_source=c.docs_per_source,
                                per_type=n, seed=c.seed)
    return sorted((out / "shards").glob("*.jsonl")) + web


def needs_corpus(cfg: RecipeConfig) -> bool:
    """Pretraining on documents (not only on given token shards)."""
    return cfg.pretrain is not None and not (cfg.pretrain.token_data and not cfg.pretrain.data)


STAGE = Stage("corpus", run, key, needs_corpus)
