"""The package declares Python >= 3.10: its sources compile on the oldest and the newest
interpreter this machine has (the suite itself runs on the venv's; a CPU torch wheel exists here
for that one only), and use no standard-library name newer than 3.10."""

import re
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llm_recipe"
INTERPRETERS = sorted(Path.home().glob(".pyenv/versions/3.1[0-9]*/bin/python"))
COMPILE = "import pathlib, sys; [compile(p.read_text(encoding='utf-8'), str(p), 'exec') for p in pathlib.Path(sys.argv[1]).rglob('*.py')]"


@pytest.mark.parametrize("python", [INTERPRETERS[0], INTERPRETERS[-1]] if INTERPRETERS else [],
                         ids=lambda p: p.parent.parent.name)
def test_sources_compile_on_the_oldest_and_newest_python(python):
    res = subprocess.run([str(python), "-c", COMPILE, str(SRC)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_no_standard_library_names_newer_than_python_3_10():
    newer = re.compile(r"\b(tomllib|StrEnum|datetime\.UTC|ExceptionGroup|TaskGroup|itertools\.batched|"
                       r"typing import [^\n]*\b(Self|override)\b|hashlib\.file_digest)\b")
    hits = [f"{p}:{i}" for p in SRC.rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if newer.search(line)]
    assert not hits, hits
