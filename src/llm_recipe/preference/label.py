"""Labeling: candidate records -> preference pairs, with a reward model, rules or an LLM judge.

Scoring labelers (reward model, rules) give every response a score; pairs are then the best vs
the worst response of each prompt (`pairs: best_worst`) or every pair of responses
(`pairs: all`). Score differences <= `min_gap` are ties: dropped and counted. The judge labels
every pair of responses in both orders (see `judge.py`); order disagreements are ties.
Every pair records who labeled it and the scores in `meta`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..infer.reward import load_scorer
from ..models.loading import load_tokenizer
from ..models.placement import autocast, compute_device, load_model
from .converters import scores_to_pairs
from .judge import CausalLMJudge, undecided_reason
from .records import InvalidRecord, PreferencePair, SkipLog, check_prompt, iter_records
from .rules import RuleScorer
from .text_judge import pairwise_judge


def read_candidates(files: Sequence[str | os.PathLike], log: SkipLog) -> list[dict]:
    """Candidate records {"prompt", "responses", "reference"?}; empty responses are dropped
    (counted) and records left with fewer than two responses are skipped (counted)."""
    out = []
    for where, rec in iter_records(files, log, "candidates"):
        try:
            prompt = check_prompt(rec.get("prompt"))
            responses = rec.get("responses")
            if not isinstance(responses, list):
                raise InvalidRecord("missing_field", "responses")
            if not all(isinstance(r, str) for r in responses):
                raise InvalidRecord("bad_type", "responses must be strings")
        except InvalidRecord as e:
            log.skip(e.reason, where, e.detail)
            continue
        kept = []
        for r in responses:
            if r.strip():
                kept.append(r)
            else:
                log.skip("empty_response", where)
        if len(set(kept)) < 2:
            log.skip("too_few_responses", where, f"{len(set(kept))} distinct non-empty response(s)")
            continue
        item = {"prompt": prompt, "responses": kept, "where": where,
                "columns": {k: v for k, v in rec.items() if k not in ("prompt", "responses")}}
        if isinstance(rec.get("reference"), str):
            item["reference"] = rec["reference"]
        out.append(item)
    return out


# candidate records -> one score array per record (or an InvalidRecord for that record)
ScoreFn = Callable[[Sequence[dict]], list["np.ndarray | InvalidRecord"]]


def label_by_scores(candidates: Sequence[dict], score_fn: ScoreFn, labeler: str, mode: str = "best_worst",
                    min_gap: float = 0.0, log: SkipLog | None = None) -> list[PreferencePair]:
    log = log if log is not None else SkipLog()
    pairs: list[PreferencePair] = []
    for c, scores in zip(candidates, score_fn(candidates), strict=True):
        if isinstance(scores, InvalidRecord):
            log.skip(scores.reason, c["where"], scores.detail)
            continue
        scores = np.asarray(scores, dtype=np.float64)
        responses = c["responses"]
        if mode == "best_worst":
            hi, lo = int(np.argmax(scores)), int(np.argmin(scores))
            if scores[hi] - scores[lo] <= min_gap:
                log.skip("tie", c["where"])
                continue
            new = [PreferencePair(c["prompt"], responses[hi], responses[lo],
                                  meta={"score_chosen": float(scores[hi]), "score_rejected": float(scores[lo])})]
        else:
            new, ties = scores_to_pairs(c["prompt"], responses, scores.tolist(), min_gap)
            for _ in range(ties):
                log.skip("tie", c["where"])
        for p in new:
            if p.chosen == p.rejected:
                log.skip("chosen_equals_rejected", c["where"])
                continue
            p.meta.update({"labeler": labeler, "source": c["where"]})
            pairs.append(p)
            log.kept += 1
    return pairs


def label_by_judge(candidates: Sequence[dict], judge, log: SkipLog | None = None) -> list[PreferencePair]:
    """Every pair of responses, judged in both orders; order disagreements are ties."""
    log = log if log is not None else SkipLog()
    triples, owners = [], []
    for c in candidates:
        rs = c["responses"]
        for i in range(len(rs)):
            for j in range(i + 1, len(rs)):
                triples.append((c["prompt"], rs[i], rs[j]))
                owners.append(c)
    pairs = []
    for (prompt, a, b), c, v in zip(triples, owners, judge.compare(triples), strict=True):
        if v.winner == 0:
            log.skip(undecided_reason(v), c["where"])
            continue
        chosen, rejected = (a, b) if v.winner > 0 else (b, a)
        pairs.append(PreferencePair(prompt, chosen, rejected, meta={
            "labeler": "judge", "source": c["where"], "judge_margin": abs(v.debiased),
            "margin_ab": v.margin_ab, "margin_ba": v.margin_ba,
            **({"verdicts": list(v.labels)} if v.labels else {})}))
        log.kept += 1
    return pairs


def scorer_fn(scorer) -> ScoreFn:
    """Reward model(s) -> score function: all responses of all records in one batched call."""

    def fn(cands: Sequence[dict]) -> list[np.ndarray]:
        prompts = [c["prompt"] for c in cands for _ in c["responses"]]
        flat = scorer.score(prompts, [r for c in cands for r in c["responses"]])
        bounds = np.cumsum([0] + [len(c["responses"]) for c in cands])
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    return fn


def rewards_fn(rewards) -> ScoreFn:
    """Reward sources (`rewards.Rewards`) -> score function: one batched call, each record's columns
    (e.g. a reference answer) repeated for its responses. A record with a response no source
    rewarded is skipped (`unscored_response`): a pair needs two scores."""

    def fn(cands: Sequence[dict]) -> list:
        sizes = [len(c["responses"]) for c in cands]
        keys = sorted({k for c in cands for k in c.get("columns", {})})
        cols = {k: [c.get("columns", {}).get(k) for c, n in zip(cands, sizes, strict=True) for _ in range(n)]
                for k in keys}
        flat = rewards.score([c["prompt"] for c, n in zip(cands, sizes, strict=True) for _ in range(n)],
                             [r for c in cands for r in c["responses"]], columns=cols)
        bounds = np.cumsum([0, *sizes])
        out: list = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            part = flat[a:b]
            bad = int(np.isnan(part).sum())
            out.append(InvalidRecord("unscored_response", f"{bad} of {b - a} responses got no reward") if bad
                       else part)
        return out

    return fn


def rules_fn(rule_scorer) -> ScoreFn:
    def one(c: dict) -> np.ndarray | InvalidRecord:
        n = len(c["responses"])
        try:
            return rule_scorer.score([c["prompt"]] * n, c["responses"], references=[c.get("reference")] * n)
        except InvalidRecord as e:
            return e

    return lambda cands: [one(c) for c in cands]


def label_candidates(cands: Sequence[dict], lc, compute, log: SkipLog, model: str | None = None,
                     rewards=None, cache_path: str | os.PathLike | None = None, stats: dict | None = None
                     ) -> tuple[list[PreferencePair], list | None]:
    """Candidates -> pairs with the labeler of `lc` (a config.LabelConfig; `model` overrides the
    judge / reward model path). Also returns every candidate's score (scoring labelers; the judge
    gives none), for figures such as the mean reward of a policy's samples. Labeler 'rewards'
    scores with `rewards`, the reward sources of `lc.rewards` the caller built (`rewards.sources`).
    An endpoint judge (`lc.judge`) caches its answers in `cache_path` (unless its config names a
    cache); `stats`, when given, receives what the judge did (calls, tokens, cache hits, unparseable
    verdicts)."""
    scores: list = []

    def recorded(fn: ScoreFn) -> ScoreFn:
        def score(cs: Sequence[dict]) -> list:
            out = fn(cs)
            scores.extend(out)
            return out

        return score

    if lc.labeler == "rewards":
        if rewards is None:
            raise ValueError("labeler 'rewards' needs prefs.label.rewards (a list of reward sources)")
        return label_by_scores(cands, recorded(rewards_fn(rewards)), "rewards", lc.pairs, lc.min_gap, log), scores
    if lc.labeler == "rules":
        return label_by_scores(cands, recorded(rules_fn(RuleScorer(lc.rules))), "rules", lc.pairs, lc.min_gap,
                               log), scores
    if lc.labeler == "rm":
        refs = [(model, 1.0)] if model else [(r.path, r.weight) for r in lc.reward_models]
        if not refs:
            raise ValueError("labeler 'rm' needs prefs.label.reward_models or --model")
        scorer = load_scorer(refs, dtype=compute.dtype, device=compute_device(compute))
        return label_by_scores(cands, recorded(scorer_fn(scorer)), "rm", lc.pairs, lc.min_gap, log), scores
    if lc.judge is not None and model is None:  # an OpenAI-compatible endpoint
        judge = pairwise_judge(lc.judge, lc.judge_template, compute, cache_path=cache_path)
        try:
            return label_by_judge(cands, judge, log), None
        finally:
            if stats is not None:
                stats.update(judge.describe())
    path = model or lc.judge_model
    if not path:
        raise ValueError("labeler 'judge' needs prefs.label.judge_model, prefs.label.judge (an endpoint) or --model")
    judge = CausalLMJudge(load_model(path, compute), load_tokenizer(path), lc.judge_template, lc.judge_choices,
                          lc.chat_format, name=str(path))
    if stats is not None:
        stats.update(judge.describe())
    with autocast(compute, judge.model.device):
        return label_by_judge(cands, judge, log), None
