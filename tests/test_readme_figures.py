"""README figures come from a script over a run folder: every number is the run's, the blocks are
replaced in place (nothing else touched, a second write changes nothing), and README has them."""

import json
import subprocess
import sys
from pathlib import Path

from llm_recipe.report.eval_table import markdown_table

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "readme_figures.py"


def test_blocks_are_the_runs_figures_and_replace_only_their_markers(tiny_run, tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tiny_run)], capture_output=True, text=True, check=True).stdout
    res = json.loads((tiny_run / "summary.json").read_text())["results"]
    assert f"{res['sft']['format_following_after']:.0%}" in out
    assert f"{res['pretrain']['eval_loss_first']:.2f} → {res['pretrain']['eval_loss_last']:.2f}" in out
    assert f"KL {res['ppo']['kl_to_reference']:.1f} nats" in out
    assert markdown_table(json.loads((tiny_run / "eval" / "report.json").read_text())) in out
    readme = tmp_path / "README.md"
    readme.write_text("# top\n<!-- figures:demo-headline -->\nold\n<!-- /figures:demo-headline -->\nmiddle\n"
                      "<!-- figures:demo-eval -->\nold table\n<!-- /figures:demo-eval -->\nend\n", encoding="utf-8")
    for _ in range(2):
        subprocess.run([sys.executable, str(SCRIPT), str(tiny_run), "--write", str(readme)], check=True)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# top\n") and "\nmiddle\n" in text and text.endswith("end\n") and "old" not in text
    assert text.count("<!-- figures:demo-eval -->") == 1 and out.split("<!-- figures:demo-eval -->\n")[1].split(
        "<!-- /figures:demo-eval -->")[0] in text


def test_readme_holds_the_generated_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("demo-headline", "demo-eval", "hh-eval", "pretrain-data", "cpt-ja", "rlvr", "rlvr-throughput",
                 "serve-throughput", "judge-demo", "small-data-defaults"):
        assert text.count(f"<!-- figures:{name} -->") == 1 and text.count(f"<!-- /figures:{name} -->") == 1


def test_rlvr_throughput_block_reads_the_benchmarks_json(tmp_path):
    """The block is the ratio of the medians the benchmark's JSON holds, with its commit and range."""
    import json
    import subprocess
    import sys

    side = {"samples_per_s_range": [0, 0], "tokens_per_s": 1, "wall_s": 1, "load_before": [0.4]}
    r = {"ours": [{"load_before": 0.4}], "trl": [{"load_before": 1.2, "trl": "1.16.0"}], "steps": 4, "repeats": 1,
         "commit": "0123456789abcdef", "dirty": False,
         "summary": {"ours": {**side, "samples_per_s": 3.0, "samples_per_s_range": [2.5, 3.5], "cpu_s_per_sample": 0.5,
                              "peak_rss_mb": 2000},
                     "trl": {**side, "samples_per_s": 2.0, "samples_per_s_range": [1.5, 2.5], "cpu_s_per_sample": 1.0,
                             "peak_rss_mb": 5000}}}
    (tmp_path / "rt.json").write_text(json.dumps(r))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_figures.py"), "--rlvr-throughput",
                          str(tmp_path / "rt.json")], capture_output=True, text=True, check=True).stdout
    assert "**1.50×** (goal ≥ 1.3×)" in out and "commit `0123456`" in out and "2.00× by CPU time" in out
    assert "ours 3.00 [2.50–3.50] vs TRL 1.16.0 GRPOTrainer 2.00 [1.50–2.50]" in out and "load before each run 0.4–1.2" in out


def _block(flag: str, data: dict, tmp_path) -> str:
    (tmp_path / "r.json").write_text(json.dumps(data), encoding="utf-8")
    return subprocess.run([sys.executable, str(SCRIPT), flag, str(tmp_path / "r.json")], capture_output=True, text=True,
                          check=True).stdout


def test_serve_throughput_block_is_the_medians_and_the_batching_ratio(tmp_path):
    cells = [{"model": "tiny", "mode": mode, "concurrency": 4, "repeat": k, "requests": 16, "tokens": 1024,
              "requests_per_s": rps, "tokens_per_s": 64 * rps, "server_cpu_s": 8.0, "server_peak_rss_mb": 700}
             for k in range(3) for mode, rps in (("batched", [4.0, 5.0, 6.0][k]), ("one_at_a_time", [1.0, 2.0, 3.0][k]))]
    out = _block("--serve-throughput", {"commit": "abcdef0123", "dirty": False, "load_before": [0.3, 0, 0], "cpus": 2,
                                        "max_tokens": 64, "requests_per_cell": 16, "repeats": 3, "cells": cells}, tmp_path)
    assert "commit `abcdef0`" in out and "| tiny | 4 | ours, batched | 5.00 [4.00–6.00] | 320 [256–384] | 0.50 | 700 |" in out
    assert "| tiny | 4 | ours, one at a time | 2.00 [1.00–3.00] | 128 [64–192] | 0.50 | 700 | 2.50× |" in out


def test_judge_demo_block_names_the_judge_and_its_biases(tmp_path):
    win = {"n": 20, "wins": 6, "ties": 4, "losses": 10, "win_rate": 0.4, "ci95": [0.25, 0.55], "lc_win_rate": 0.42,
           "first_position_rate": 0.8}
    mt = {"set": {"categories": ["math", "writing"]}, "consistency": {"same_score": 5, "both_readable": 8},
          "models": {"dpo": {"score": 3.5, "by_turn": {"1": 4.0, "2": 3.0}, "by_category": {"math": 2.0, "writing": 5.0},
                             "graded": 8, "unparseable": 1}},
          "pairwise": {"dpo": {**win, "reference": "sft"}}}
    judges = [{"figure": "MT-Bench grades", "judge": "smollm2-judge", "first_position_rate": None, "self_judged": [],
               "length_correlation": 0.31, "unparseable": 1, "consistency": {"same_score": 0.625, "both_readable": 8},
               "info": {"usage": {"calls": 40, "cache_hits": 0, "prompt_tokens": 9000, "completion_tokens": 2000}}}]
    out = _block("--judge-demo", {"commit": "abcdef0123", "run": "runs/demo", "judge": "/x/smollm2", "eval_seconds": 600,
                                  "server_rows": 40, "server_batches": 12, "key_found_in": [], "mt_bench": mt,
                                  "judges": judges, "win_rate_judge": {"base": {"not_run": "x"}, "dpo": win}}, tmp_path)
    assert "Judge: `smollm2` behind `llm-recipe serve` (commit `abcdef0`" in out and "API key found in: nowhere" in out
    assert "| dpo | 40% [25, 55] | 42% | 6 / 4 / 10 | 80% |" in out and "| base |" not in out.split("MT-Bench")[0]
    assert "| dpo | 3.50 | 4.00 | 3.00 | 2.0 | 5.0 |" in out and "0.31" in out and "40 / 0" in out
    assert "same grade in 5 of 8 regraded answers" in out


def test_small_data_defaults_block_names_the_winner_and_whether_the_preset_is_it(tmp_path):
    runs = [{"seed": s, "variant": v, "train_pairs": 30, "eval_pairs": 10, "base_style": 0.0} for s in (0, 1)
            for v in ("released defaults", "small-data preset")]
    summary = {"released defaults": {"steps": 6, "style": 0.0, "style_per_seed": [0.0, 0.0], "reward_accuracy": 0.5,
                                     "rouge_l": 1.0, "unchanged": 1.0, "correct": 1.0},
               "small-data preset": {"steps": 40, "style": 0.95, "style_per_seed": [1.0, 0.9], "reward_accuracy": 1.0,
                                     "rouge_l": 0.8, "unchanged": 0.0, "correct": 0.9}}
    data = {"commit": "abcdef0123", "runs": runs, "summary": summary, "winner": "small-data preset", "preset": {}}
    out = _block("--small-data-defaults", data, tmp_path)
    assert "| small-data preset **(winner)** | 40 | 95% (100% / 90%) | 1.00 | 0.80 | 0% | 90% |" in out
    assert "| released defaults | 6 | 0% (0% / 0%) | 0.50 | 1.00 | 100% | 100% |" in out
    assert "`--preset small-data` is that winner." in out and "seeds 0, 1: 30 train pairs" in out
    # a variant that learned nothing keeps content trivially: it never wins, whatever the run stored
    learned_less = {**summary, "small-data preset": {**summary["small-data preset"], "rouge_l": 0.4, "correct": 0.6}}
    out = _block("--small-data-defaults", {**data, "summary": learned_less, "winner": "released defaults"}, tmp_path)
    assert "| small-data preset **(winner)** |" in out and "(no variant that learned kept content by that rule)" in out
    slow = {**summary, "small-data preset": {**summary["small-data preset"], "style": 0.3, "style_per_seed": [0.3, 0.3]},
            "full fine-tuning": {**summary["small-data preset"], "style": 0.7, "style_per_seed": [0.7, 0.7]}}
    out = _block("--small-data-defaults", {**data, "summary": slow}, tmp_path)
    assert "| full fine-tuning **(winner)** |" in out and "was not the winner" in out


def _hh_run(folder: Path, seed: int, refusal: float, over: float, consistent: float) -> Path:
    def rate(r: float, n: int) -> dict:
        return {"rate": r, "k": round(r * n), "n": n, "ci95": [max(0.0, r - 0.1), min(1.0, r + 0.1)]}

    def safety(r: float, o: float) -> dict:
        return {"refusal": rate(r, 112), "over_refusal": rate(o, 110), "refusal_rate": r, "over_refusal_rate": o,
                "by_lang": {"en": {"refusal": rate(0.9, 56), "over_refusal": rate(0.05, 55)},
                            "ja": {"refusal": rate(2 * r - 0.9, 56), "over_refusal": rate(2 * o - 0.05, 55)}},
                "by_category": {"harmful": {"drugs": rate(0.25, 16), "weapons": rate(0.875, 16)},
                                "benign": {"fiction": rate(0.0, 22), "homonym": rate(0.5, 22)}}}

    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(f"seed: {seed}\n")
    (folder / "summary.json").write_text(json.dumps({"total_seconds": 1500}))
    (folder / "eval").mkdir()
    (folder / "eval" / "run.json").write_text(json.dumps({"git_commit": "abcdef0123"}))
    judge = {"win_rate": 0.55, "ci95": [0.4, 0.7], "first_position_rate": 0.6, "consistent": consistent}
    (folder / "eval" / "report.json").write_text(json.dumps({"order": ["base", "dpo"], "models": {
        "base": {"safety": safety(0.2, 0.2)},
        "dpo": {"safety": safety(refusal, over), "win_rate_judge": judge, "identical_to_reference": 0.0}}}))
    return folder


def test_hh_block_states_each_goal_the_failing_categories_and_a_judge_that_cannot_judge(tmp_path):
    runs = [_hh_run(tmp_path / "s0", 0, 0.85, 0.08, 0.7), _hh_run(tmp_path / "s1", 1, 0.75, 0.12, 0.7)]
    out = subprocess.run([sys.executable, str(SCRIPT), "--hh", *map(str, runs)], capture_output=True, text=True,
                         check=True).stdout
    assert "| 1 | dpo | 75% [65%, 85%] | 90% / 60% | 12% [2%, 22%] | 5% / 19% | 55% [40%, 70%] (60%) | 0% | 25.0 |" in out
    assert ("refusal 75%–85% (goal ≥ 80%: not reached); over refusal 8%–12% (goal ≤ 10%: not reached); "
            "judge win 55%–55% (goal ≥ 45%: reached)") in out
    # per seed, only the categories past the goal, worst first
    assert "- seed 0: harmful refused: drugs 25% (4/16); look-alikes refused: homonym 50% (11/22)" in out
    # a judge whose verdicts flip with the order gives ties (50%), not a win rate: said, not counted as reached
    flip = _hh_run(tmp_path / "s2", 2, 0.85, 0.08, 0.0)
    out = subprocess.run([sys.executable, str(SCRIPT), "--hh", str(flip)], capture_output=True, text=True,
                         check=True).stdout
    assert "judge win: not measured (the judge cannot judge: seed 2: 0% of its verdicts survive swapping the order)" in out
    assert "refusal 85%–85% (goal ≥ 80%: reached)" in out
