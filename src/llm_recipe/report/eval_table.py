"""The evaluation table: one row per model, read from `eval/report.json` (nothing recomputed).

    table_rows(report)       (header, rows of cell strings, notes): a figure that was not run is
                             shown as "not run [k]" with its reason in note k
    markdown_table(report)   the same as Markdown (eval/table.md, the console)
    mt_bench_rows(report)    MT-Bench: (header, rows) of the mean grade per model, overall and per category
    judge_rows(report)       (header, rows): every judge figure, the judge that produced it and its biases
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
# shown only when some model has the figure (a run that trains a verifiable skill: eval/task_accuracy)
TASK_COLUMNS = [
    ("task acc [95% CI]", "task", lambda v: f"{_pct(v['accuracy'])} [{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]"),
    ("task Δ vs ref [95% CI]", "task.vs_reference",
     lambda v: f"{100 * v['delta']:+.0f} [{100 * v['ci95'][0]:+.0f}, {100 * v['ci95'][1]:+.0f}] pts"),
    ("pass@1 / pass@k", "task",
     lambda v: f"{_pct(v['pass@1'])} / {_pct(v['pass@' + str(v['samples'])])} (k={v['samples']})"
     if v.get("samples") else "—"),
    ("task: prompt's language", "task.answer_in_prompt_language", _pct),
]


def table_rows(report: dict) -> tuple[list[str], list[list[str]], list[str]]:
    notes: list[str] = []

    def not_run(reason: str) -> str:
        if reason not in notes:
            notes.append(reason)
        return f"not run [{notes.index(reason) + 1}]"

    rows = []
    columns = COLUMNS + (TASK_COLUMNS if any("task" in report["models"][n] for n in report["order"]) else [])
    for name in report["order"]:
        row, cells = report["models"][name], [name]
        gen = row.get("generation")  # set when nothing could be generated (no chat template)
        for _, path, fmt in columns:
            v = _get(row, path)
            if isinstance(v, dict) and "not_run" in v:
                cells.append(not_run(v["not_run"]))
            elif v is None and path != "reference":
                cells.append(not_run(gen["not_run"]) if isinstance(gen, dict) and "not_run" in gen else "—")
            else:
                cells.append(fmt(v))
        rows.append(cells)
    return ["model", *(h for h, _, _ in columns)], rows, [f"[{i}] not run: {n}" for i, n in enumerate(notes, 1)]


def mt_bench_rows(report: dict) -> tuple[list[str], list[list[str]]] | None:
    mt = report.get("mt_bench")
    if not isinstance(mt, dict) or "not_run" in mt:
        return None
    cats = mt["set"]["categories"]
    header = ["model", "score", "turn 1", "turn 2", *cats, "vs reference (pairwise)", "graded / unreadable"]
    rows = []
    for name in report["order"]:
        m = mt["models"].get(name)
        if m is None:
            continue
        pw = mt["pairwise"].get(name)
        rows.append([name, _num(m["score"]), _num(m["by_turn"].get("1")), _num(m["by_turn"].get("2")),
                     *(_num(m["by_category"].get(c), 1) for c in cats),
                     f"{_win(pw)} vs {pw['reference']}" if pw else "—", f"{m['graded']} / {m['unparseable']}"])
    return header, rows


def judge_rows(report: dict) -> tuple[list[str], list[list[str]]] | None:
    judges = report.get("judges")
    if not judges:
        return None
    header = ["figure", "judge", "1st-position picks", "self-judged", "length corr. (Spearman)", "unreadable",
              "consistency", "calls / cache hits", "tokens in / out"]
    rows = []
    for j in judges:
        usage = (j.get("info") or {}).get("usage") or {}
        cons = j.get("consistency") or {}
        agree = j.get("agreement_with_grades")
        rows.append([j["figure"], str(j["judge"]), _pct(j.get("first_position_rate")),
                     ", ".join(j["self_judged"]) + " (judges itself)" if j["self_judged"] else "no",
                     _num(j.get("length_correlation")), str(j.get("unparseable", 0)),
                     (f"same grade twice {_pct(cons.get('same_score'))} of {cons.get('both_readable')}" if cons else
                      f"agrees with grades {_pct(agree)}" if agree is not None else "—"),
                     f"{usage.get('calls', '—')} / {usage.get('cache_hits', '—')}" if usage else "—",
                     f"{usage.get('prompt_tokens', '—')} / {usage.get('completion_tokens', '—')}" if usage else "—"])
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown_table(report: dict) -> str:
    header, rows, notes = table_rows(report)
    lines = markdown(header, rows) + ([""] + notes if notes else [])
    for title, part in (("MT-Bench (mean grade 1-10)", mt_bench_rows(report)), ("Judges", judge_rows(report))):
        if part is not None:
            lines += ["", title, "", *markdown(*part)]
    return "\n".join(lines) + "\n"
