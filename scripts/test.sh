#!/usr/bin/env bash
# Run the test suite: set up the environment (scripts/setup.sh), then pytest with any arguments
# passed through, e.g.  bash scripts/test.sh -x -k mixture   or   bash scripts/test.sh -m "not browser".
# The browser test (tests/test_browser.py) builds the book itself into a temporary folder and
# needs Debian's chromium and chromium-driver; without them it is skipped, with the reason shown.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec "${DIFFMATH_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
