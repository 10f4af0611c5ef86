"""How far a judge's figures can be trusted: the biases reported beside every judge figure.

    self_judged(identity, models)       the judged models that are the judge itself (same folder, or
                                        the same weights by sha256): a judge grading its own answers
                                        is flagged, its figures for that model are not neutral
    length_correlation(values, lengths) Spearman correlation of verdicts / grades with answer length
                                        (a judge that simply likes long answers shows a high one)
    judge_bias(...)                     the bias block of one judge figure: position bias (share of
                                        first-position picks in the both-order protocol), self
                                        preference, length correlation
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ..provenance import model_hashes


def _resolved(path: str | os.PathLike | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    return str(p.resolve()) if p.exists() else str(path)


def self_judged(identity: dict | None, models: dict[str, str | None]) -> list[str]:
    """Names of the models whose folder or weights are the judge's (`identity`: {"path", "weights"})."""
    if not identity:
        return []
    judge_path, judge_weights = _resolved(identity.get("path")), identity.get("weights")
    out = []
    for name, path in models.items():
        if not path:
            continue
        if judge_path and _resolved(path) == judge_path or judge_weights and Path(path).is_dir() and model_hashes(path)["weights"] == judge_weights:
            out.append(name)
    return out


def length_correlation(values: Sequence[float], lengths: Sequence[float]) -> dict:
    """Spearman rho of values (outcomes, grades) with lengths (or length differences)."""
    from scipy.stats import spearmanr

    pairs = [(v, n) for v, n in zip(values, lengths, strict=True) if v is not None]
    if len(pairs) < 3 or len({v for v, _ in pairs}) < 2 or len({n for _, n in pairs}) < 2:
        return {"spearman": None, "n": len(pairs)}
    rho = spearmanr([v for v, _ in pairs], [n for _, n in pairs]).statistic
    return {"spearman": None if math.isnan(rho) else float(rho), "n": len(pairs)}


def judge_bias(first_position_rate: float | None, self_judged_models: list[str], length: dict) -> dict:
    return {"first_position_rate": first_position_rate, "self_judged": self_judged_models,
            "length_correlation": length.get("spearman"), "length_n": length.get("n")}


def _pooled(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def judge_figures(rows: dict[str, dict], win_rate_judge: dict | None, mt_bench: dict | None) -> list[dict]:
    """One entry per judge figure of the eval report: which judge produced it and how biased it was
    (position bias pooled over the comparisons, the models it judged that are itself, its verdicts'
    or grades' correlation with answer length), with what it cost (calls, tokens)."""
    out = []
    judged = [r["win_rate_judge"] for r in rows.values()
              if isinstance(r.get("win_rate_judge"), dict) and "not_run" not in r["win_rate_judge"]]
    if judged and win_rate_judge is not None:
        out.append({"figure": "win rate vs reference (held-out prompts)", "judge": judged[0].get("judge"),
                    "info": win_rate_judge,
                    "first_position_rate": _pooled(j.get("first_position_rate") for j in judged),
                    "self_judged": sorted({m for j in judged for m in j.get("self_judged", [])}),
                    "length_correlation": _pooled(j.get("length_correlation") for j in judged),
                    "unparseable": sum(j.get("unparseable", 0) for j in judged)})
    if isinstance(mt_bench, dict) and "not_run" not in mt_bench:
        b, info = mt_bench["bias"], mt_bench["judge_info"]
        unread = sum(m["unparseable"] for m in mt_bench["models"].values())
        out.append({"figure": "MT-Bench grades (1-10)", "judge": mt_bench["judge"], "info": info,
                    "first_position_rate": None, "self_judged": b["self_judged"],
                    "length_correlation": b["length_correlation"], "unparseable": unread,
                    "consistency": mt_bench["consistency"]})
        if mt_bench["pairwise"]:
            pw = mt_bench["pairwise"].values()
            out.append({"figure": "MT-Bench pairwise vs reference", "judge": mt_bench["judge"], "info": info,
                        "first_position_rate": b["first_position_rate"], "self_judged": b["self_judged"],
                        "length_correlation": _pooled(p.get("length_correlation") for p in pw),
                        "unparseable": sum(p.get("unparseable", 0) for p in pw),
                        "agreement_with_grades": _pooled(p["agreement_with_grades"]["share"] for p in pw)})
    return out
