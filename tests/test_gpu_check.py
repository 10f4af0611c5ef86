"""The GPU check script (benchmarks/gpu_check.py) runs end to end on the CPU with `--tiny`, so it
cannot rot between the sessions that have a GPU to run it on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_sft_dpo_and_grpo_on_cpu_with_a_tiny_model():
    res = subprocess.run([sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [r["stage"] for r in rows] == ["sft", "dpo", "grpo"]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["model_tflops_per_s"] > 0
        assert r["mfu"] is None and r["device"] == "cpu"  # no peak is claimed for a CPU
    assert "MFU" in res.stdout
