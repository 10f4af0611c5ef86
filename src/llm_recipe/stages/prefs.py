"""Stage 4: preference data, as the `llm-recipe prefs ...` commands. Each reads files, writes its
output atomically plus a JSON report (counts, skips by reason with file:line), returns the report.

    convert     any supported preference shape -> canonical pairs JSONL
    generate    k sampled candidates per prompt from a (SFT) model
    label       candidates -> pairs by rules, reward model(s) or an LLM judge
    agreement   inter-annotator agreement of human annotations, low-agreement items filtered
    constitutional  Constitutional AI on a red-team set: critique -> revision, SFT records, pairs,
                and AI-labelled (RLAIF) pairs
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

from .. import console, distributed
from ..config import ConstitutionalConfig, PrefsConfig
from ..demo.style import single_turn_examples
from ..files import lock_folder, write_json, write_jsonl
from ..infer.generate import generate_chat
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.agreement import write_agreement
from ..preference.candidates import generate_candidates, read_prompts
from ..preference.constitution import load_constitution, read_red_team
from ..preference.constitutional import (
    critique_and_revise,
    judge_pairs,
    revision_pairs,
    sft_records,
)
from ..preference.converters import read_preference_files
from ..preference.human import read_annotations
from ..preference.judge import CausalLMJudge
from ..preference.label import label_candidates, read_candidates
from ..preference.records import SkipLog, write_pairs
from ..seeds import seed_for
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def report_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".gz").removesuffix(".jsonl") + ".report.json")


@distributed.main_process_only
def convert(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, min_gap: float = 0.0,
            pairs_from: str = "all") -> dict:
    """Any supported preference shape -> canonical pairs JSONL (`pairs_from`: which pairs of a
    ranking or scores: all, best_vs_worst, best_vs_rest)."""
    pairs, log = read_preference_files(inputs, min_gap, pairs_from)
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
        prompts = [{"prompt": p, "where": "bundled"} for p, _ in single_turn_examples(4 * n_bundled, seed=seed_for("bundled_prompts", seed))]
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
    pairs, _ = label_candidates(cands, lc, cfg.compute, log, model)
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


@distributed.main_process_only
def constitutional(model_path: str, out_dir: str | os.PathLike, cfg: ConstitutionalConfig, seed: int = 0) -> dict:
    """Constitutional AI on a red-team set: writes records.jsonl (every intermediate text), sft.jsonl,
    pairs.jsonl (revision over initial), ai_pairs.jsonl (judge-labelled) and report.json to `out_dir`."""
    out = Path(out_dir)
    lock_folder(out)  # one run per folder
    constitution = load_constitution(cfg.constitution)
    items = read_red_team(cfg.prompts)
    if not items:
        raise ValueError("constitutional: no red-team prompts")
    models: dict[str, tuple] = {}  # one copy of each distinct model (policy, critic and judge may coincide)

    def loaded(path: str):
        if path not in models:
            models[path] = (load_model(path, cfg.compute), load_tokenizer(path))
        return models[path]

    calls = itertools.count()  # a fresh sampling seed for every generation call

    def responder(path: str):
        model, tok = loaded(path)
        return lambda convs: [g.text for g in generate_chat(model, tok, convs, cfg.sampling,
                                                            seed=seed_for("candidate_sampling", seed, next(calls)),
                                                            chat_format=cfg.chat_format)]

    critic_path = cfg.critic or model_path
    judge_path = cfg.judge or critic_path
    log = SkipLog()
    policy_model = loaded(model_path)[0]
    with autocast(cfg.compute, policy_model.device):
        records = critique_and_revise(items, responder(model_path), responder(critic_path), constitution,
                                      cfg.rounds, seed, log)
        sft = sft_records(records, log)
        pairs = revision_pairs(records, log)
        judge_log = SkipLog()
        judge_model, judge_tok = loaded(judge_path)
        ai_pairs = judge_pairs(records, lambda t: CausalLMJudge(judge_model, judge_tok, t, chat_format=cfg.chat_format),
                               constitution, seed, judge_log)
    write_jsonl(out / "records.jsonl", records)
    write_jsonl(out / "sft.jsonl", sft)
    write_pairs(out / "pairs.jsonl", pairs)
    write_pairs(out / "ai_pairs.jsonl", ai_pairs)
    judged = len(ai_pairs) + judge_log.skipped.get("judge_position_disagreement", 0)
    report = {"constitution": {"name": constitution.name, "path": constitution.path,
                               "principles": [p.id for p in constitution.principles]},
              "prompts": len(items), "rounds": cfg.rounds, "policy": str(model_path), "critic": str(critic_path),
              "judge": str(judge_path), "sft_records": len(sft), "revision_pairs": len(pairs),
              "ai_pairs": len(ai_pairs), "judged": judged,
              "ai_prefers_revision": (sum(p.meta["revision_preferred"] for p in ai_pairs) / len(ai_pairs)
                                      if ai_pairs else None),
              "skipped": log.to_json()["skipped"], "judge_skipped": judge_log.to_json()["skipped"],
              "where": {**log.where, **judge_log.where}}
    write_json(out / "report.json", report)
    return report


def constitutional_key(ctx: RunContext) -> dict:
    cc: ConstitutionalConfig = ctx.cfg.constitutional
    policy = ctx.start_model("constitutional", cc)
    return stage_key(ctx, cc, inputs=[*(cc.prompts or []), *([cc.constitution] if cc.constitution else [])],
                     models={"policy": policy, "critic": cc.critic, "judge": cc.judge})


def run_constitutional(ctx: RunContext) -> Artifacts:
    """The recipe's `constitutional:` stage: the SFT model's CAI data into <run>/constitutional/."""
    cc: ConstitutionalConfig = ctx.cfg.constitutional
    run_dir = ctx.out / "constitutional"
    rep = constitutional(str(ctx.start_model("constitutional", cc)), run_dir, cc, ctx.cfg.seed)
    if distributed.is_main():
        console.log(f"constitutional: {rep['prompts']} red-team prompts x {rep['rounds']} round(s): "
                    f"{rep['sft_records']} SFT records, {rep['revision_pairs']} revision pairs, "
                    f"{rep['ai_pairs']} AI-labelled pairs of {rep['judged']} judged")
    return {"constitutional": str(run_dir)}


CONSTITUTIONAL = Stage("constitutional", run_constitutional, constitutional_key,
                       lambda cfg: cfg.constitutional is not None)
