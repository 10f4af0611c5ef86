"""Stage 3: SFT, with the before/after evidence a person looks at.

    stage_sft(cfg, base_model_dir, out_dir)   fine-tune (skipped when done; resumes from its
                                              checkpoint), then the demo prompts sampled with the
                                              base and the SFT model (`samples.jsonl`) and format
                                              following on held-out prompts before and after
                                              (`format_following.json`)
    sft_stats(cfg, tokenizer)                 what `llm-recipe sft-stats` prints: coverage,
                                              skipped/modified records, padding waste
Data: `sft.data` files, or the bundled set (`demo.sft_set`, also written to `bundled_sft.jsonl`).
"""

from __future__ import annotations

import os
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

# A measurement, not a demo: greedy, with the default repetition penalty against greedy loops.
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=128, repetition_penalty=1.1)


def stage_sft(cfg: RecipeConfig, base_model_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    sft_cfg: SFTConfig = cfg.sft
    model_dir = out / "model"
    records = sft_records(sft_cfg, cfg.seed)
    key = run_key(sft_cfg, seed=cfg.seed, inputs=[] if records is not None else sft_cfg.data, base=base_model_dir)
    if not prepare_run(out, key, sft_cfg.resume, "sft"):
        if records is not None and distributed.is_main():  # what was trained on, for inspection
            write_jsonl(out / "bundled_sft.jsonl", (r for _, r in records))
        res = run_sft(init=base_model_dir, tokenizer=load_tokenizer(base_model_dir), cfg=sft_cfg, output_dir=out,
                      seed=cfg.seed, full_config=cfg, records=records)
        if res.stopped_early:
            raise StoppedEarly(f"SFT stopped at step {res.steps} (checkpoint saved); run the same command again to resume")
        console.log(f"sft: eval loss {res.initial_eval_loss:.3f} -> {res.final_eval_loss:.3f} in {res.steps} steps")
    if not (out / "samples.jsonl").exists():
        distributed.on_main(_before_and_after, cfg, base_model_dir, model_dir, out, records)
    return model_dir


def _before_and_after(cfg: RecipeConfig, base_model_dir, model_dir: Path, out: Path, records) -> None:
    """The demo prompts sampled with the base and the SFT model, and format following on held-out
    prompts before and after (main process)."""
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
    data = load_sft_data(sft_cfg, tuned_tok, resolve_chat_format(tuned_tok), cfg.seed, records)
    held, langs, keys = held_out_prompts(dedupe_prompts(data.held_out), 40)
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
