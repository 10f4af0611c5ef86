#!/usr/bin/env bash
# Set up (if needed) and run the bundled tiny end-to-end recipe on CPU, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
llm-recipe demo "$@"
