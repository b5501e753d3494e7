"""Shared pytest set-up: hypothesis profiles, the device fixture, and one CPU thread share per worker.

Hypothesis profiles come from :mod:`diffmath.strategies` ("ci": fast and derandomised, the
default; "thorough": many more examples). Choose one with ``HYPOTHESIS_PROFILE=thorough``.

Under pytest-xdist each worker gets ``cpus // workers`` torch threads (and passes the same to the
subprocesses it starts: notebooks, ``diffmath verify``, the book build, through ``OMP_NUM_THREADS``
and ``DIFFMATH_VERIFY_JOBS=1``). Two workers with two OpenMP threads each on two cores spend most of
their time waiting for each other: that oversubscription once doubled the suite's wall time.
"""

from __future__ import annotations

import os

import pytest
import torch

from diffmath.device import available_devices
from diffmath.strategies import load_profile

load_profile()

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS > 1:
    _threads = max(1, (os.cpu_count() or 1) // _WORKERS)
    torch.set_num_threads(_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(_threads))
    os.environ.setdefault("DIFFMATH_VERIFY_JOBS", "1")


@pytest.fixture(params=available_devices(), ids=str)
def device(request):
    """Every device a numeric test runs on: cpu always, cuda when torch sees one."""
    return request.param


def pytest_addoption(parser):
    parser.addoption(
        "--controls",
        action="store_true",
        help="also run every claim's further negative controls (marker 'controls'; each claim's first runs always): "
        "about 3 minutes of CPU, run by .ci/run after the test command and by the mutation harness",
    )


def pytest_collection_modifyitems(session, config, items):
    """The browser test's file first: its session fixture builds the whole book (the experiments, the claim
    checks, every chapter's code), the longest chain of the suite, so under ``--dist loadfile
    --no-loadscope-reorder`` (scripts/test.sh; without the second option xdist re-sorts the files by their
    number of tests) the worker that takes it starts with it while the other workers share the remaining files.

    Tests marked ``controls`` (a claim's negative controls after its first) are left out unless ``--controls``."""
    if not config.getoption("--controls"):
        extra = [item for item in items if item.get_closest_marker("controls")]
        if extra:
            config.hook.pytest_deselected(items=extra)
            items[:] = [item for item in items if not item.get_closest_marker("controls")]
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/test_browser.py") else 1)
