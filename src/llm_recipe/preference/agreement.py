"""Inter-annotator agreement: Cohen's kappa (two annotators), Fleiss' kappa (more), raw
agreement, quality bands, per-item disagreements, and the low-agreement filter.

Kappa corrects raw agreement for the agreement expected by chance:
    kappa = (p_observed - p_expected) / (1 - p_expected)
Cohen: p_expected from each annotator's own label frequencies. Fleiss: per-item agreement
P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), p_expected = sum_j p_j^2 with p_j the overall
share of category j (Fleiss 1971; items may have different rater counts n_i, which reduces to
the textbook formula when all n_i are equal).
Bands: > 0.8 excellent, > 0.6 usable, > 0.4 review, else rewrite the guidelines.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..config import AgreementConfig
from ..files import write_json
from .human import LABELS, AnnotatedItem
from .records import PreferencePair, SkipLog, write_pairs

BANDS = ((0.8, "excellent"), (0.6, "usable"), (0.4, "review"))


def band(kappa: float | None) -> str | None:
    if kappa is None or np.isnan(kappa):
        return None
    return next((name for lo, name in BANDS if kappa > lo), "rewrite_guidelines")


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two label sequences over the same items."""
    if len(a) != len(b) or not a:
        raise ValueError("cohen_kappa needs two equally long, non-empty label sequences")
    n = len(a)
    p_obs = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_exp = sum(ca[c] * cb[c] for c in ca.keys() | cb.keys()) / (n * n)
    if p_exp == 1.0:  # both annotators used one and the same label throughout
        return 1.0
    return (p_obs - p_exp) / (1.0 - p_exp)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an [items, categories] table of how many raters chose each category."""
    counts = np.asarray(counts, dtype=np.float64)
    n_i = counts.sum(axis=1)
    if counts.ndim != 2 or len(counts) == 0 or np.any(n_i < 2):
        raise ValueError("fleiss_kappa needs a non-empty [items, categories] table with >= 2 raters per item")
    p_i = ((counts**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_j = counts.sum(axis=0) / n_i.sum()
    p_exp = float((p_j**2).sum())
    if p_exp == 1.0:
        return 1.0
    return (float(p_i.mean()) - p_exp) / (1.0 - p_exp)


def item_agreement(labels: Sequence[str]) -> tuple[str | None, float]:
    """(majority label or None when tied for first, share of raters agreeing with it)."""
    counts = Counter(labels).most_common()
    top = counts[0][1]
    majority = counts[0][0] if len(counts) == 1 or counts[1][1] < top else None
    return majority, top / len(labels)


def agreement_report(items: dict[str, AnnotatedItem], min_agreement: float = 0.75, min_annotators: int = 2) -> dict:
    """Kappas, raw agreement, band, the per-item disagreement list and the kept item ids."""
    rated = {k: it for k, it in items.items() if len(it.labels) >= min_annotators and len(it.labels) >= 2}
    annotators = sorted({a for it in items.values() for a in it.labels})
    pairwise = []
    for x, y in itertools.combinations(annotators, 2):
        common = [it for it in rated.values() if x in it.labels and y in it.labels]
        if common:
            k = cohen_kappa([it.labels[x] for it in common], [it.labels[y] for it in common])
            pairwise.append({"annotators": [x, y], "items": len(common), "cohen_kappa": k})
    fleiss = None
    if rated:
        table = np.array([[Counter(it.labels.values())[c] for c in LABELS] for it in rated.values()])
        fleiss = fleiss_kappa(table)
    # Raw agreement: share of agreeing rater pairs, over all items' rater pairs.
    agree = total = 0
    disagreements, kept = [], []
    for it in rated.values():
        labels = list(it.labels.values())
        for u, v in itertools.combinations(labels, 2):
            agree += u == v
            total += 1
        majority, share = item_agreement(labels)
        if len(set(labels)) > 1:
            disagreements.append({"item_id": it.item_id, "labels": dict(it.labels), "majority": majority,
                                  "agreement": share, "where": it.where})
        if majority in ("A", "B") and share >= min_agreement:
            kept.append(it.item_id)
    mean_cohen = float(np.mean([p["cohen_kappa"] for p in pairwise])) if pairwise else None
    headline = pairwise[0]["cohen_kappa"] if len(annotators) == 2 and pairwise else fleiss
    return {
        "annotators": annotators,
        "items": len(items),
        "items_rated": len(rated),
        "items_skipped_too_few_annotators": len(items) - len(rated),
        "raw_agreement": agree / total if total else None,
        "cohen_kappa_pairwise": pairwise,
        "cohen_kappa_mean": mean_cohen,
        "fleiss_kappa": fleiss,
        "kappa": headline,  # Cohen's for two annotators, Fleiss' for more
        "band": band(headline),
        "disagreements": sorted(disagreements, key=lambda d: (d["agreement"], d["item_id"])),
        "kept_items": kept,
        "min_agreement": min_agreement,
    }


def filtered_pairs(items: dict[str, AnnotatedItem], kept_ids: Sequence[str]) -> tuple[list[PreferencePair], int]:
    """Pairs from the kept items' majority labels; returns (pairs, kept items lacking texts)."""
    pairs, missing = [], 0
    for item_id in kept_ids:
        it = items[item_id]
        if not it.has_texts:
            missing += 1
            continue
        majority, share = item_agreement(list(it.labels.values()))
        chosen, rejected = (it.response_a, it.response_b) if majority == "A" else (it.response_b, it.response_a)
        pairs.append(PreferencePair(it.prompt, chosen, rejected, meta={
            "labeler": "human", "item_id": item_id, "agreement": share, "annotators": len(it.labels)}))
    return pairs, missing


def write_agreement(items: dict[str, AnnotatedItem], log: SkipLog, report_out: str | os.PathLike,
                    cfg: AgreementConfig, pairs_out: str | os.PathLike | None = None) -> dict:
    """What `prefs agreement` writes: the report (with how the annotations were read) and, when
    `pairs_out` is given, the kept items as pairs. Both files are written atomically."""
    report = agreement_report(items, cfg.min_agreement, cfg.min_annotators)
    report["read"] = log.to_json()
    if pairs_out is not None:
        pairs, missing = filtered_pairs(items, report["kept_items"])
        write_pairs(pairs_out, pairs)
        report["filtered_pairs"] = len(pairs)
        report["kept_items_without_texts"] = missing
    write_json(report_out, report)
    return report
