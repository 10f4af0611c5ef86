"""Run a whole recipe, stage by stage, from one config (`llm-recipe run` / `llm-recipe demo`).

This module only sequences the stages (`llm_recipe.stages`), each only when the recipe has its
section: import (a GGUF `model.name_or_path`), then corpus (curated when the recipe has a
`curate:` section) -> tokenizer -> pretrain -> sample when it pretrains, then sft -> constitutional -> rm -> bon ->
dpo -> online_dpo -> ppo -> grpo -> eval, and last the run's report.html. The stages after SFT start from the SFT model, or, without SFT, from the model
the recipe starts from (pretrained, or `model.name_or_path`); PPO and GRPO score with the recipe's
reward model when it has an `rm:` section. Each stage writes into its own folder under
`output_dir` and is skipped when its output is already complete, so re-running an interrupted
recipe continues where it stopped (training stages resume from their checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from . import console, distributed
from .config import RecipeConfig, dump_config
from .files import atomic_write, write_json
from .report.headline import format_headline, headline_results
from .report.html import write_report
from .stages.bon import stage_bon
from .stages.corpus import stage_corpus
from .stages.dpo import stage_dpo
from .stages.eval import stage_eval
from .stages.model_import import needs_import, stage_import
from .stages.online_dpo import stage_online_dpo
from .stages.prefs import stage_constitutional
from .stages.pretrain import stage_pretrain, stage_sample
from .stages.reward import stage_rm
from .stages.rl import stage_grpo, stage_ppo, stage_rl
from .stages.sft import stage_sft
from .stages.tokenizer import stage_tokenizer


def _alignment_stages(cfg: RecipeConfig, sft_dir: Path, out: Path, timed) -> dict[str, str]:
    """The stages after SFT, each only when the recipe has its section; returns their artifacts."""
    arts: dict[str, str] = {}
    rm_dir = None
    if cfg.constitutional:
        arts["constitutional"] = str(timed("constitutional", stage_constitutional, cfg, sft_dir, out))
    if cfg.rm:
        rm_dir = timed("rm", stage_rm, cfg, sft_dir, out)
        arts["reward_model"] = str(rm_dir)
    if cfg.bon:
        arts["best_of_n_report"] = str(timed("bon", stage_bon, cfg, sft_dir, rm_dir, out))
    if cfg.dpo:
        arts["dpo_model"] = str(timed("dpo", stage_dpo, cfg, sft_dir, out))
    if cfg.online_dpo:
        arts["online_dpo_model"] = str(timed("online_dpo", stage_online_dpo, cfg, sft_dir, rm_dir, out))
    if cfg.ppo:
        res = timed("ppo", stage_ppo, cfg, sft_dir, rm_dir, out)
        arts["ppo_model"] = str(res.model_dir)
        _log_rl("ppo", res, cfg.ppo.success_prefix)
    if cfg.grpo:
        res = timed("grpo", stage_grpo, cfg, sft_dir, rm_dir, out)
        arts["grpo_model"] = str(res.model_dir)
        _log_rl("grpo", res, cfg.grpo.success_prefix)
    for kind in ("rloo", "reinforce_pp"):  # the other algorithms of train.rl_algorithms
        if getattr(cfg, kind):
            res = timed(kind, stage_rl, cfg, kind, sft_dir, rm_dir, out)
            arts[f"{kind}_model"] = str(res.model_dir)
            _log_rl(kind, res, getattr(cfg, kind).success_prefix)
    return arts


def _log_rl(name: str, res, prefix: str | None) -> None:
    b, a = res.before, res.after
    if not a:
        return
    style = f"held-out answers starting with {prefix!r}: {b['success']:.0%} -> {a['success']:.0%}; " if prefix else ""
    sources = "".join(f"{k.split('/')[1]} {b[k]:.2f} -> {a[k]:.2f}; " for k in a
                      if k.startswith("rewards/") and k.endswith("/mean") and k in b)  # each reward source
    console.log(f"{name}: {style}{sources}reward {b['score']:.2f} -> {a['score']:.2f}; KL to the SFT model "
                f"{a['kl']:.1f} nats ({len(res.history)} iterations)")


def run_recipe(cfg: RecipeConfig, log: Callable[[str], None] = console.log) -> dict[str, str]:
    """Run every stage; return {artifact name: path}. Writes `recipe.yaml` and `summary.json`."""
    out = Path(cfg.output_dir)
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "recipe.yaml") as f:
            f.write(dump_config(cfg))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        t = time.perf_counter()
        log(f"stage {name} ...")
        res = fn(*args)
        timings[name] = round(time.perf_counter() - t, 1)
        return res

    if needs_import(cfg):
        cfg = timed("import", stage_import, cfg, out)
    artifacts = {"config": str(out / "recipe.yaml")}
    if cfg.pretrain is not None:
        files = timed("corpus", stage_corpus, cfg, out)
        tokenizer = timed("tokenizer", stage_tokenizer, cfg, files, out)
        start = timed("pretrain", stage_pretrain, cfg, files, tokenizer, out)
        samples = timed("sample", stage_sample, cfg, start, out)
        artifacts.update({
            "corpus": str(Path(files[0]).parent),
            "tokenizer": str(out / "tokenizer") if not cfg.model.name_or_path else cfg.model.name_or_path,
            "pretrained_model": str(start), "pretrain_metrics": str(out / "pretrain" / "metrics.jsonl"),
            "samples": str(samples)})
    else:
        start = cfg.model.name_or_path
        artifacts["start_model"] = str(start)
    sft_dir = timed("sft", stage_sft, cfg, cfg.sft.init_from or start, out / "sft") if cfg.sft else None
    if sft_dir:
        artifacts.update({"sft_model": str(sft_dir), "sft_samples": str(out / "sft" / "samples.jsonl")})
    artifacts.update(_alignment_stages(cfg, sft_dir or start, out, timed))
    if cfg.eval:
        artifacts["eval_report"] = str(timed("eval", stage_eval, cfg, dict(artifacts), out))
    if distributed.is_main():
        results = headline_results(out)
        for line in format_headline(results):
            log(line)
        write_json(out / "summary.json", {"artifacts": artifacts, "results": results, "seconds": timings,
                                          "total_seconds": round(time.perf_counter() - t0, 1)})
        artifacts["report"] = str(write_report(out))
        log(f"report: {artifacts['report']}")
    distributed.barrier()
    return artifacts
