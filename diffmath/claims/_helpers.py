"""Small helpers shared by the claim checks (one place for each)."""

from __future__ import annotations

import torch


def generator(device, seed: int) -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device`` (every check fixes its seeds)."""
    return torch.Generator(device=device).manual_seed(seed)


def rel_err(a, b) -> float:
    """``max |a - b| / max |b|`` (the scale of the reference), for numbers or tensors."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64, device=a.device)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()
