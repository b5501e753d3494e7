"""The flake check of issue 11: run the quick tier many times with fresh hypothesis examples and report failures.

    python benchmarks/flakes.py [--runs 20] [--workers 2] [--json out.json] [-- extra pytest args]

Each run uses the ``fresh`` hypothesis profile (the ci profile's size, not derandomised, no example database)
with its own ``--hypothesis-seed`` (1, 2, ...), and nothing cached (``DIFFMATH_CACHE=stored``: every claim outcome
is computed afresh; only the experiment results stored with the code are read, since recomputing them — the toy
U-Net's training, the Skip-Tuning sweep — would take many minutes a run and they are seeded), so Monte Carlo
and property tests see new inputs each time. A Monte Carlo check asserted at 5 standard errors should fail about
once in 1.7 million runs; a check that fails here more often than that allows is a bug in the check. The report
lists every failing test with the seeds it failed under.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args(argv)
    env = dict(os.environ, HYPOTHESIS_PROFILE="fresh", DIFFMATH_CACHE="stored")
    failures: dict[str, list[int]] = defaultdict(list)
    times = []
    for seed in range(1, args.runs + 1):
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", "-n", str(args.workers), "--dist", "loadfile", "-m", "not slow and not browser",
               "-p", "no:cacheprovider", f"--hypothesis-seed={seed}", *args.pytest_args]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        failed = re.findall(r"^FAILED (\S+)", out.stdout, flags=re.M)
        for test in failed:
            failures[test].append(seed)
        summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-200:]
        print(f"[flakes] run {seed}/{args.runs}: {summary} ({times[-1]:.0f} s)", flush=True)
    print(f"[flakes] {args.runs} runs, {len(failures)} tests failed at least once")
    for test, seeds in sorted(failures.items()):
        print(f"  {test}: seeds {seeds}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "failures": failures, "seconds": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
