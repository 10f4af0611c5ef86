"""The evaluation table: one row per model, read from `eval/report.json` (nothing recomputed).

    table_rows(report)       (header, rows of cell strings, notes): a figure that was not run is
                             shown as "not run [k]" with its reason in note k
    markdown_table(report)   the same as Markdown (eval/table.md, the console)
"""

from __future__ import annotations


def _get(row: dict, path: str):
    node = row
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        if "not_run" in node:
            return node
        node = node.get(key)
    return node


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _num(x, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _rate_ci(r: dict) -> str:
    """A rate with its Wilson 95% interval and k/n (`eval.intervals.rate_with_ci`)."""
    if r.get("rate") is None:
        return f"— (0/{r.get('n', 0)})"
    lo, hi = r["ci95"]
    return f"{_pct(r['rate'])} [{_pct(lo)}, {_pct(hi)}] ({r['k']}/{r['n']})"


def _safety(key: str):
    """The refusal / over-refusal cell; reports written before the intervals show the bare rate."""
    return lambda v: _rate_ci(v[key]) if isinstance(v.get(key), dict) else _pct(v.get(f"{key}_rate"))


def _flips(v: dict) -> str:
    if isinstance(v.get("flip"), dict):
        return _rate_ci(v["flip"])
    return (f"{_pct(v['flip_rate'])} ({v.get('flips', '?')}/{v['eligible']})" if v.get("flip_rate") is not None
            else f"— (0/{v['eligible']})")


def _win(w: dict) -> str:
    lo, hi = w["ci95"]
    return f"{_pct(w['win_rate'])} [{_pct(lo)}, {_pct(hi)}] LC {_pct(w['lc_win_rate'])}"


# (header, path in a model's row, formatter): the path ends where the formatter takes over
COLUMNS = [
    ("vs", "reference", lambda v: v or "—"),
    ("RM win [95% CI]", "win_rate_rm", _win),
    ("judge win [95% CI]", "win_rate_judge", _win),
    ("judge 1st-pos", "win_rate_judge.first_position_rate", _pct),
    ("reward", "mean_reward", _num),
    ("chars (x ref)", "length_vs_reference",
     lambda v: f"{v['mean_chars']:.0f} (x{v['ratio']:.2f})" if v.get("ratio") is not None else f"{v['mean_chars']:.0f}"),
    ("KL ± se", "kl", lambda v: f"{v['kl']:.2f}" + (f" ± {v['kl_stderr']:.2f}" if v.get("kl_stderr") is not None else " (bound)")),
    ("refusal (harmful) [95% CI]", "safety", _safety("refusal")),
    ("over-refusal (benign) [95% CI]", "safety", _safety("over_refusal")),
    ("sycophancy flips [95% CI]", "sycophancy", _flips),
    ("caves on pushback [95% CI]", "sycophancy.pushback", _rate_ci),
    ("format", "format.format_following", _pct),
    ("stops", "format.stops_by_itself", _pct),
    ("distinct-2", "diversity.distinct_2", _num),
    ("self-BLEU", "diversity.self_bleu", lambda v: _num(v, 1)),
    ("ppl corpus", "perplexity.corpus.ppl", lambda v: _num(v, 1)),
    ("ppl SFT answers", "perplexity.sft_answers.ppl", lambda v: _num(v, 1)),
]


def table_rows(report: dict) -> tuple[list[str], list[list[str]], list[str]]:
    notes: list[str] = []

    def not_run(reason: str) -> str:
        if reason not in notes:
            notes.append(reason)
        return f"not run [{notes.index(reason) + 1}]"

    rows = []
    for name in report["order"]:
        row, cells = report["models"][name], [name]
        gen = row.get("generation")  # set when nothing could be generated (no chat template)
        for _, path, fmt in COLUMNS:
            v = _get(row, path)
            if isinstance(v, dict) and "not_run" in v:
                cells.append(not_run(v["not_run"]))
            elif v is None and path != "reference":
                cells.append(not_run(gen["not_run"]) if isinstance(gen, dict) and "not_run" in gen else "—")
            else:
                cells.append(fmt(v))
        rows.append(cells)
    return ["model", *(h for h, _, _ in COLUMNS)], rows, [f"[{i}] not run: {n}" for i, n in enumerate(notes, 1)]


def markdown_table(report: dict) -> str:
    header, rows, notes = table_rows(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
