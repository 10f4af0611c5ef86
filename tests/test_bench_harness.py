"""The benchmark harness and the README performance table, on a toy benchmark whose contenders
burn a known amount of CPU: each run is its own process with its own peak RSS and CPU time, round 1
measures every contender, the pruning rule keeps ours, the defaults and the peer's best per
precision, the kept ones run again in rotated order, and `scripts/perf_table.py` turns the JSON
into README rows (the block replaced in place, idempotently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TOY = '''
import sys, time
sys.path.insert(0, {bench!r})
import argparse, harness
from harness import Contender

def work(c, args, clock):
    big = bytearray(int(c.settings["mb"] * 2**20))  # peak RSS this process alone reaches
    for i in range(0, len(big), 4096):
        big[i] = 1
    clock.mark("start", 0)
    t = time.process_time()
    while time.process_time() - t < c.settings["cpu"]:  # a known amount of CPU work
        pass
    clock.mark("end", 100)
    return {{"order": c.name}}

C = [Contender("ours fp32", "ours", "fp32", {{"cpu": 0.02, "mb": 10}}),
     Contender("ours bf16-autocast", "ours", "bf16-autocast", {{"cpu": 0.02, "mb": 10}}),
     Contender("P fp32 fast", "peer", "fp32", {{"cpu": 0.05, "mb": 120}}),
     Contender("P fp32 slow", "peer", "fp32", {{"cpu": 0.15, "mb": 10}}),
     Contender("P fp32 slowest", "peer", "fp32", {{"cpu": 0.2, "mb": 10}}),
     Contender("P bf16-autocast defaults", "peer", "bf16-autocast", {{"cpu": 0.2, "mb": 10}}, default=True),
     Contender("P bf16-autocast fast", "peer", "bf16-autocast", {{"cpu": 0.1, "mb": 10}})]
ap = argparse.ArgumentParser()
harness.add_args(ap, "toy")
a = ap.parse_args()
harness.main(name="toy", title="Toy", unit="items/s", script=__file__, args=a, argv=sys.argv[1:], contenders=C,
             work=work, flops_per_unit=1e9, roof_shapes=None)
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    script = d / "toy_bench.py"
    script.write_text(TOY.format(bench=str(ROOT / "benchmarks")))
    out = subprocess.run([sys.executable, str(script), "--repeats", "2", "--keep", "1", "--json", str(d / "toy.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads((d / "toy.json").read_text()), out.stdout, d


def test_grid_runs_prunes_and_records_each_process(toy):
    res, stdout, _ = toy
    rows = {r["name"]: r for r in res["contenders"]}
    # kept: ours (2), the defaults, the best peer of each precision (keep 1); pruned: the rest after round 1
    assert {n for n, r in rows.items() if r["n"] == 2} == {"ours fp32", "ours bf16-autocast", "P fp32 fast",
                                                           "P bf16-autocast defaults", "P bf16-autocast fast"}
    assert rows["P fp32 slow"]["n"] == rows["P fp32 slowest"]["n"] == 1 and rows["P fp32 slow"]["pruned"]
    assert "pruned after round 1" in stdout and "P fp32 slowest" in stdout.split("pruned after round 1")[1]
    for r in rows.values():
        for run in r["runs"]:
            assert run["units"] == 100 and run["cpu_s"] >= r["settings"]["cpu"] * 0.9
            assert run["wall_s"] >= run["cpu_s"] * 0.5 and run["process_cpu_s"] >= run["cpu_s"]
            assert run["value"] == pytest.approx(100 / run["wall_s"])
        assert r["min"] <= r["median"] <= r["max"]
    # peak RSS is the process's own: 120 MB touched by one contender only
    assert rows["P fp32 fast"]["rss_gb"] > 0.1 > rows["P fp32 slow"]["rss_gb"]
    assert res["commit"] and len(res["load_start"]) == 3 and res["machine"]["cores"] >= 1
    comp = {c["precision"]: c for c in res["comparisons"]}
    assert comp["fp32"]["peer_best"] == "P fp32 fast" and "vs_default" not in comp["fp32"]
    assert comp["bf16-autocast"]["peer_best"] == "P bf16-autocast fast"
    assert comp["bf16-autocast"]["peer_default"] == "P bf16-autocast defaults"
    assert comp["fp32"]["vs_best"] == pytest.approx(rows["ours fp32"]["median"] / rows["P fp32 fast"]["median"])
    assert comp["fp32"]["vs_best_cpu"] > 1.5  # 0.02 s vs 0.05 s of CPU per 100 items


def test_round_two_runs_in_rotated_order(toy):
    _, stdout, _ = toy
    round2 = [ln.split()[2] + " " + ln.split()[3] for ln in stdout.splitlines() if ln.strip().startswith("round 2")]
    assert len(round2) == 5  # the kept ones
    assert round2[0] == "ours bf16-autocast" and round2[-1] == "ours fp32"  # rotated by one: not where round 1 began


def test_perf_table_rows_come_from_the_json_and_replace_their_block(toy, tmp_path):
    res, _, d = toy
    results = tmp_path / "results"
    results.mkdir()
    (results / "toy.json").write_text(json.dumps(res))
    script = ROOT / "scripts" / "perf_table.py"
    out = subprocess.run([sys.executable, str(script), "--results", str(results)], capture_output=True, text=True,
                         check=True).stdout
    rows = {r["name"]: r for r in res["contenders"]}
    comp = {c["precision"]: c for c in res["comparisons"]}
    assert f"**{comp['fp32']['vs_best']:.2f}×**" in out and f"{comp['bf16-autocast']['vs_default']:.2f}×" in out
    assert f"`{res['commit'][:7]}`" in out and "(P fast)" in out
    assert f"{rows['P fp32 fast']['rss_gb']:.1f}" in out
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- figures:perf -->\nold\n<!-- /figures:perf -->\nb\n<!-- figures:perf-profile -->\n"
                      "old\n<!-- /figures:perf-profile -->\nc\n", encoding="utf-8")
    for _ in range(2):
        subprocess.run([sys.executable, str(script), "--results", str(results), "--write", str(readme)], check=True)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("a\n") and "\nb\n" in text and text.endswith("c\n") and "old" not in text
    assert out.split("<!-- figures:perf -->\n")[1].split("<!-- /figures:perf -->")[0] in text


def test_precisions_runs_a_subset_and_the_table_says_what_it_left_out(toy, tmp_path):
    _, _, d = toy
    out = subprocess.run([sys.executable, str(d / "toy_bench.py"), "--repeats", "1", "--keep", "1", "--precisions",
                          "fp32", "--json", str(tmp_path / "results" / "toy.json")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.loads((tmp_path / "results" / "toy.json").read_text())
    assert res["precisions"] == ["fp32"] and {r["precision"] for r in res["contenders"]} == {"fp32"}
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "perf_table.py"), "--results",
                            str(tmp_path / "results")], capture_output=True, text=True, check=True).stdout
    assert "Toy: not measured at bf16 autocast, bf16 weights (run with `--precisions fp32`)" in table
    bad = subprocess.run([sys.executable, str(d / "toy_bench.py"), "--precisions", "fp16"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "--precisions: unknown ['fp16']" in bad.stderr and "Traceback" not in bad.stderr


def test_readme_holds_the_performance_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("perf", "perf-profile"):
        assert text.count(f"<!-- figures:{name} -->") == 1 and text.count(f"<!-- /figures:{name} -->") == 1
