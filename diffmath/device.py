"""Devices, in one place: the best available one, and the list the tests run on.

``DIFFMATH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) overrides the choice; asking for cuda where
there is none is an error, not a silent fall-back to the cpu.
"""

from __future__ import annotations

import os

import torch


def best_device() -> torch.device:
    """cuda when available (or ``DIFFMATH_DEVICE`` when set), otherwise cpu."""
    name = os.environ.get("DIFFMATH_DEVICE", "").strip()
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"DIFFMATH_DEVICE={name!r} but torch sees no cuda device")
        return dev
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def available_devices() -> list[torch.device]:
    """cpu, and cuda when torch sees one."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices
