"""Run a whole recipe, stage by stage, from one config (`llm-recipe run` / `llm-recipe demo`), and
the stages a single command needs (`run_stages`).

`STAGES` is the recipe's order: import (a GGUF `model.name_or_path`), then corpus (curated when the
recipe has a `curate:` section) -> tokenizer -> tokens -> pretrain -> sample when it pretrains, then sft ->
constitutional -> rm -> bon -> dpo -> online_dpo -> ppo -> grpo -> eval, each only when the recipe
has its section, and last the run's report.html. Every stage is `run(ctx) -> Artifacts`, called
through `stages.contract.run_stage` (one lock, one completion marker keyed by settings and inputs);
the model each starts from is `RunContext.start_model`'s one rule. Re-running an interrupted recipe
continues where it stopped: finished stages are reused, training stages resume from their checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import console, distributed
from .config import RecipeConfig, dump_config
from .files import atomic_write, write_json
from .report.headline import format_headline, headline_results
from .report.html import write_report
from .stages import (
    bon,
    corpus,
    dpo,
    eval,
    model_import,
    online_dpo,
    prefs,
    pretrain,
    reward,
    rl,
    sft,
    tokenizer,
    tokens,
)
from .stages.context import Artifacts, RunContext
from .stages.contract import Stage, run_stage

STAGES: list[Stage] = [model_import.STAGE, corpus.STAGE, tokenizer.STAGE, tokens.STAGE, pretrain.STAGE, pretrain.SAMPLE,
                       sft.STAGE, prefs.CONSTITUTIONAL, reward.STAGE, bon.STAGE, dpo.STAGE, online_dpo.STAGE,
                       rl.PPO, rl.GRPO, eval.STAGE]
BY_NAME = {s.name: s for s in STAGES}
# what a single command runs before its stage: the corpus and tokenizer for pretraining
NEEDS = {"tokenizer": ("corpus",), "tokens": ("corpus", "tokenizer"), "pretrain": ("corpus", "tokenizer", "tokens"),
         "sample": ("corpus", "tokenizer", "tokens", "pretrain")}


def _start(ctx: RunContext) -> None:
    """The model the recipe starts from when it does not pretrain (imported first when it is GGUF)."""
    if model_import.needs_import(ctx.cfg):
        run_stage(ctx, model_import.STAGE)
    if ctx.cfg.pretrain is None and ctx.cfg.model.name_or_path and "start_model" not in ctx.artifacts:
        ctx.add({"start_model": ctx.cfg.model.name_or_path})


def run_stages(ctx: RunContext, target: str) -> Artifacts:
    """What one command runs: the import of the starting model, the stages `target` needs that
    the run has not finished (SFT without a starting model: the recipe's pretraining), then `target`.
    Returns every artifact of the context."""
    _start(ctx)
    needs = list(NEEDS.get(target, ()))
    if target == "sft" and ctx.start_model("sft", ctx.cfg.sft) is None and ctx.cfg.pretrain is not None:
        needs = list(NEEDS["pretrain"]) + ["pretrain"]
    for name in needs:
        if BY_NAME[name].enabled(ctx.cfg):
            run_stage(ctx, BY_NAME[name])
    run_stage(ctx, BY_NAME[target])
    return ctx.artifacts


def run_recipe(cfg: RecipeConfig, log: Callable[[str], None] = console.log) -> Artifacts:
    """Run every stage; return {artifact name: path}. Writes `recipe.yaml` and `summary.json`."""
    ctx = RunContext(cfg)
    out = ctx.out
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "recipe.yaml") as f:
            f.write(dump_config(cfg))
    t0 = time.perf_counter()
    ctx.add({"config": str(out / "recipe.yaml")})
    _start(ctx)
    for stage in STAGES[1:]:
        if stage.enabled(ctx.cfg):
            run_stage(ctx, stage)
    artifacts = {k: v for k, v in ctx.artifacts.items() if k != "corpus_files"}
    if distributed.is_main():
        results = headline_results(out)
        for line in format_headline(results):
            log(line)
        write_json(out / "summary.json", {"artifacts": artifacts, "results": results, "seconds": ctx.timings,
                                          "total_seconds": round(time.perf_counter() - t0, 1)})
        artifacts["report"] = str(write_report(out))
        log(f"report: {artifacts['report']}")
    distributed.barrier()
    return artifacts
