"""`llm-recipe curate annotate-quality`: a judge scores a sample of documents 0-5, a regressor learns
its scores, and its agreement with the judge on held-out documents is reported (FineWeb-Edu's
recipe; the components are `data.quality.grading` and `data.quality.learned`).

    annotate_quality_recipe(cfg, out_dir=None, judge_model=None) -> report dict
Documents: `curate.quality.annotate.inputs`, else the curated corpus of this output dir
(`<output_dir>/curated/data`) when there is one, else the curation inputs (or the bundled sample,
with its noise and web pages as configured), web pages extracted and every text normalized as
curation would. Judge: `local` (a causal LM directory, `judge_model` / `--judge-model`), or an
OpenAI-compatible endpoint (`judge: {base_url, model, api_key_env, ...}`: its requests concurrent,
its answers cached in `judge_cache.jsonl` so a rerun asks nothing again); any object with the
`Grader` interface can be passed to `data.quality.learned.annotate_quality` directly. Output: `<output_dir>/quality_annotation/`
(annotations.jsonl, regressor/, report.json, judge_cache.jsonl); `curate.quality.learned.model` then points at
`regressor/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..config import ConfigError, JudgeEndpointConfig, RecipeConfig
from ..data.normalize import Normalize
from ..data.pipeline import run_steps
from ..data.quality.grading import CausalLMGrader, ChatGrader
from ..data.quality.learned import annotate_quality
from ..data.readers import ShardReader, list_shards
from ..data.web.extract import Extract
from ..preference.text_judge import chat_backend
from ..seeds import seed_for
from .corpus import sample_inputs


def _documents(recipe_cfg: RecipeConfig, paths: list[Path], prepare: bool) -> Iterator[dict]:
    cur = recipe_cfg.curate
    reader = ShardReader(cur.input.text_key, cur.input.id_key, cur.input.default_source, cur.input.text_unit)
    steps = [Extract(cur.web.extract), Normalize(cur.normalize)] if prepare else []
    for shard in list_shards(paths):
        batch = [d for d in reader.read(shard) if isinstance(d, dict)]
        for i in range(0, len(batch), 256):
            yield from run_steps(steps, batch[i : i + 256]).kept if steps else batch[i : i + 256]


def annotate_quality_recipe(recipe_cfg: RecipeConfig, out_dir: str | os.PathLike | None = None,
                            judge_model: str | os.PathLike | None = None) -> dict:
    if recipe_cfg.curate is None:
        raise ConfigError("annotate-quality needs the config's 'curate:' section")
    cfg = recipe_cfg.curate.quality.annotate
    root = Path(recipe_cfg.output_dir)
    curated = root / "curated" / "data"
    if cfg.inputs:
        paths, prepare = list(cfg.inputs), True
    elif curated.is_dir() and any(curated.iterdir()):
        paths, prepare = [curated], False
    else:
        paths, prepare = list(recipe_cfg.curate.input.paths) or sample_inputs(recipe_cfg, root / "curated"), True
    out = Path(out_dir) if out_dir is not None else root / "quality_annotation"
    grader, judge_name = _grader(cfg, recipe_cfg.compute, judge_model, out)
    report = annotate_quality(_documents(recipe_cfg, paths, prepare), grader, cfg, out,
                              seed=seed_for("quality_annotation", recipe_cfg.seed))
    return {**report, "judge_model": judge_name, "inputs": [str(p) for p in paths], "out_dir": str(out)}


def _grader(cfg, compute, judge_model, out: Path) -> tuple[object, str]:
    """The judge: an endpoint (`judge: {base_url, model, ...}`, checked before any document is read,
    answers cached in `<out>/judge_cache.jsonl`) or a local causal LM (`judge_model` / `--judge-model`)."""
    if isinstance(cfg.judge, JudgeEndpointConfig) and judge_model is None:
        backend = chat_backend(cfg.judge, compute, out / "judge_cache.jsonl")  # checked: it serves the model
        return ChatGrader(name=backend.name, complete_many=lambda ms: [c.text for c in backend.chat(ms)]), backend.name
    if cfg.judge != "local" and judge_model is None:
        raise ConfigError(f"curate.quality.annotate.judge={cfg.judge!r}: 'local' (a causal LM: judge_model) or an "
                          "endpoint ({base_url, model, ...})")
    path = judge_model or cfg.judge_model
    if path is None:
        raise ConfigError("annotate-quality: no judge model (--judge-model DIR or curate.quality.annotate.judge_model)")
    from ..models.loading import load_causal_lm, load_tokenizer

    return CausalLMGrader(load_causal_lm(path), load_tokenizer(path), batch_size=cfg.batch_size), str(path)
