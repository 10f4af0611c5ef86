"""Training curves: series on different scales get a panel each (RL logs reward, KL, length...)."""

import json

from llm_recipe.report.plots import metrics_figure, plot_metrics


def test_separate_panels_one_per_logged_series(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "reward_mean": s / 10, "kl": 5.0 * s, "response_len": 30 - s})
                           + "\n" for s in range(1, 6)))
    fig = metrics_figure(log, ("reward_mean", "kl", "response_len", "entropy"), "PPO", separate=True)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["reward_mean", "kl", "response_len"]  # no entropy logged
    assert [len(ax.lines) for ax in visible] == [1, 1, 1]
    together = metrics_figure(log, ("reward_mean", "kl"), "one axis")
    assert len(together.axes) == 1 and len(together.axes[0].lines) == 2
    assert plot_metrics(log, tmp_path / "rl.png", ("reward_mean", "kl"), separate=True).stat().st_size > 1000
