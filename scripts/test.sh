#!/usr/bin/env bash
# Run the test suite: set up the environment (scripts/setup.sh), then pytest with any arguments
# passed through, e.g.  bash scripts/test.sh -x -k mixture   or   bash scripts/test.sh -m "not browser".
# The browser test (tests/test_browser.py) builds the book itself into a temporary folder and
# needs Debian's chromium and chromium-driver; without them it is skipped, with the reason shown.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# Two workers by default (pytest-xdist; on this project's two-core machines a third only oversubscribes the
# cores: 278 s against 249 s on a fresh clone), one test file per worker so that the browser test's session
# fixture builds the book once, in collection order (--no-loadscope-reorder: xdist would otherwise sort the
# files by their number of tests; tests/conftest.py puts the browser test's file, the longest chain, first).
# Pass -n 0 to run serially, or set DIFFMATH_TEST_WORKERS. Each worker uses its share of the CPU threads
# (tests/conftest.py). Expensive results (claim outcomes, experiments) are computed once and shared through
# the cache in .diffmath-cache (DIFFMATH_CACHE=off disables it); the experiments' results are also stored
# with the code (diffmath/_stored/), so a fresh clone reads them.
exec "${DIFFMATH_VENV:-$ROOT/.venv}/bin/python" -m pytest -n "${DIFFMATH_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
