"""Task-category coverage of an SFT set, so skew is visible before training on it.

Counts examples and tokens per category (qa, summarization, creative, code, translation,
reasoning, format, safety) and per language, and flags a category whose example count or token
share is more than `skew_ratio` times above or below the median category (0 = missing).
Records without a `category` field get one from `infer_category`, a keyword heuristic (reported
as inferred, so nobody mistakes it for labels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CATEGORIES = ("qa", "summarization", "creative", "code", "translation", "reasoning", "format", "safety")

# Checked in order; the first match wins. Patterns look at the first user turn (and the answer
# for refusals and code, which are recognisable from the answer alone).
_RULES: list[tuple[str, re.Pattern, str]] = [
    ("safety", re.compile(r"I'm sorry, but I can't|I cannot help|申し訳ありませんが|お手伝いできません"), "answer"),
    ("code", re.compile(r"```|\bdef |\bfunction\b|\bPython\b|関数|コード"), "both"),
    ("translation", re.compile(r"[Tt]ranslate|翻訳|訳して|英語に|日本語に"), "prompt"),
    ("summarization", re.compile(r"[Ss]ummar|要約|まとめて"), "prompt"),
    ("format", re.compile(r"\b[Ll]ist\b|JSON|one word|bullet|挙げて|一語|箇条書き"), "prompt"),
    ("creative", re.compile(r"\bstory\b|\bpoem\b|[Ww]rite a|物語|詩を|作文"), "prompt"),
    ("reasoning", re.compile(r"[Ww]hich is|[Cc]ompare|\bwhy\b|[Hh]ow many|どちら|比べ|なぜ|何個|同じ"), "prompt"),
]


def infer_category(messages: Sequence[dict]) -> str:
    prompt = next((m["content"] for m in messages if m["role"] == "user"), "")
    answer = next((m["content"] for m in messages if m["role"] == "assistant"), "")
    for cat, pat, where in _RULES:
        text = {"prompt": prompt, "answer": answer, "both": prompt + "\n" + answer}[where]
        if pat.search(text):
            return cat
    return "qa"


def coverage_report(examples: Sequence, skew_ratio: float = 3.0, inferred: int = 0) -> dict:
    """`examples`: items with `.category`, `.lang`, `len()` (tokens) and `.n_trained`."""
    n = len(examples)
    total_tokens = sum(len(e) for e in examples) or 1
    cats: dict[str, dict] = {c: {"examples": 0, "tokens": 0, "trained_tokens": 0, "ja": 0, "en": 0} for c in CATEGORIES}
    for e in examples:
        c = cats.setdefault(e.category or "qa", {"examples": 0, "tokens": 0, "trained_tokens": 0, "ja": 0, "en": 0})
        c["examples"] += 1
        c["tokens"] += len(e)
        c["trained_tokens"] += e.n_trained
        c[e.lang] = c.get(e.lang, 0) + 1
    for c in cats.values():
        c["share"] = round(c["examples"] / max(n, 1), 4)
        c["token_share"] = round(c["tokens"] / total_tokens, 4)
    flags = []
    for key, label in (("examples", "examples"), ("tokens", "tokens")):
        counts = np.array([cats[c][key] for c in CATEGORIES], dtype=float)
        med = float(np.median(counts))
        for c, v in zip(CATEGORIES, counts, strict=True):
            if v == 0:
                if key == "examples":
                    flags.append(f"{c}: missing")
            elif med > 0 and v > skew_ratio * med:
                flags.append(f"{c}: {label} {v / med:.1f}x the median category (over-represented)")
            elif med > 0 and v * skew_ratio < med:
                flags.append(f"{c}: {label} {med / v:.1f}x below the median category (under-represented)")
    langs: dict[str, int] = {}
    for e in examples:
        langs[e.lang] = langs.get(e.lang, 0) + 1
    return {"examples": n, "tokens": sum(len(e) for e in examples), "skew_ratio": skew_ratio,
            "categories": cats, "languages": langs, "inferred_categories": inferred, "flags": flags}


def format_coverage(report: dict) -> str:
    """A plain-text table for the CLI."""
    lines = [f"{'category':<14}{'examples':>9}{'share':>8}{'tokens':>9}{'tok share':>10}{'ja':>6}{'en':>6}"]
    for name, c in report["categories"].items():
        lines.append(f"{name:<14}{c['examples']:>9}{c['share']:>8.1%}{c['tokens']:>9}{c['token_share']:>10.1%}"
                     f"{c.get('ja', 0):>6}{c.get('en', 0):>6}")
    lines.append(f"{'total':<14}{report['examples']:>9}{'':>8}{report['tokens']:>9}")
    if report.get("inferred_categories"):
        lines.append(f"({report['inferred_categories']} categories inferred by keyword heuristic)")
    lines += [f"SKEW {f}" for f in report["flags"]] or [f"no category beyond {report['skew_ratio']}x the median"]
    return "\n".join(lines)
