"""How long the suite's commands take on this machine, measured in one run (issue 10's targets).

Each command runs in this checkout with its own fresh cache folder (``DIFFMATH_CACHE``) unless it is
meant to reuse one, so "cold" means exactly what a fresh clone sees after set-up:

* ``verify``: ``diffmath verify`` of every claim, cold, serially and with ``-j 2``, then warm (every
  outcome from the ledger cache);
* ``quick``: the quick tier, ``pytest -n 2 -m "not slow"``, cold;
* ``full``: the README's test command without its set-up (``pytest -n 2 --dist loadfile``, browser
  included when chromium is installed), cold, with pytest's 25 slowest durations;
* ``book``: ``python -m diffmath.book build`` into a temporary folder twice with one cache: the second
  build finds nothing changed.

    python benchmarks/bench_suite.py [--only verify quick full book] [--json out.json]

Run it on an idle machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def timed(cmd: list[str], cache: Path, env_extra=None) -> tuple[float, int, str]:
    env = dict(os.environ, DIFFMATH_CACHE=str(cache), **(env_extra or {}))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=["verify", "quick", "full", "book"])
    p.add_argument("--json")
    args = p.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory(prefix="diffmath-bench-") as tmp:
        tmp = Path(tmp)
        if "verify" in args.only:
            serial, rc1, _ = timed([PY, "-m", "diffmath", "verify", "--device", "cpu"], tmp / "v1")
            par, rc2, _ = timed([PY, "-m", "diffmath", "verify", "--device", "cpu", "-j", "2"], tmp / "v2")
            warm, rc3, _ = timed([PY, "-m", "diffmath", "verify", "--device", "cpu", "-j", "2"], tmp / "v2")
            report["verify"] = {"cold_serial_s": serial, "cold_j2_s": par, "warm_s": warm, "ok": rc1 == rc2 == rc3 == 0}
        if "quick" in args.only:
            t, rc, out = timed([PY, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-m", "not slow", "-q", "-p", "no:cacheprovider"], tmp / "q")
            report["quick"] = {"cold_s": t, "ok": rc == 0, "summary": out.strip().splitlines()[-1]}
        if "full" in args.only:
            t, rc, out = timed([PY, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q", "-p", "no:cacheprovider", "--durations=25"], tmp / "f")
            durations = re.findall(r"^\s*([0-9.]+)s (call|setup|teardown)\s+(\S+)", out, re.M)
            report["full"] = {"cold_s": t, "ok": rc == 0, "summary": out.strip().splitlines()[-1],
                              "slowest": [{"s": float(s), "when": w, "test": n} for s, w, n in durations]}
        if "book" in args.only:
            out_dir = tmp / "book-out"
            cmd = [PY, "-m", "diffmath.book", "build", "--path-output", str(out_dir)]
            first, rc1, _ = timed(cmd, tmp / "b")
            second, rc2, log = timed(cmd, tmp / "b")
            report["book"] = {"first_s": first, "second_s": second, "ok": rc1 == rc2 == 0,
                              "second_skipped_jupyter_book": "up to date" in log}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if all(v.get("ok") for v in report.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
