"""Training-curve plots from a run's `metrics.jsonl` (PNG files, or figures for the HTML report; headless)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def metrics_figure(metrics_path: str | os.PathLike, keys: tuple[str, ...] = ("loss", "eval_loss"),
                   title: str | None = None):
    """A figure of each key present in the log against the step, or None when none is."""
    plt = pyplot()
    events = [json.loads(ln) for ln in Path(metrics_path).read_text().splitlines() if ln.strip()]
    series = {k: [(e["step"], e[k]) for e in events if k in e] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for k, pts in series.items():
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=k)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or Path(metrics_path).parent.name)
    fig.tight_layout()
    return fig


def plot_metrics(metrics_path: str | os.PathLike, out_png: str | os.PathLike,
                 keys: tuple[str, ...] = ("loss", "eval_loss"), title: str | None = None) -> Path | None:
    """Plot each key present in the log against the step; returns the PNG path or None if empty."""
    fig = metrics_figure(metrics_path, keys, title)
    if fig is None:
        return None
    plt = pyplot()
    out = Path(out_png)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
