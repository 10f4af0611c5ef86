"""One self-contained HTML page for a whole run: `llm-recipe report RUN_DIR` -> RUN_DIR/report.html.

Sections: overview, stages (config, seconds, headline figures), data (curation funnel, skipped
records by reason), training curves, evaluation (table, reward vs KL, helpful/harmless, win
rates), annotator agreement, answers side by side. No CDN, no script, no network: plots are
inline SVG images, styles are inline. Every number is read from the files the run wrote
(summary.json, stats.json, data_report.json, metrics.jsonl, eval/report.json); nothing is
recomputed, so the page cannot disagree with them. A part the run did not produce says so
("not run: reason") instead of disappearing.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import yaml

from ..files import atomic_write, read_json
from .eval_table import table_rows
from .figures import (
    data_uri,
    funnel_figure,
    helpful_harmless_figure,
    reward_kl_figure,
    safety_category_figure,
    safety_category_rows,
    win_rate_figure,
)
from .plots import metrics_figure

SECTIONS = ("overview", "stages", "data", "curves", "evaluation", "agreement", "answers")
# Stage folder -> (title, key groups plotted, one figure per group)
CURVES = {"pretrain": ("pretraining", [("loss", "eval_loss")]), "sft": ("SFT", [("loss", "eval_loss")]),
          "reward_model": ("reward model", [("loss", "eval_loss"), ("eval_accuracy",)]),
          "dpo": ("DPO", [("loss", "eval_loss"), ("eval_reward_accuracy", "eval_reward_margin")]),
          # one row per round (its 'step' is the round): the labeler's score of the policy's own samples
          "online_dpo": ("online DPO, by round", [("mean_score", "mean_score_chosen", "mean_score_rejected"),
                                                  ("eval_reward_accuracy",)]),
          "ppo": ("PPO", [("reward_mean",), ("kl",), ("response_len",)]),
          "grpo": ("GRPO", [("reward_mean",), ("kl",), ("response_len",)])}
STAGE_SECTIONS = {"corpus": "curate", "tokenizer": "tokenizer", "pretrain": "pretrain", "sample": "generate",
                  "sft": "sft", "rm": "rm", "bon": "bon", "dpo": "dpo", "online_dpo": "online_dpo",
                  "constitutional": "constitutional", "ppo": "ppo", "grpo": "grpo", "eval": "eval",
                  "import": "model"}
CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;
vertical-align:top;text-align:left}th{background:#f3f3f3}.notrun{color:#a33}img{max-width:100%;margin:.3em}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.85em}.answer{white-space:pre-wrap;max-width:30em}
nav a{margin-right:1em}.wide{overflow-x:auto}"""


def _read(path: Path):
    return read_json(path) if path.is_file() else None


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else _esc(v)


def _not_run(reason: str) -> str:
    return f'<p class="notrun">not run: {_esc(reason)}</p>'


def _img(fig, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="{data_uri(fig)}">' if fig is not None else ""


def _table(header: list[str], rows: list[list[str]], escape: bool = True) -> str:
    cell = _esc if escape else str
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _overview(run: Path, summary: dict | None) -> str:
    manifest = next((m for m in (_read(p) for p in sorted(run.glob("*/run.json"))) if m), {})
    rows = [["run folder", str(run)], ["git commit", manifest.get("git_commit") or "unknown"]]
    if summary:
        rows.append(["total seconds", summary.get("total_seconds")])
    rows += [[k, v] for k, v in (manifest.get("versions") or {}).items() if v]
    return _table(["", ""], rows)


def _stages(run: Path, summary: dict | None, cfg: dict) -> str:
    if not summary:
        return _not_run("no summary.json (the run did not finish): per-stage times are unknown")
    results = summary.get("results", {})
    rows = []
    for stage, secs in summary.get("seconds", {}).items():
        figures = results.get({"rm": "rm"}.get(stage, stage), {})
        section = cfg.get(STAGE_SECTIONS.get(stage, stage))
        conf = (f"<details><summary>{_esc(STAGE_SECTIONS.get(stage, stage))}:</summary><pre>"
                f"{_esc(yaml.safe_dump(section, allow_unicode=True, sort_keys=False))}</pre></details>"
                if section is not None else "")
        rows.append([_esc(stage), _esc(secs), ", ".join(f"{_esc(k)} {_fmt(v)}" for k, v in figures.items()), conf])
    return _table(["stage", "seconds", "headline figures", "config"], rows, escape=False)


def _skips(node, path: str = "") -> list[tuple[str, str, int]]:
    """Every `skipped: {reason: count}` dict in a data report, with where it sits."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else k
            if k == "skipped" and isinstance(v, dict):
                out += [(path or "(top)", str(reason), n) for reason, n in v.items() if isinstance(n, int)]
            else:
                out += _skips(v, here)
    return out


def _token_shards(stats: dict | None) -> str:
    """Tokens per source of the run's token shards (`curate.tokenize`) and the mixture sampled from them."""
    if not stats or "tokens" not in stats:
        return ""
    mix = stats.get("mixture", {}).get("sources", {})
    rows = [[src, v["documents"], v["train_tokens"], v["val_tokens"], v["tokens_per_char"],
             f"{mix[src]['weight']:.2f} ({mix[src]['epochs']:.2f} epochs)" if src in mix else "—"]
            for src, v in stats["tokens"]["sources"].items()]
    return ("<h3>Token shards: tokens per source</h3>"
            + _table(["source", "documents", "train tokens", "held-out tokens", "tokens per char", "mixture weight"],
                     rows))


def _data(run: Path) -> str:
    parts = []
    stats = _read(run / "curated" / "stats.json")
    if stats:
        parts.append(f"<h3>Curation: {stats['records_in']} documents in, {stats['docs_out']} out, "
                     f"{stats['dropped_total']} dropped</h3>")
        parts.append(_img(funnel_figure(stats), "documents dropped by curation step"))
        rows = [[step, s["docs_in"], s["docs_out"], ", ".join(f"{r} {n}" for r, n in s.get("dropped", {}).items()),
                 ", ".join(f"{r} {n}" for r, n in s.get("modified", {}).items())] for step, s in stats["steps"].items()]
        parts.append(_table(["step", "in", "out", "dropped (reason count)", "modified"], rows))
        parts += [_not_run(f"curation step {s['step']}: {s['reason']}") for s in stats.get("skipped_steps", [])]
    else:
        parts.append(_not_run("the run did not curate a corpus (no curated/stats.json)"))
    parts.append(_token_shards(_read(run / "curated" / "tokens" / "stats.json")))
    rows = []
    for report in sorted(run.glob("*/data_report.json")):
        found = _skips(_read(report))
        rows += [[report.parent.name, where, reason, n] for where, reason, n in found]
        if not found:
            rows.append([report.parent.name, "", "(nothing skipped)", 0])
    parts.append("<h3>Skipped records by stage and reason</h3>" + (_table(["stage", "where", "reason", "count"], rows)
                                                                   if rows else _not_run("no stage wrote a data report")))
    return "".join(parts)


def _curves(run: Path) -> str:
    parts = []
    for folder, (title, groups) in CURVES.items():
        metrics = run / folder / "metrics.jsonl"
        if not metrics.is_file():
            continue
        imgs = [_img(metrics_figure(metrics, keys, f"{title}: {', '.join(keys)}"), f"{title} {' '.join(keys)}")
                for keys in groups]
        parts.append(f"<h3>{_esc(title)}</h3>" + "".join(imgs))
    return "".join(parts) or _not_run("no training stage wrote metrics.jsonl")


def _evaluation(run: Path) -> str:
    report = _read(run / "eval" / "report.json")
    if report is None:
        return _not_run("the run has no eval/report.json (add an eval: section, or run `llm-recipe eval RUN_DIR`)")
    header, rows, notes = table_rows(report)
    parts = [f"<p>{report['prompts']['held_out']} held-out prompts ({_esc(report['prompts']['source'])}); safety set "
             f"{_esc(report['sets']['safety']['name'])} ({report['sets']['safety']['items']} prompts), sycophancy set "
             f"{_esc(report['sets']['sycophancy']['name'])} ({report['sets']['sycophancy']['items']} items).</p>",
             f"<div class=wide>{_table(header, rows)}</div>", "".join(f"<p class='notrun'>{_esc(n)}</p>" for n in notes)]
    corr = report.get("reward_length_correlation", {})
    if "not_run" in corr:
        parts.append(_not_run(f"reward-length correlation: {corr['not_run']}"))
    else:
        parts.append(f"<p>Length bias of the reward model: Pearson r(reward, length) = {_fmt(corr['pearson'])}, "
                     f"Spearman {_fmt(corr['spearman'])} over {corr['n']} answers of every model.</p>")
    if harness := report.get("lm_harness"):
        rows = [[model, task, ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())]
                for model, tasks in harness.items()
                for task, figures in (tasks.items() if "not_run" not in tasks else [("-", tasks)])]
        parts.append("<h3>lm-evaluation-harness</h3>" + _table(["model", "task", "figures"], rows))
    for fig, what in ((reward_kl_figure(report), "reward vs KL"), (helpful_harmless_figure(report), "helpful / harmless"),
                      (safety_category_figure(report), "safety failures by category"),
                      (win_rate_figure(report), "win rates")):
        parts.append(_img(fig, what) if fig is not None else _not_run(f"{what}: no model has these figures"))
    header, rows = safety_category_rows(report)
    if rows:
        det = report.get("refusal_detector", {})
        parts.append(f"<h3>Where each model still fails, by category (refusals found by: "
                     f"{_esc(det.get('method', 'rules'))})</h3>" + _table(header, rows))
    return "".join(parts)


def _agreement(run: Path) -> str:
    """Agreement reports of `llm-recipe prefs agreement` written into RUN_DIR/prefs/."""
    reports = [(p, r) for p in sorted((run / "prefs").rglob("*.json")) if isinstance(r := _read(p), dict) and "kappa" in r]
    if not reports:
        return _not_run("this run holds no annotator agreement report (`llm-recipe prefs agreement ... --report "
                        "RUN_DIR/prefs/agreement.json` writes one)")
    rows = [[p.relative_to(run), len(r.get("annotators", [])), r.get("items"), _fmt(r.get("raw_agreement")),
             _fmt(r.get("kappa")), r.get("band"), len(r.get("kept_items", []))] for p, r in reports]
    return _table(["report", "annotators", "items", "raw agreement", "kappa", "band", "kept"], rows)


def _answers(run: Path, max_prompts: int = 12) -> str:
    parts = []
    samples = run / "sft" / "samples.jsonl"
    if samples.is_file():
        recs = [json.loads(ln) for ln in samples.read_text(encoding="utf-8").splitlines() if ln.strip()]
        parts.append("<h3>SFT: before / after (sampled)</h3>" + _table(
            ["prompt", "before (base)", "after (SFT)"],
            [[r["prompt"], f"<div class=answer>{_esc(r['before'])}</div>", f"<div class=answer>{_esc(r['after'])}</div>"]
             for r in recs], escape=False))
    answers = run / "eval" / "answers.jsonl"
    if answers.is_file():
        recs = [json.loads(ln) for ln in answers.read_text(encoding="utf-8").splitlines() if ln.strip()]
        parts.append(_side_by_side(recs, max_prompts))
    return "".join(parts) or _not_run("no sampled answers in this run")


def _side_by_side(recs: list[dict], max_prompts: int, max_safety: int = 28) -> str:
    """Held-out prompts, then a spread of the safety prompts (every kind and category), every model's
    answer side by side; safety answers carry the refusal detector's label."""
    models = list(dict.fromkeys(r["model"] for r in recs))
    held: dict[str, dict[str, str]] = {}
    safety: dict[tuple, dict[str, str]] = {}
    for r in recs:
        if r["set"] == "held_out":
            held.setdefault(r["prompt"], {})[r["model"]] = f"<div class=answer>{_esc(r['answer'])}</div>"
        elif r["set"].startswith("safety/"):
            label = f"<b>{_esc(r['label'])}</b>: " if r.get("label") else ""
            key = (r["set"].split("/")[1], r.get("category", ""), r["prompt"])
            safety.setdefault(key, {})[r["model"]] = f"<div class=answer>{label}{_esc(r['answer'])}</div>"
    rows = [[_esc(p), *(a.get(m, "") for m in models)] for p, a in list(held.items())[:max_prompts]]
    out = "<h3>Held-out prompts, every model (eval answers)</h3>" + _table(["prompt", *models], rows, False)
    if safety:
        keys = list(safety)
        step = max(1, -(-len(keys) // max_safety))
        rows = [[_esc(k[0]), _esc(k[1]), _esc(k[2]), *(safety[k].get(m, "") for m in models)] for k in keys[::step]]
        out += (f"<h3>Safety prompts, every model ({len(rows)} of {len(keys)}: every {step}th)</h3>"
                + _table(["kind", "category", "prompt", *models], rows, False))
    return out


def write_report(run_dir: str | os.PathLike) -> Path:
    run = Path(run_dir)
    summary = _read(run / "summary.json")
    cfg = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8")) if (run / "recipe.yaml").is_file() else {}
    body = {"overview": _overview(run, summary), "stages": _stages(run, summary, cfg or {}), "data": _data(run),
            "curves": _curves(run), "evaluation": _evaluation(run), "agreement": _agreement(run),
            "answers": _answers(run)}
    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    sections = "".join(f'<section id="{s}"><h2>{s.capitalize()}</h2>{body[s]}</section>' for s in SECTIONS)
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>llm-recipe run: {_esc(run.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>llm-recipe run: {_esc(run.name)}</h1><nav>{nav}</nav>"
            f"{sections}</body></html>")
    out = run / "report.html"
    with atomic_write(out) as f:
        f.write(page)
    return out
