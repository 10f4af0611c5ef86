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
    for name in ("demo-headline", "demo-eval", "hh-eval", "pretrain-data", "cpt-ja", "rlvr", "rlvr-throughput"):
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
