"""Online (iterative, on-policy) DPO: the preference data comes from the policy being trained.

    STAGE   R rounds from the starting model (the SFT model) into <run>/online_dpo/round-r/:
        1. k candidates per prompt sampled from the current policy (fresh prompts each round)
        2. labelled as `prefs label` does (rules, reward model(s), or an LLM judge)
        3. DPO for `max_steps` steps on the round's pairs, with the round's reference: the initial
           (SFT) model or the previous round's policy
    The round's policy starts the next round; the last one is linked as online_dpo/model.
    `report.json` (and `metrics.jsonl`, a row per round with the round as its 'step') holds one row per round (pairs, skips, the mean score of the policy's own samples:
    how the labeler rates the policy as it trains). Resumable by round: a round whose model is saved
    is skipped, its data (`pairs.jsonl`, written before training) is reused, and its DPO resumes
    from its checkpoint.

Offline DPO at the same number of labelled pairs is `rounds: 1` with rounds x prompts_per_round
prompts and rounds x max_steps steps (benchmarks/online_vs_offline.py runs both).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import console, distributed
from ..config import LabelConfig, OnlineDPOConfig, RecipeConfig, RewardModelRef
from ..files import link_folder, read_json, write_json, write_jsonl
from ..models.loading import load_tokenizer
from ..models.placement import autocast, load_model
from ..preference.candidates import generate_candidates, read_prompts
from ..preference.converters import read_preference_files
from ..preference.label import label_candidates, read_candidates
from ..preference.records import InvalidRecord, SkipLog, split_by_prompt, write_pairs
from ..provenance import write_run_manifest
from ..report.plots import plot_metrics
from ..rewards.sources import label_rewards, source_files, source_models
from ..seeds import seed_for
from ..train.dpo import run_dpo
from ..train.interrupt import StoppedEarly
from ..train.run_folder import model_key, prepare_run, run_key
from ..train.sft_prompts import sft_train_prompts
from .context import Artifacts, RunContext
from .contract import Stage, stage_key


def _label_config(lc: LabelConfig, rm_dir: str | os.PathLike | None) -> LabelConfig:
    """Labeler 'rm' without reward_models scores with the recipe's reward model, as do `{kind: rm}`
    reward sources without a path."""
    if lc.labeler == "rewards" and rm_dir is not None and lc.rewards:
        return lc.model_copy(update={"rewards": [s.model_copy(update={"path": str(rm_dir)})
                                                 if s.kind == "rm" and s.path is None else s for s in lc.rewards]})
    if lc.labeler != "rm" or lc.reward_models:
        return lc
    if rm_dir is None:
        raise ValueError("online_dpo.label: labeler 'rm' needs label.reward_models or an rm: section in the recipe")
    return lc.model_copy(update={"reward_models": [RewardModelRef(path=str(rm_dir))]})


def _seed(cfg: RecipeConfig) -> int:
    """The stage's own seed (prompt order, sampling, DPO); the SFT split it draws prompts from keeps
    the recipe's seed, so another `online_dpo.seed` never reaches the eval stage's held-out prompts."""
    return cfg.seed if cfg.online_dpo.seed is None else cfg.online_dpo.seed


def prompt_pool(ctx: RunContext, ocfg: OnlineDPOConfig) -> tuple[list[dict], SkipLog]:
    """Every prompt the rounds draw from, shuffled once with the seed."""
    cfg = ctx.cfg
    if ocfg.prompts == "sft":
        if cfg.sft is None:
            raise ValueError("online_dpo.prompts 'sft' needs an sft: section (or give prompt files)")
        items, log = sft_train_prompts(ctx.sft_split())
    else:
        log = SkipLog()
        items = read_prompts(ocfg.prompts, log, columns=True)
    if len(items) < 2:
        raise ValueError(f"online_dpo: {len(items)} usable prompt(s) ({log.summary()})")
    order = np.random.default_rng(_seed(cfg)).permutation(len(items))
    return [items[i] for i in order], log


def round_prompts(pool: list[dict], r: int, per_round: int) -> list[dict]:
    """Round r's (1-based) prompts: the next `per_round` of the pool, cycling when it runs out."""
    start = (r - 1) * per_round
    return [pool[(start + i) % len(pool)] for i in range(per_round)]


def round_data(policy: str, prompts: list[dict], ocfg: OnlineDPOConfig, lc: LabelConfig, seed: int,
               rdir: Path, key: dict) -> dict:
    """Sample and label one round (main process); reuse it when an earlier attempt of the same
    round (same `key`) wrote it."""
    report_file = rdir / "data_round.json"
    if report_file.exists():  # written last: the round's candidates and pairs are complete
        done = read_json(report_file)
        if done.get("key") == key:
            return done
    model, tok = load_model(policy, ocfg.compute), load_tokenizer(policy)
    with autocast(ocfg.compute, model.device):
        records = generate_candidates(model, tok, prompts, ocfg.candidates, seed)
    del model
    write_jsonl(rdir / "candidates.jsonl", records)
    log = SkipLog()
    cands = read_candidates([rdir / "candidates.jsonl"], log)
    log.kept = 0  # from here on, `kept` counts pairs
    judge: dict = {}  # an endpoint judge: its answers cached across rounds and reruns
    pairs, scores = label_candidates(cands, lc, ocfg.compute, log, rewards=label_rewards(lc, ocfg.compute),
                                     cache_path=rdir.parent / "judge_cache.jsonl", stats=judge)
    write_pairs(rdir / "pairs.jsonl", pairs)
    scores = [s for s in scores or [] if not isinstance(s, InvalidRecord)]  # skipped records have no scores
    flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores]) if scores else None
    report = {"policy": str(policy), "prompts": len(prompts), "candidates": sum(len(c["responses"]) for c in cands),
              "pairs": len(pairs), "labeler": lc.labeler, "label": log.to_json(),
              "mean_score": None if flat is None or not flat.size else float(flat.mean()),
              "mean_score_chosen": _mean(p.meta.get("score_chosen") for p in pairs),
              "mean_score_rejected": _mean(p.meta.get("score_rejected") for p in pairs), "key": key,
              **({"judge": judge} if judge else {})}
    write_json(report_file, report)
    return report


def round_key(cfg: RecipeConfig, ocfg: OnlineDPOConfig, lc: LabelConfig, r: int, policy: str, reference: str) -> dict:
    """What round r computes: the section with its resolved labeler (but `rounds`: more rounds extend
    a run), the round, its policy, reference and reward models by content, and the prompt source."""
    prompts = [] if ocfg.prompts == "sft" else ocfg.prompts
    key = run_key(ocfg.model_copy(update={"label": lc}), seed=_seed(cfg), inputs=prompts, base=policy, round=r,
                  reference=model_key(reference), reward_models=[[model_key(m.path), m.weight] for m in lc.reward_models],
                  sft=cfg.sft.model_dump(mode="json") if ocfg.prompts == "sft" else None)
    for moved_or_extended in ("rounds", "label.reward_models"):  # reward models: by content above
        key["config"].pop(moved_or_extended)
    return key


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _init(ctx: RunContext) -> str:
    return ctx.require_start_model("online_dpo", ctx.cfg.online_dpo)


def _labeler(ctx: RunContext) -> LabelConfig:
    """The section's labeler; --rm on the command line makes it the reward-model labeler with those
    models (labeler 'rewards': the model of its `{kind: rm}` sources without a path); labeler 'rm'
    without reward_models scores with the run's reward model."""
    lc = ctx.cfg.online_dpo.label
    if lc.labeler == "rewards":
        return _label_config(lc, next((str(r.path) for r in ctx.reward_model_refs()), None))
    if ctx.reward_models:
        lc = lc.model_copy(update={"labeler": "rm", "reward_models": list(ctx.reward_models)})
    return _label_config(lc, ctx.reward_model())


def key(ctx: RunContext) -> dict:
    ocfg, lc = ctx.cfg.online_dpo, _labeler(ctx)
    rms = source_models(lc.rewards, None) if lc.labeler == "rewards" else [m.path for m in lc.reward_models]
    models = {"init": _init(ctx), **{f"rm{i}": p for i, p in enumerate(rms)}}
    return stage_key(ctx, {"online_dpo": ocfg.model_copy(update={"label": lc}).model_dump(mode="json"),
                           "sft": ctx.cfg.sft.model_dump(mode="json") if ocfg.prompts == "sft" and ctx.cfg.sft else None},
                     inputs=[*([] if ocfg.prompts == "sft" else ocfg.prompts),
                             *(source_files(lc.rewards) if lc.labeler == "rewards" else [])], models=models,
                     stage_seed=_seed(ctx.cfg))


def run(ctx: RunContext) -> Artifacts:
    """R rounds of sample -> label -> DPO from the starting model into <run>/online_dpo/; the last
    round's model is online_dpo/model."""
    ocfg = ctx.cfg.online_dpo
    run_dir = ctx.out / "online_dpo"
    final = run_dir / "model"
    lc = _labeler(ctx)
    init = _init(ctx)
    pool, pool_log = distributed.on_main(prompt_pool, ctx, ocfg)
    console.log(f"online_dpo: {len(pool)} prompts ({pool_log.summary()}); {ocfg.rounds} rounds x "
                f"{ocfg.prompts_per_round} prompts x {ocfg.candidates.k} candidates, labeler {lc.labeler}")
    policy, rows = init, []
    for r in range(1, ocfg.rounds + 1):
        rdir = run_dir / f"round-{r}"
        reference = init if ocfg.reference_model == "initial" else policy
        _round(ctx, r, policy, reference, lc, pool, rdir)
        data = read_json(rdir / "data_round.json")
        policy = str(rdir / "model")
        rows.append({"round": r, **{k: data[k] for k in ("prompts", "candidates", "pairs", "mean_score",
                                                          "mean_score_chosen", "mean_score_rejected")},
                     "skipped": data["label"]["skipped"], **_final_eval(rdir)})
        score = "" if data["mean_score"] is None else f", mean {lc.labeler} score of its samples {data['mean_score']:.3f}"
        console.log(f"online_dpo: round {r}/{ocfg.rounds}: {data['pairs']} pairs{score}")
    if distributed.is_main():
        _write_report(ctx, run_dir, rows, lc, init, policy)
    distributed.barrier()
    return {"online_dpo_model": str(final)}


def _round(ctx: RunContext, r: int, policy: str, reference: str, lc: LabelConfig, pool: list[dict],
           rdir: Path) -> None:
    """Round r: sample and label (reused when an earlier attempt of the same round wrote them), then
    DPO on its pairs (its finished model is reused only for the same round key)."""
    cfg, ocfg = ctx.cfg, ctx.cfg.online_dpo
    key = round_key(cfg, ocfg, lc, r, policy, reference)
    if prepare_run(rdir, key, ocfg.resume, "online_dpo"):
        return
    data = distributed.on_main(round_data, policy, round_prompts(pool, r, ocfg.prompts_per_round), ocfg, lc,
                               seed_for("online_dpo_sampling", _seed(cfg), r), rdir, key)
    if data["pairs"] < 2:
        raise ValueError(f"online_dpo round {r}: {data['pairs']} pair(s) labelled "
                         f"({data['label']['skipped']}); see {rdir / 'data_round.json'}")
    pairs, read_log = read_preference_files([rdir / "pairs.jsonl"])
    round_seed = seed_for("online_dpo_round", _seed(cfg), r)
    train, evals = split_by_prompt(pairs, ocfg.eval_fraction, round_seed)
    res = run_dpo(init=policy, reference_init=reference, train_pairs=train, eval_pairs=evals, cfg=ocfg,
                  output_dir=rdir, seed=round_seed, read_log=read_log, inputs=[rdir / "pairs.jsonl"],
                  full_config=cfg, stage="online_dpo")
    if res.stopped_early:
        raise StoppedEarly(f"online DPO round {r} stopped at step {res.steps} (checkpoint saved); "
                           "run the same command again to resume")


def _write_report(ctx: RunContext, run_dir: Path, rows: list[dict], lc: LabelConfig, init: str, policy: str) -> None:
    write_jsonl(run_dir / "metrics.jsonl", ({"step": r["round"], **{k: v for k, v in r.items()
                                                                      if isinstance(v, float)}} for r in rows))
    plot_metrics(run_dir / "metrics.jsonl", run_dir / "rounds.png",
                 keys=("mean_score", "mean_score_chosen", "mean_score_rejected"),
                 title="online DPO: the labeler's score of the policy's samples, by round")
    write_run_manifest(run_dir, stage="online_dpo", config=ctx.cfg,
                       inputs=[run_dir / f"round-{r['round']}" / "pairs.jsonl" for r in rows],
                       extra={"base_model": init, "rounds": rows}, init_from=init)
    link_folder(policy, run_dir / "model")  # the last round's model, as hard links (no second copy)
    write_json(run_dir / "report.json", {"rounds": rows, "reference_model": ctx.cfg.online_dpo.reference_model,
                                         "labeler": lc.labeler, "final_policy": policy})


STAGE = Stage("online_dpo", run, key, lambda cfg: cfg.online_dpo is not None, section="online_dpo")


def _final_eval(rdir: Path) -> dict:
    """The round's last DPO evaluation (held-out pairs of that round)."""
    rep = rdir / "dpo_report.json"
    hist = read_json(rep).get("history") if rep.exists() else None
    last = hist[-1] if hist else {}
    return {k: last[k] for k in ("eval_loss", "eval_reward_accuracy", "eval_reward_margin") if k in last}

