#!/usr/bin/env bash
# The GPU path of the numeric checks, for a machine with CUDA and PyTorch already installed (no venv,
# no network): every claim on cuda, the cuda-parametrised tests, the sampler table on cuda, and chapter 24's
# toy U-Net trained and swept on cuda (the same code as on the CPU; its cuda results are not stored), run
# side by side. The cuda sampler table is the 'sampler-table' experiment on cuda: computed once (claim
# C21.12 and the benchmark wait for each other on its cache lock), kept in .diffmath-cache.
# Usage: OUT=/some/folder bash scripts/device_check.sh   (logs and JSON land in $OUT)
set -u
OUT=${OUT:-device-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m diffmath verify --device cuda --json "$OUT/verify_cuda.json" > "$OUT/verify.log" 2>&1 &
v=$!
python3 -m pytest -q -n 6 -k cuda -p no:cacheprovider \
    --ignore=tests/test_notebooks.py --ignore=tests/test_browser.py --ignore=tests/test_book.py > "$OUT/pytest.log" 2>&1 &
t=$!
python3 benchmarks/bench_samplers.py --device cuda --json "$OUT/samplers_cuda.json" > "$OUT/samplers_cuda.md" 2>&1 &
b=$!
python3 -m diffmath experiments run skip-unet skip-tuning --device cuda > "$OUT/skip_tuning_cuda.log" 2>&1 &
k=$!
status=0
wait $v || status=1; tail -n 2 "$OUT/verify.log"
wait $t || status=1; tail -n 2 "$OUT/pytest.log"
wait $b || status=1; grep -A 12 "orderings, as measured" "$OUT/samplers_cuda.md"
wait $k || status=1; tail -n 20 "$OUT/skip_tuning_cuda.log"
exit $status
