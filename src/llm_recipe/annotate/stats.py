"""The dashboard's figures, from the stored answers: the annotation records `prefs agreement` reads,
their kappa and band (the same functions, so the same numbers), agreement per guidelines version,
each annotator's agreement with the others' majority, and position bias.

Position bias: of the answers that pick a best response, the share whose pick was shown first.
Without bias it is 1/2 for two answers (1/k for a ranking of k); the p-value is a two-sided
binomial test against that (for mixed k, against the mean of 1/k).
"""

from __future__ import annotations

from collections import defaultdict

from ..preference.agreement import agreement_report, item_agreement
from ..preference.human import AnnotatedItem, add_annotation
from .modes import MODES


def annotation_records(project: dict, answers: list[dict]) -> list[dict]:
    """The answers (skips left out) as `prefs agreement` input lines, in item order."""
    mode = MODES[project["mode"]]
    out = []
    for a in answers:
        if a["value"] is None:
            continue
        first = "AB"[a["shown"][0]] if len(a["shown"]) == 2 else a["shown"][0]
        for rec in mode.records(a, a["value"]):
            out.append({"item_id": rec.pop("item_id"), "annotator": a["annotator"], "label": rec.pop("label"), **rec,
                        "shown_first": first, "guidelines_version": a["guidelines_version"]})
    return out


def annotated_items(records: list[dict]) -> dict[str, AnnotatedItem]:
    items: dict[str, AnnotatedItem] = {}
    for n, rec in enumerate(records, start=1):
        add_annotation(items, rec, f"answer {n}")
    return items


def agreement(project: dict, records: list[dict]) -> dict:
    """`prefs agreement`'s report of these records, under the project's threshold."""
    return agreement_report(annotated_items(records), project["min_agreement"])


def by_guidelines_version(project: dict, records: list[dict]) -> list[dict]:
    """Kappa and band of the answers given under each guidelines version (did the rewrite help?)."""
    out = []
    for v in sorted({r["guidelines_version"] for r in records}):
        rep = agreement(project, [r for r in records if r["guidelines_version"] == v])
        out.append({"version": v, "labels": sum(r["guidelines_version"] == v for r in records),
                    "items_rated": rep["items_rated"], "kappa": rep["kappa"], "band": rep["band"]})
    return out


def majority_agreement(records: list[dict]) -> dict[str, dict]:
    """Per annotator: on items where the *other* annotators have a clear majority, the share of this
    annotator's labels that match it (an annotator far below the rest needs a word about the guidelines)."""
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for r in records:
        by_item[r["item_id"]][r["annotator"]] = r["label"]
    hits: dict[str, list[bool]] = defaultdict(list)
    for labels in by_item.values():
        for ann, lab in labels.items():
            others = [v for a, v in labels.items() if a != ann]
            majority = item_agreement(others)[0] if others else None
            if majority is not None:
                hits[ann].append(lab == majority)
    return {a: {"items": len(h), "agreement": sum(h) / len(h)} for a, h in hits.items()}


def position_bias(project: dict, answers: list[dict]) -> dict:
    """Overall and per annotator: decisive answers, share of picks shown first, expected share, p-value."""
    from scipy.stats import binomtest  # 2 s of imports: not at server start

    mode = MODES[project["mode"]]
    picks: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    for a in answers:
        if a["value"] is None or (won := mode.winner(a["value"])) is None:
            continue
        picks[a["annotator"]].append((a["shown"][0] == won, 1 / len(a["shown"])))

    def summary(rows: list[tuple[bool, float]]) -> dict:
        if not rows:
            return {"decisive": 0, "first_share": None, "expected": None, "p_value": None}
        first = sum(f for f, _ in rows)
        expected = sum(p for _, p in rows) / len(rows)
        return {"decisive": len(rows), "first_share": first / len(rows), "expected": expected,
                "p_value": binomtest(first, len(rows), expected).pvalue}

    return {"overall": summary([r for rows in picks.values() for r in rows]),
            "annotators": {a: summary(rows) for a, rows in sorted(picks.items())}}
