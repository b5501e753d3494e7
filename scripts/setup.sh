#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: torch first, pinned, then
# diffmath itself in editable mode with its test and book extras, then a Jupyter kernel that runs
# this environment's python. Idempotent and quiet: a second run with nothing changed takes a
# second. pip's chatter goes to .venv/setup.log.
#
#   DIFFMATH_TORCH   the torch requirement installed before the project (default torch==2.13.0;
#                    on a Linux machine with a GPU the same pin gives the CUDA build)
#   DIFFMATH_PYTHON  the interpreter that creates .venv (default python3)
#   DIFFMATH_VENV    where the environment lives (default <repo>/.venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DIFFMATH_VENV:-$ROOT/.venv}"
TORCH="${DIFFMATH_TORCH:-torch==2.13.0}"
KDIFFUSION="k-diffusion==0.1.1.post1"
PY_CREATE="${DIFFMATH_PYTHON:-python3}"
LOG="$VENV/setup.log"

say() { printf '[setup] %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  if [[ -f "$LOG" ]]; then say "last lines of $LOG:"; tail -n 40 "$LOG" | sed 's/^/    /'; fi
  exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV with $($PY_CREATE --version 2>&1)"
  "$PY_CREATE" -m venv "$VENV" || fail "could not create a virtual environment (on Debian: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"
mkdir -p "$VENV"
: >>"$LOG"

# What the environment was last set up from; unchanged -> nothing to do.
stamp_now() {
  {
    echo "torch=$TORCH"
    echo "kdiffusion=$KDIFFUSION"
    "$PY" --version 2>&1
    cat "$ROOT/pyproject.toml"
  } | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.diffmath-setup-stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_now)" ]] \
  && "$PY" -c "import diffmath, torch, pytest, jupyter_book, diffusers, torchsde" >/dev/null 2>&1; then
  say "environment up to date ($VENV)"
  exit 0
fi

pip_q() { "$PY" -m pip install -q --disable-pip-version-check "$@" >>"$LOG" 2>&1; }

say "installing $TORCH (log: $LOG)"
pip_q "$TORCH" || fail "pip install $TORCH"
say "installing diffmath[test,book] in editable mode"
pip_q -e "$ROOT[test,book]" || fail "pip install -e .[test,book]"
# k-diffusion's samplers for the bench (diffmath.kdiffusion): without its dependencies, which are its training
# stack (torchvision's published wheels need a CUDA build of torch); what the samplers need is in the bench extra
say "installing $KDIFFUSION without its dependencies"
pip_q --no-deps "$KDIFFUSION" || fail "pip install --no-deps $KDIFFUSION"
say "registering the Jupyter kernel python3 -> $PY"
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (diffmath)" >>"$LOG" 2>&1 \
  || fail "ipykernel install"
"$PY" -c "import diffmath, torch; print('[setup] torch', torch.__version__, '| cuda available:', torch.cuda.is_available())" \
  || fail "import diffmath"
stamp_now >"$STAMP"
say "done"
