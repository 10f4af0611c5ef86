"""Stage 3: SFT, with the before/after evidence a person looks at.

    run(ctx)                    fine-tune the starting model (`RunContext.start_model`; resumes
                                from its checkpoint, a finished model of the same run is reused),
                                then the demo prompts sampled with the base and the SFT model
                                (`samples.jsonl`) and format following on held-out prompts before
                                and after (`format_following.json`); redone whenever the model is
    sft_stats(cfg, tokenizer)   what `llm-recipe sft-stats` prints: coverage, skipped/modified
                                records, padding waste
Data: `sft.data` files, or the bundled set (`demo.sft_set`, also written to `bundled_sft.jsonl`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import console, distributed
from ..config import RecipeConfig, SamplingConfig, SFTConfig
from ..demo.sft_set import sft_records
from ..eval.format_following import dedupe_prompts, format_following, held_out_prompts
from ..files import write_json, write_jsonl
from ..infer.generate import generate_chat
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..record_sources import check_skips
from ..tokenizer.chat_formats import resolve_chat_format
from ..train.interrupt import StoppedEarly
from ..train.run_folder import prepare_run, run_key
from ..train.sft import load_sft_data, run_sft
from ..train.sft_coverage import coverage_report
from ..train.sft_data import pack_examples, padding_report
from .context import Artifacts, RunContext
from .contract import Stage, stage_key
from .hh import hh_key, hh_set_path, hh_sft_data, starting_model

# A measurement, not a demo: greedy, with the default repetition penalty against greedy loops.
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=128, repetition_penalty=1.1)


def _inputs(cfg: RecipeConfig) -> list:
    data = cfg.sft.data
    return [] if data == "bundled" else [hh_set_path(cfg)] if data == "hh" else data


def _run_key(ctx: RunContext, base: str, inputs: list | None = None) -> dict:
    return run_key(ctx.cfg.sft, seed=ctx.cfg.seed, inputs=_inputs(ctx.cfg) if inputs is None else inputs, base=base)


def key(ctx: RunContext) -> dict:
    base = ctx.require_start_model("sft", ctx.cfg.sft)
    hh = ctx.cfg.sft.data == "hh"
    return stage_key(ctx, {"sft": _run_key(ctx, base)["config"], "samples": ctx.cfg.generate.sampling.model_dump(),
                           "hh": hh_key(ctx.cfg) if hh else None}, inputs=_inputs(ctx.cfg),
                     models={"base": base, **({"answers": starting_model(ctx)} if hh else {})})


def run(ctx: RunContext) -> Artifacts:
    cfg, out = ctx.cfg, ctx.out / "sft"
    sft_cfg: SFTConfig = cfg.sft
    base = ctx.require_start_model("sft", ctx.cfg.sft)
    records, inputs = sft_records(sft_cfg, cfg.seed), None
    if sft_cfg.data == "hh":  # refusals for harmful requests, the base model's own answers for the rest
        records, _, inputs = hh_sft_data(cfg, starting_model(ctx), ctx.out)
        ctx.use_sft_records(records)
    if not prepare_run(out, _run_key(ctx, base, inputs), sft_cfg.resume, "sft"):
        if records is not None and distributed.is_main():  # what was trained on, for inspection (bundled, hh)
            write_jsonl(out / "bundled_sft.jsonl", (r for _, r in records))
        res = run_sft(init=base, tokenizer=load_tokenizer(base), cfg=sft_cfg, output_dir=out, seed=cfg.seed,
                      full_config=cfg, records=records)
        if res.stopped_early:
            raise StoppedEarly(f"SFT stopped at step {res.steps} (checkpoint saved); run the same command again to resume")
        console.log(f"sft: eval loss {_loss(res.initial_eval_loss)} -> {_loss(res.final_eval_loss)} in {res.steps} steps")
    distributed.on_main(_before_and_after, ctx, base, out / "model", out)
    return {"sft_model": str(out / "model"), "sft_samples": str(out / "samples.jsonl")}


def _loss(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _before_and_after(ctx: RunContext, base_model_dir, model_dir: Path, out: Path) -> None:
    """The demo prompts sampled with the base and the SFT model, and format following on held-out
    prompts before and after (main process)."""
    cfg = ctx.cfg
    sft_cfg, compute = cfg.sft, cfg.sft.compute
    base, base_tok = load_model(base_model_dir, compute), load_tokenizer(base_model_dir)
    tuned, tuned_tok = load_model(model_dir, compute), load_tokenizer(model_dir)
    fmt = resolve_chat_format(tuned_tok).name
    # Same prompts, same format, same sampling settings and seed: only the weights differ.
    prompts = list(sft_cfg.demo_prompts)
    sampling = cfg.generate.sampling
    with autocast(compute, tuned.device):
        before = generate_chat(base, base_tok, prompts, sampling, cfg.seed, chat_format=fmt)
        after = generate_chat(tuned, tuned_tok, prompts, sampling, cfg.seed)
    write_jsonl(out / "samples.jsonl", [{"prompt": p, "before": b.text, "after": a.text, "after_finish": a.finish_reason}
                                        for p, b, a in zip(prompts, before, after, strict=True)])
    for p, b, a in zip(prompts, before, after, strict=True):
        console.log(f"sft sample: {p!r}\n    before: {b.text!r}\n    after:  {a.text!r}")
    held, langs, keys = held_out_prompts(dedupe_prompts(ctx.sft_split().held_out), 40)
    if not held:  # plain-text records (TRL's `text`, string prompt/completion): no chat prompt to ask
        why = "no single-turn chat prompt in the held-out split (plain-text or multi-turn records)"
        write_json(out / "format_following.json", {"not_run": why})
        console.log(f"sft: format following not measured: {why}")
        return
    with autocast(compute, tuned.device):
        rep_before = format_following(base, base_tok, held, GREEDY, chat_format=fmt, expect_langs=langs,
                                      answer_keys=keys)
        rep_after = format_following(tuned, tuned_tok, held, GREEDY, expect_langs=langs, answer_keys=keys)
    write_json(out / "format_following.json", {"before": rep_before, "after": rep_after})
    console.log(f"sft: format following on {rep_after['n']} held-out prompts (stops by itself, right language): "
                f"{rep_before['rate']:.0%} before -> {rep_after['rate']:.0%} after")
    if rep_after["fact_prompts"]:  # the form is not the content: the fact questions say whether it is right
        console.log(f"sft: answers stating the asked fact on {rep_after['fact_prompts']} fact questions: "
                    f"{rep_before['states_fact']:.0%} before -> {rep_after['states_fact']:.0%} after")


def sft_stats(cfg: SFTConfig, tokenizer, seed: int = 0) -> dict:
    """Coverage per task category, skipped/modified records and padding waste of an SFT set."""
    fmt = resolve_chat_format(tokenizer, cfg.format)
    data = load_sft_data(cfg, tokenizer, fmt, seed, sft_records(cfg, seed))
    if not data.stats.kept:  # nothing usable: an error with the reasons, not an empty table
        check_skips("SFT data", 0, data.stats.skipped, data.stats.examples, 1.0, "")
    examples = data.train + data.eval
    rows = pack_examples(examples, cfg.max_length) if cfg.packing else None
    return {"format": fmt.name, "data": asdict(data.stats),
            "coverage": coverage_report(examples, cfg.skew_ratio, data.inferred_categories),
            "padding": padding_report(examples, rows, cfg.batch_size, cfg.max_length, seed)}


def _enabled(cfg: RecipeConfig) -> bool:
    return cfg.sft is not None


STAGE = Stage("sft", run, key, _enabled, section="sft")
