"""A run's model folders load with the oldest transformers the package declares: a second venv
with exactly that version reads the tokenizer (and its chat template) and the config, and gives
the same tokens as the version the suite runs on."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = r"""
import json, sys
from transformers import AutoConfig, AutoTokenizer

d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
msgs = [{"role": "user", "content": "東京はどこ？ Where is Tokyo?"}, {"role": "assistant", "content": "日本の首都です。"}]
text = tok.apply_chat_template(msgs, tokenize=False) if tok.chat_template else ""  # a pretrained model has none
print(json.dumps({"text": text, "ids": tok(text, add_special_tokens=False)["input_ids"],
                  "plain": tok("東京は日本の首都です。 Tokyo.")["input_ids"], "eos": tok.eos_token,
                  "max_len": tok.model_max_length, "model_type": AutoConfig.from_pretrained(d).model_type}))
"""

pytestmark = pytest.mark.slow  # trains or drives real processes for a minute or more


def declared_floor() -> str:
    spec = re.search(r'"transformers>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    return spec.group(1)


@pytest.fixture(scope="module")
def floor_python(tmp_path_factory):
    version = declared_floor()
    venv = Path(os.environ.get("LLM_RECIPE_FLOOR_VENV", f"/tmp/llm-recipe-transformers-{version}"))
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        res = subprocess.run([str(py), "-m", "pip", "install", "-q", f"transformers=={version}", "jinja2"],
                             capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot install transformers=={version}: {res.stderr[-500:]}")
            pytest.skip(f"cannot install transformers=={version} here (offline?)")
    return py, version


def test_model_folders_load_with_the_declared_transformers_floor(tiny_run, floor_python):
    py, version = floor_python
    for folder in ("pretrain/model", "sft/model", "dpo/model", "reward_model/model"):
        d = tiny_run / folder
        ours = subprocess.run([sys.executable, "-c", CHECK, str(d)], capture_output=True, text=True, timeout=120)
        theirs = subprocess.run([str(py), "-c", CHECK, str(d)], capture_output=True, text=True, timeout=120)
        assert theirs.returncode == 0, f"transformers {version} cannot load {folder}: {theirs.stderr[-1500:]}"
        mine = json.loads(ours.stdout.splitlines()[-1])
        assert json.loads(theirs.stdout.splitlines()[-1]) == mine, folder
        assert bool(mine["text"]) == (folder != "pretrain/model")  # chat models render their template
