"""Shared pytest set-up: hypothesis profiles and the device fixture.

Hypothesis profiles come from :mod:`diffmath.strategies` ("ci": fast and derandomised, the
default; "thorough": many more examples). Choose one with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import pytest

from diffmath.device import available_devices
from diffmath.strategies import load_profile

load_profile()


@pytest.fixture(params=available_devices(), ids=str)
def device(request):
    """Every device a numeric test runs on: cpu always, cuda when torch sees one."""
    return request.param
