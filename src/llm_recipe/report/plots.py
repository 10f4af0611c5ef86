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
                   title: str | None = None, separate: bool = False):
    """A figure of each key present in the log against the step, or None when none is. `separate`:
    one small panel per key (series on different scales, e.g. RL's reward, KL and length)."""
    plt = pyplot()
    events = [json.loads(ln) for ln in Path(metrics_path).read_text().splitlines() if ln.strip()]
    series = {k: [(e["step"], e[k]) for e in events if k in e] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    cols = min(3, len(series)) if separate else 1
    rows = -(-len(series) // cols) if separate else 1
    fig, axes = plt.subplots(rows, cols, figsize=(6 if cols == 1 else 3.4 * cols, 3.5 if rows == 1 else 2.4 * rows),
                             dpi=110, squeeze=False)
    panels = list(axes.flat)
    for i, (k, pts) in enumerate(series.items()):
        ax = panels[i] if separate else panels[0]
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=k)
        ax.grid(alpha=0.3)
        if separate:
            ax.set_title(k, fontsize=9)
    for ax in panels[len(series):] if separate else []:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    if not separate:
        panels[0].legend()
    fig.suptitle(title or Path(metrics_path).parent.name, fontsize=10) if separate else \
        panels[0].set_title(title or Path(metrics_path).parent.name)
    fig.tight_layout()
    return fig


def plot_metrics(metrics_path: str | os.PathLike, out_png: str | os.PathLike,
                 keys: tuple[str, ...] = ("loss", "eval_loss"), title: str | None = None,
                 separate: bool = False) -> Path | None:
    """Plot each key present in the log against the step; returns the PNG path or None if empty."""
    fig = metrics_figure(metrics_path, keys, title, separate)
    if fig is None:
        return None
    plt = pyplot()
    out = Path(out_png)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
