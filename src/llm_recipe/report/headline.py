"""The few numbers a person wants after a recipe run, one line per stage, read back from the
reports each stage already wrote (so a re-run that skipped stages prints the same figures).

    headline_results(run_dir) -> {stage: {metric: value}}   only stages that left a report
    format_headline(results)  -> printable lines
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import read_json


def _read(path: Path) -> dict | None:
    return read_json(path) if path.exists() else None


def _last_eval(metrics: Path, key: str) -> tuple[float, float] | None:
    """(first, last) value of `key` in a metrics.jsonl: the before/after of a training run."""
    if not metrics.exists():
        return None
    vals = [e[key] for e in map(json.loads, metrics.read_text().splitlines()) if key in e]
    return (vals[0], vals[-1]) if vals else None


def headline_results(run_dir: str | Path) -> dict[str, dict]:
    out = Path(run_dir)
    res: dict[str, dict] = {}
    if loss := _last_eval(out / "pretrain" / "metrics.jsonl", "eval_loss"):
        res["pretrain"] = {"eval_loss_first": loss[0], "eval_loss_last": loss[1]}
    if (tf := _read(out / "sft" / "format_following.json")) and "not_run" not in tf:
        res["sft"] = {"format_following_before": tf["before"]["rate"], "format_following_after": tf["after"]["rate"],
                      "held_out_prompts": tf["after"]["n"]}
        if tf["after"].get("states_fact") is not None:  # content beside form, on the fact questions
            res["sft"] |= {"states_fact_before": tf["before"]["states_fact"], "states_fact_after": tf["after"]["states_fact"],
                           "fact_prompts": tf["after"]["fact_prompts"]}
    if rm := _read(out / "reward_model" / "rm_report.json"):
        res["rm"] = {"eval_accuracy_before": rm.get("initial_eval_accuracy"), "eval_accuracy": rm["eval"].get("accuracy")}
    if bon := _read(out / "best_of_n" / "report.json"):
        res["bon"] = {"n": bon["n"], "mean_reward_n1": bon["mean_first_sample_reward"],
                      "mean_reward_best": bon["mean_best_reward"], "token_cost_ratio": bon["token_cost_ratio"]}
    if dpo := _read(out / "dpo" / "style_report.json"):
        res["dpo"] = {"prefix": dpo["prefix"].strip(), "success_sft": dpo["sft_rate"], "success_dpo": dpo["dpo_rate"],
                      "content_overlap": dpo["overlap_mean"], "held_out_prompts": dpo["prompts"]}
        if dpo.get("still_correct") is not None:  # of the prompts the SFT model answered right
            res["dpo"]["still_correct"] = dpo["still_correct"]
    for algo in ("ppo", "grpo"):
        if rl := _read(out / algo / "summary.json"):
            b, a = rl["before"], rl["after"]
            res[algo] = {"success_before": b.get("success"), "success_after": a.get("success"),
                         "score_before": b.get("score"), "score_after": a.get("score"), "kl_to_reference": a.get("kl")}
    return res


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def format_headline(results: dict[str, dict]) -> list[str]:
    return [f"{stage:>9}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
            for stage, figures in results.items()]
