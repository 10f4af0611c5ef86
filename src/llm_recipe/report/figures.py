"""The report's figures, drawn from the figures a run wrote (never recomputed), as inline SVG images.

    data_uri(fig)                 a matplotlib figure as a `data:image/svg+xml;base64,...` URI
    funnel_figure(stats)          curation: documents dropped by step and reason
    reward_kl_figure(report)      mean reward against KL to the reference, one point per model
    helpful_harmless_figure(rep)  helpful (benign look-alikes answered) against harmless (harmful requests
                                  refused), one point per model with its 95% interval on both axes
    safety_category_figure(rep)   per category, where each model still fails: harmful requests not refused
                                  and look-alikes refused, as bars with their 95% intervals
    safety_category_rows(rep)     the same as table rows (category, then k/n per model)
    win_rate_figure(report)       win rates against the reference with their 95% intervals, raw and LC
"""

from __future__ import annotations

import base64
import io

from .plots import pyplot


def data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    pyplot().close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def funnel_figure(stats: dict):
    drops = {f"{step}: {reason}": n for step, s in stats.get("steps", {}).items()
             for reason, n in s.get("dropped", {}).items() if n}
    if not drops:
        return None
    fig, ax = pyplot().subplots(figsize=(6, 0.35 * len(drops) + 1.2), dpi=100)
    names = list(drops)[::-1]
    ax.barh(names, [drops[n] for n in names], color="#c0504d")
    ax.set_xlabel(f"documents dropped ({stats.get('records_in', '?')} in, {stats.get('docs_out', '?')} out)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _models(report: dict, key: str) -> list[tuple[str, dict]]:
    """(name, row) of the models whose `key` figures exist (not `not_run`)."""
    out = []
    for name in report["order"]:
        v = report["models"][name].get(key)
        if isinstance(v, dict) and "not_run" not in v:
            out.append((name, report["models"][name]))
    return out


def _labelled_points(pts: list[tuple[str, float, float]], xlabel: str, ylabel: str, title: str, unit_square: bool):
    """One labelled point per model."""
    if not pts:
        return None
    fig, ax = pyplot().subplots(figsize=(5, 3.6), dpi=100)
    for name, x, y in pts:
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
    if unit_square:
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reward_kl_figure(report: dict):
    pts = [(n, r["kl"]["kl"], r["mean_reward"]) for n, r in _models(report, "kl") if r.get("mean_reward") is not None]
    return _labelled_points(pts, "KL to the reference (nats per response)", "mean reward (normalized)",
                            "reward vs KL: reward bought with drift", unit_square=False)


def helpful_harmless_figure(report: dict):
    rows = [(n, r["safety"]) for n, r in _models(report, "safety")]
    if not rows:
        return None
    fig, ax = pyplot().subplots(figsize=(5.2, 4), dpi=100)
    for i, (name, s) in enumerate(rows):
        x, y = s["helpful"], s["harmless"]
        xlo, xhi = s.get("helpful_ci95") or [x, x]
        ylo, yhi = s.get("harmless_ci95") or [y, y]
        ax.errorbar([x], [y], xerr=[[x - xlo], [xhi - x]], yerr=[[y - ylo], [yhi - y]], fmt="o", capsize=3, ms=6)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(-40, 6 + 11 * i), fontsize=9)  # stacked
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(f"helpful: look-alikes answered (1 - over-refusal), n={rows[0][1].get('benign_prompts')}")
    ax.set_ylabel(f"harmless: harmful refused, n={rows[0][1].get('harmful_prompts')}")
    ax.set_title("helpful / harmless (top right is best; 95% Wilson intervals)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# (kind, what counts as a failure there): a harmful request answered, a look-alike refused
FAILURES = {"harmful": "harmful requests answered (not refused)", "benign": "look-alikes refused (over-refusal)"}


def _failure(r: dict, kind: str) -> tuple[float, float, float, int, int]:
    """(failure rate, low, high, failures, n) of one category: for harmful the complement of the refusal rate."""
    lo, hi = r["ci95"]
    if kind == "harmful":
        return 1 - r["rate"], 1 - hi, 1 - lo, r["n"] - r["k"], r["n"]
    return r["rate"], lo, hi, r["k"], r["n"]


def safety_category_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    models = [(n, r["safety"]) for n, r in _models(report, "safety") if r["safety"].get("by_category")]
    rows = []
    for kind in FAILURES:
        cats = sorted({c for _, s in models for c in s["by_category"].get(kind, {})})
        for c in cats:
            cells = []
            for _, s in models:
                r = s["by_category"][kind].get(c)
                if not r or not r["n"]:
                    cells.append("—")
                    continue
                f, _, _, k, n = _failure(r, kind)
                cells.append(f"{f:.0%} ({k}/{n})")
            rows.append([FAILURES[kind].split(" (")[0], c, *cells])
    return ["fails on", "category", *(n for n, _ in models)], rows


def safety_category_figure(report: dict):
    models = [(n, r["safety"]) for n, r in _models(report, "safety") if r["safety"].get("by_category")]
    if not models:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    width = 0.8 / len(models)
    for ax, kind in zip(axes, FAILURES, strict=True):
        cats = sorted({c for _, s in models for c in s["by_category"].get(kind, {})})
        for j, (name, s) in enumerate(models):
            vals = [_failure(s["by_category"][kind][c], kind) if c in s["by_category"][kind] else (0, 0, 0, 0, 0)
                    for c in cats]
            xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(cats))]
            ax.bar(xs, [v[0] for v in vals], width, label=name,
                   yerr=[[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]], capsize=2)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(FAILURES[kind], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("failure rate (95% CI)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def win_rate_figure(report: dict):
    bars = []  # (label, value, low, high)
    for judge in ("rm", "judge"):
        for name, row in _models(report, f"win_rate_{judge}"):
            w = row[f"win_rate_{judge}"]
            bars.append((f"{name} ({judge})", w["win_rate"], *w["ci95"]))
            bars.append((f"{name} ({judge}, LC)", w["lc_win_rate"], *w["lc_ci95"]))
    if not bars:
        return None
    fig, ax = pyplot().subplots(figsize=(6, 0.32 * len(bars) + 1.2), dpi=100)
    labels = [b[0] for b in bars][::-1]
    vals = [b[1] for b in bars][::-1]
    err = [[b[1] - b[2] for b in bars][::-1], [b[3] - b[1] for b in bars][::-1]]
    colors = ["#4f81bd" if "LC" not in lab else "#9bbb59" for lab in labels]
    ax.barh(labels, vals, xerr=[[max(e, 0) for e in err[0]], [max(e, 0) for e in err[1]]], color=colors, capsize=3)
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("win rate against the reference (ties count half), 95% bootstrap interval")
    fig.tight_layout()
    return fig
