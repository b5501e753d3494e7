#!/usr/bin/env bash
# Build the book: set up the environment (scripts/setup.sh), run every claim check
# (diffmath verify --json book/_generated/ledger.json), generate the claim pages from the registry
# and that ledger (python -m diffmath.book generate), build the HTML with jupyter-book (every
# Sphinx warning is an error), and print where to open it. All of it offline.
#
# A failing claim check does not stop the build: the book shows it as failed in the ledger, and
# this script then exits non-zero. Extra arguments select claims to verify (ids, parts, chapters).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec "${DIFFMATH_VENV:-$ROOT/.venv}/bin/python" -m diffmath.book build --book-dir "$ROOT/book" "$@"
