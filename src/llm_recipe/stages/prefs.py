"""Stage 4: preference data, as the `llm-recipe prefs ...` commands. Each reads files, writes its
output atomically plus a JSON report (counts, skips by reason with file:line), returns the report.

    convert     any supported preference shape -> canonical pairs JSONL
    generate    k sampled candidates per prompt from a (SFT) model
    label       candidates -> pairs by rules, reward model(s) or an LLM judge
    agreement   inter-annotator agreement of human annotations, low-agreement items filtered
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .. import distributed
from ..config import PrefsConfig
from ..demo.style import single_turn_examples
from ..files import write_json, write_jsonl
from ..infer.reward import load_scorer
from ..models.loading import load_tokenizer
from ..models.placement import autocast, compute_device, load_model
from ..preference.agreement import write_agreement
from ..preference.candidates import generate_candidates, read_prompts
from ..preference.converters import read_preference_files
from ..preference.human import read_annotations
from ..preference.judge import CausalLMJudge
from ..preference.label import label_by_judge, label_by_scores, read_candidates, rules_fn, scorer_fn
from ..preference.records import SkipLog, write_pairs
from ..preference.rules import RuleScorer


def report_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".gz").removesuffix(".jsonl") + ".report.json")


@distributed.main_process_only
def convert(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, min_gap: float = 0.0) -> dict:
    """Any supported preference shape -> canonical pairs JSONL."""
    pairs, log = read_preference_files(inputs, min_gap)
    write_pairs(out, pairs)
    report = {"pairs": len(pairs), **log.to_json()}
    write_json(report_path(out), report)
    if not pairs:  # an empty output is a failed conversion, not a success
        raise ValueError(f"no usable preference pairs ({log.summary()}); report: {report_path(out)}")
    return report


@distributed.main_process_only
def generate(model_path: str, prompt_files: Sequence[str | os.PathLike] | None, out: str | os.PathLike,
             cfg: PrefsConfig, seed: int = 0, n_bundled: int = 64) -> dict:
    """k candidates per prompt; prompts from files, or held-out bundled prompts when none."""
    log = SkipLog()
    if prompt_files:
        prompts = read_prompts(prompt_files, log)
    else:
        prompts = [{"prompt": p, "where": "bundled"} for p, _ in single_turn_examples(4 * n_bundled, seed=20_000 + seed)]
        prompts = prompts[:n_bundled]
    if not prompts:
        raise ValueError(f"no usable prompts ({log.summary()})")
    model, tok = load_model(model_path, cfg.compute), load_tokenizer(model_path)
    with autocast(cfg.compute, model.device):
        records = generate_candidates(model, tok, prompts, cfg.candidates, seed)
    write_jsonl(out, records)
    report = {"prompts": len(prompts), "candidates_per_prompt": cfg.candidates.k,
              "temperatures": records[0]["temperatures"], "read": log.to_json()}
    write_json(report_path(out), report)
    return report


@distributed.main_process_only
def label(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, cfg: PrefsConfig,
          model: str | None = None) -> dict:
    """Candidates -> pairs with the configured labeler (`model` overrides the judge/RM path)."""
    lc = cfg.label
    log = SkipLog()
    cands = read_candidates(inputs, log)
    log.kept = 0  # from here on, `kept` counts pairs
    if lc.labeler == "rules":
        pairs = label_by_scores(cands, rules_fn(RuleScorer(lc.rules)), "rules", lc.pairs, lc.min_gap, log)
    elif lc.labeler == "rm":
        refs = [(model, 1.0)] if model else [(r.path, r.weight) for r in lc.reward_models]
        if not refs:
            raise ValueError("labeler 'rm' needs prefs.label.reward_models or --model")
        scorer = load_scorer(refs, dtype=cfg.compute.dtype, device=compute_device(cfg.compute))
        pairs = label_by_scores(cands, scorer_fn(scorer), "rm", lc.pairs, lc.min_gap, log)
    else:
        path = model or lc.judge_model
        if not path:
            raise ValueError("labeler 'judge' needs prefs.label.judge_model or --model")
        judge = CausalLMJudge(load_model(path, cfg.compute), load_tokenizer(path), lc.judge_template,
                              lc.judge_choices, lc.chat_format)
        with autocast(cfg.compute, judge.model.device):
            pairs = label_by_judge(cands, judge, log)
    write_pairs(out, pairs)
    report = {"labeler": lc.labeler, "candidates": len(cands), "pairs": len(pairs), **log.to_json()}
    write_json(report_path(out), report)
    if not pairs:
        raise ValueError(f"no preference pairs labelled ({log.summary()}); report: {report_path(out)}")
    return report


@distributed.main_process_only
def agreement(inputs: Sequence[str | os.PathLike], report_out: str | os.PathLike, cfg: PrefsConfig,
              pairs_out: str | os.PathLike | None = None) -> dict:
    """Agreement report of human annotation files; optionally the kept items as pairs."""
    items, log = read_annotations(inputs)
    return write_agreement(items, log, report_out, cfg.agreement, pairs_out)
