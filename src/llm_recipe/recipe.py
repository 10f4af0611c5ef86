"""Run a whole recipe, stage by stage, from one config (`llm-recipe run` / `llm-recipe demo`).

Stages: corpus (curated when the recipe has a `curate:` section) -> tokenizer -> pretrain ->
sample, then, for each section the recipe has: sft -> rm -> bon -> dpo -> ppo -> grpo (the RL
stages start from the SFT model; PPO and GRPO score with the recipe's reward model when it has an
`rm:` section). Each stage writes into its own folder under `output_dir` and is skipped when its output is already complete, so re-running
an interrupted recipe continues where it stopped (pretraining resumes from its checkpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .config import RecipeConfig, dump_config
from .files import atomic_write, write_json
from .train.interrupt import StoppedEarly


def _log(msg: str) -> None:
    print(f"[llm-recipe] {msg}", flush=True)


def stage_corpus(cfg: RecipeConfig, out: Path) -> list[Path]:
    """Pretraining documents: explicit files, else the curated corpus, else the raw sample."""
    from .data.sample_corpus import generate_sample_corpus, sample_corpus_files

    if cfg.pretrain.data:
        return list(cfg.pretrain.data)
    if cfg.curate is not None:
        from .data.curate import curate_recipe

        res = curate_recipe(cfg)
        _log(f"curate: {len(res.files)} shards in {res.out_dir} (stats: {res.out_dir / 'stats.json'})")
        return list(res.files)
    corpus_dir = generate_sample_corpus(out / "corpus", cfg.corpus.docs_per_source, cfg.corpus.seed)
    return sample_corpus_files(corpus_dir)


def stage_tokenizer(cfg: RecipeConfig, files: list[Path], out: Path):
    from transformers import AutoTokenizer

    from .models.loading import load_tokenizer
    from .tokenizer.train import train_and_save
    from .train.pretrain import read_documents

    if cfg.model.name_or_path:  # an existing model brings its own tokenizer
        return load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(tok_dir)
    docs, _ = read_documents(files)
    return train_and_save((t for _, t in docs), tok_dir, vocab_size=cfg.tokenizer.vocab_size,
                          min_frequency=cfg.tokenizer.min_frequency, max_chars=cfg.tokenizer.max_chars)


def stage_pretrain(cfg: RecipeConfig, files: list[Path], tokenizer, out: Path) -> Path:
    from .train.pretrain import run_pretraining

    run_dir = out / "pretrain"
    if (run_dir / "model" / "model.safetensors").exists():
        return run_dir / "model"
    res = run_pretraining(data_files=files, tokenizer=tokenizer, model_cfg=cfg.model, cfg=cfg.pretrain,
                          output_dir=run_dir, seed=cfg.seed, resume=True, full_config=cfg)
    if res.stopped_early:
        raise StoppedEarly(f"pretraining stopped at step {res.steps} (checkpoint saved in {run_dir / 'checkpoints'}); "
                           "run the same command again to resume")
    _log(f"pretrain: eval loss {res.initial_eval_loss:.3f} -> {res.final_eval_loss:.3f} in {res.steps} steps")
    return res.model_dir


def stage_sample(cfg: RecipeConfig, model_dir: Path, out: Path) -> Path:
    from .infer.generate import generate_texts
    from .models.loading import load_causal_lm, load_tokenizer

    model, tok = load_causal_lm(model_dir), load_tokenizer(model_dir)
    outs = generate_texts(model, tok, cfg.generate.prompts, cfg.generate, seed=cfg.seed)
    path = out / "samples.jsonl"
    with atomic_write(path) as f:
        for p, o in zip(cfg.generate.prompts, outs, strict=True):
            f.write(json.dumps({"prompt": p, "completion": o}, ensure_ascii=False) + "\n")
            _log(f"sample: {p!r} -> {o!r}")
    return path


def stage_sft(cfg: RecipeConfig, model_dir: Path, out: Path) -> Path:
    """SFT on the pretrained model, then the same prompts sampled before and after (sft/samples.jsonl)."""
    from .train.sft import sft_stage

    return sft_stage(cfg, cfg.sft.init_from or model_dir, out / "sft", log=_log)


def _alignment_stages(cfg: RecipeConfig, sft_dir: Path, out: Path, timed) -> dict[str, str]:
    """The stages after SFT, each only when the recipe has its section; returns their artifacts."""
    arts: dict[str, str] = {}
    rm_dir = None
    if cfg.rm:
        from .train.reward_stage import stage_rm

        rm_dir = timed("rm", stage_rm, cfg, sft_dir, out)
        arts["reward_model"] = str(rm_dir)
    if cfg.bon:
        from .train.reward_stage import stage_bon

        arts["best_of_n_report"] = str(timed("bon", stage_bon, cfg, sft_dir, rm_dir, out))
    if cfg.dpo:
        from .train.dpo_style import stage_dpo

        arts["dpo_model"] = str(timed("dpo", stage_dpo, cfg, sft_dir, out))
    if cfg.ppo:
        from .train.ppo import stage_ppo

        res = timed("ppo", stage_ppo, cfg, sft_dir, rm_dir, out)
        arts["ppo_model"] = str(res.model_dir)
        _log_rl("ppo", res, cfg.ppo.success_prefix)
    if cfg.grpo:
        from .train.grpo import stage_grpo

        res = timed("grpo", stage_grpo, cfg, sft_dir, rm_dir, out)
        arts["grpo_model"] = str(res.model_dir)
        _log_rl("grpo", res, cfg.grpo.success_prefix)
    return arts


def _log_rl(name: str, res, prefix: str | None) -> None:
    b, a = res.before, res.after
    if not a:
        return
    style = f"held-out answers starting with {prefix!r}: {b['success']:.0%} -> {a['success']:.0%}; " if prefix else ""
    _log(f"{name}: {style}reward {b['score']:.2f} -> {a['score']:.2f}; KL to the SFT model {a['kl']:.1f} nats "
         f"({len(res.history)} iterations)")


def run_recipe(cfg: RecipeConfig, log: Callable[[str], None] = _log) -> dict[str, str]:
    """Run every stage; return {artifact name: path}. Writes `recipe.yaml` and `summary.json`."""
    out = Path(cfg.output_dir)
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

    files = timed("corpus", stage_corpus, cfg, out)
    tokenizer = timed("tokenizer", stage_tokenizer, cfg, files, out)
    model_dir = timed("pretrain", stage_pretrain, cfg, files, tokenizer, out)
    samples = timed("sample", stage_sample, cfg, model_dir, out)
    sft_dir = timed("sft", stage_sft, cfg, model_dir, out) if cfg.sft else None
    aligned = _alignment_stages(cfg, sft_dir, out, timed) if sft_dir else {}
    artifacts = {
        "config": str(out / "recipe.yaml"),
        "corpus": str(Path(files[0]).parent),
        "tokenizer": str(out / "tokenizer") if not cfg.model.name_or_path else cfg.model.name_or_path,
        "pretrained_model": str(model_dir),
        "pretrain_metrics": str(out / "pretrain" / "metrics.jsonl"),
        "samples": str(samples),
        **({"sft_model": str(sft_dir), "sft_samples": str(out / "sft" / "samples.jsonl")} if sft_dir else {}),
        **aligned,
    }
    from .report.headline import format_headline, headline_results

    results = headline_results(out)
    for line in format_headline(results):
        log(line)
    write_json(out / "summary.json", {"artifacts": artifacts, "results": results, "seconds": timings,
                                      "total_seconds": round(time.perf_counter() - t0, 1)})
    return artifacts
