#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report's browser test drives Debian's headless Chromium (no browser download at run time).
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed (sudo apt-get install chromium): the browser tests will skip" >&2
  fi
fi
. .venv/bin/activate
ruff check src tests benchmarks
python -m pytest -q "$@"
