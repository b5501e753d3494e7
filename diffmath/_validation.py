"""Input conversion and validation, shared by every module.

Every public function converts its inputs here, so that bad input fails early with a
``ValueError`` that names the argument and the broken constraint.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

_FLOAT32 = (torch.float32, np.float32)


def is_float32(value) -> bool:
    """Whether ``value`` was given in single precision (a float32 tensor or array)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and dtype in _FLOAT32


def as_tensor(
    value,
    name: str,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Convert a tensor, array, number or nested list to a floating tensor; reject NaN/Inf.

    ``dtype`` defaults to float32 for float32 input and float64 otherwise.
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float32 if is_float32(value) else np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric (tensor, array, number or nested list): {exc}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be real-valued, got dtype {t.dtype}")
    if dtype is None:
        dtype = torch.float32 if t.dtype == torch.float32 else torch.float64
    t = t.to(dtype=dtype, device=device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return t


def noise_level(value, name: str, *, like: torch.Tensor, batch_shape: torch.Size, positive: bool) -> torch.Tensor:
    """A noise coefficient (alpha or sigma): a number, or a tensor of ``batch_shape``.

    Returns a tensor that broadcasts against ``(*batch_shape, d)`` (a trailing unit axis).
    ``positive`` asks for > 0, otherwise >= 0 is required.
    """
    t = as_tensor(value, name, dtype=like.dtype, device=like.device)
    if t.ndim > 0 and tuple(t.shape) != tuple(batch_shape):
        raise ValueError(
            f"{name} must be a number or have x's batch shape {tuple(batch_shape)}, got shape {tuple(t.shape)}"
        )
    if positive and (t <= 0).any():
        raise ValueError(f"{name} must be > 0, got min {t.min().item():.6g}")
    if not positive and (t < 0).any():
        raise ValueError(f"{name} must be >= 0, got min {t.min().item():.6g}")
    return t.unsqueeze(-1) if t.ndim > 0 else t


def points(x, name: str, *, d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Points of shape ``(..., d)``."""
    t = as_tensor(x, name, dtype=dtype, device=device)
    if t.ndim == 0 or t.shape[-1] != d:
        raise ValueError(f"{name} must have shape (..., {d}), got {tuple(t.shape)}")
    return t
