"""Constitutional AI (Bai et al. 2022): answer -> critique -> revision, and AI feedback.

For every red-team prompt the policy answers; then, for `rounds` rounds, the critic (the policy
itself by default) is shown the conversation so far plus a principle's critique request, writes a
critique, is asked the principle's revision request and writes a revision, which becomes the
answer the next round critiques. Each round samples its principle at random (seeded).

Three datasets come out of it, each record keeping where it came from:
  * SFT records (prompt, final revision): the supervised CAI step;
  * preference pairs, the final revision preferred over the initial answer;
  * AI-labelled pairs (RLAIF): a judge asked the principle's question about (initial, final) in
    both orders; a pair is kept only when both orders agree, ties are dropped and counted.
Every intermediate text (answer, critique and revision of each round, with its principle and the
requests) is kept in the records file.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ..seeds import seed_for
from .constitution import Constitution, Principle
from .records import PreferencePair, SkipLog

# conversations (each ending in a user turn) -> one assistant reply each
Respond = Callable[[list[list[dict]]], list[str]]

JUDGE_FRAME = {
    "en": "{question}\n\nRequest: {{prompt}}\n\nResponse A: {{a}}\n\nResponse B: {{b}}\n\nAnswer with A or B.",
    "ja": "{question}\n\n依頼: {{prompt}}\n\n回答A: {{a}}\n\n回答B: {{b}}\n\nAかBで答えてください。",
}


def _turn(role: str, text: str) -> dict:
    return {"role": role, "content": text}


def critique_and_revise(items: Sequence[dict], policy: Respond, critic: Respond, constitution: Constitution,
                        rounds: int = 1, seed: int = 0, log: SkipLog | None = None) -> list[dict]:
    """Run the critique -> revision loop on red-team items ({"id", "lang", "prompt"}). An empty
    revision keeps the answer it was meant to replace (counted as `empty_revision`)."""
    log = log if log is not None else SkipLog()
    rng = random.Random(seed_for("constitutional_principles", seed))
    initial = policy([[_turn("user", it["prompt"])] for it in items])
    records = [{"id": it["id"], "lang": it["lang"], "prompt": it["prompt"], "initial": a.strip(), "rounds": []}
               for it, a in zip(items, initial, strict=True)]
    current = [r["initial"] for r in records]
    for _ in range(rounds):
        chosen: list[Principle] = [rng.choice(constitution.principles) for _ in records]
        base = [[_turn("user", r["prompt"]), _turn("assistant", cur)] for r, cur in zip(records, current, strict=True)]
        crit_req = [p.text("critique", r["lang"]) for p, r in zip(chosen, records, strict=True)]
        critiques = critic([b + [_turn("user", q)] for b, q in zip(base, crit_req, strict=True)])
        rev_req = [p.text("revision", r["lang"]) for p, r in zip(chosen, records, strict=True)]
        revisions = critic([b + [_turn("user", q), _turn("assistant", c), _turn("user", v)]
                            for b, q, c, v in zip(base, crit_req, critiques, rev_req, strict=True)])
        for i, r in enumerate(records):
            revision = revisions[i].strip()
            if not revision:
                log.skip("empty_revision", r["id"])
            r["rounds"].append({"principle": chosen[i].id, "critique_request": crit_req[i],
                                "critique": critiques[i].strip(), "revision_request": rev_req[i],
                                "revision": revision, "kept_previous": not revision})
            current[i] = revision or current[i]
    for r, cur in zip(records, current, strict=True):
        r["final"] = cur
    return records


def sft_records(records: Sequence[dict], log: SkipLog) -> list[dict]:
    """(prompt, final revision) as chat records for SFT; an empty final answer is skipped."""
    out = []
    for r in records:
        if not r["final"]:
            log.skip("empty_final", r["id"])
            continue
        out.append({"messages": [_turn("user", r["prompt"]), _turn("assistant", r["final"])],
                    "meta": {"source": "constitutional", "id": r["id"], "principles": _principles(r)}})
    return out


def revision_pairs(records: Sequence[dict], log: SkipLog) -> list[PreferencePair]:
    """The final revision preferred over the initial answer."""
    pairs = []
    for r in records:
        if not r["initial"] or not r["final"]:
            log.skip("empty_answer", r["id"])
        elif r["final"] == r["initial"]:
            log.skip("revision_equals_initial", r["id"])
        else:
            pairs.append(PreferencePair(r["prompt"], r["final"], r["initial"], meta={
                "labeler": "constitutional_revision", "source": r["id"], "principles": _principles(r)}))
    return pairs


def judge_pairs(records: Sequence[dict], make_judge: Callable[[str], object], constitution: Constitution,
                seed: int, log: SkipLog) -> list[PreferencePair]:
    """AI feedback: for each (initial, final) the judge answers a sampled principle's question in
    both orders (`preference.judge`); the pair goes the way both orders agree on, ties are dropped."""
    rng = random.Random(seed_for("constitutional_judge", seed))
    groups: dict[str, list[tuple[dict, Principle]]] = {}
    for r in records:
        if not r["initial"] or not r["final"] or r["initial"] == r["final"]:
            log.skip("nothing_to_compare", r["id"])
            continue
        p = rng.choice(constitution.principles)
        template = JUDGE_FRAME.get(r["lang"], JUDGE_FRAME["en"]).format(
            question=p.text("judge", r["lang"]).replace("{", "{{").replace("}", "}}"))
        groups.setdefault(template, []).append((r, p))
    pairs = []
    for template, members in groups.items():
        verdicts = make_judge(template).compare([(r["prompt"], r["final"], r["initial"]) for r, _ in members])
        for (r, p), v in zip(members, verdicts, strict=True):
            if v.winner == 0:
                log.skip("judge_position_disagreement", r["id"])
                continue
            chosen, rejected = (r["final"], r["initial"]) if v.winner > 0 else (r["initial"], r["final"])
            pairs.append(PreferencePair(r["prompt"], chosen, rejected, meta={
                "labeler": "constitutional_judge", "source": r["id"], "principle": p.id,
                "revision_preferred": v.winner > 0, "margin_ab": v.margin_ab, "margin_ba": v.margin_ba}))
    return pairs


def _principles(r: dict) -> list[str]:
    return [x["principle"] for x in r["rounds"]]
