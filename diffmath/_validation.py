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


def common_dtype_device(*values, names: Optional[str] = None) -> tuple[torch.dtype, torch.device]:
    """The dtype and device a computation on ``values`` uses (the library's one rule): float32 when every
    given value is float32, float64 otherwise; the device of the tensors among them (cpu when there is
    none). ``None`` values are skipped. Tensors on different devices are an error (``names`` says which
    arguments, for the message)."""
    given = [v for v in values if v is not None]
    dtype = torch.float32 if given and all(is_float32(v) for v in given) else torch.float64
    devices = {v.device for v in given if isinstance(v, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"{names or 'the inputs'} are on different devices: {sorted(map(str, devices))}")
    return dtype, (devices.pop() if devices else torch.device("cpu"))


def as_tensor(
    value,
    name: str,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Convert a tensor, array, number or nested list to a floating tensor; reject NaN/Inf and tensors
    without values (on the ``meta`` device).

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
    if t.is_meta:
        where = f"; the computation runs on {torch.device(device)}" if device is not None else ""
        raise ValueError(f"{name} is on the meta device: it holds no values{where}")
    if dtype is None:
        dtype = torch.float32 if t.dtype == torch.float32 else torch.float64
    t = t.to(dtype=dtype, device=device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return t


def noise_level(
    value, name: str, *, like: torch.Tensor, batch_shape: torch.Size, positive: bool, trailing: int = 1
) -> torch.Tensor:
    """A noise coefficient (alpha or sigma): a number, or a tensor of ``batch_shape``.

    Returns a tensor that broadcasts against ``(*batch_shape, <trailing axes>)``: ``trailing`` unit
    axes are appended (1 for points ``(..., d)``, 3 for images ``(..., C, H, W)``).
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
    return t.reshape(*t.shape, *([1] * trailing)) if t.ndim > 0 else t


def diffusion_levels(alpha, sigma, *, dtype: torch.dtype, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar ``(alpha, sigma)`` of a diffused law: 0-d tensors, both >= 0 and not both 0."""
    a = as_tensor(alpha, "alpha", dtype=dtype, device=device)
    s = as_tensor(sigma, "sigma", dtype=dtype, device=device)
    if a.ndim != 0 or s.ndim != 0:
        raise ValueError("diffuse takes scalar alpha and sigma (use denoise/score_at for per-point levels)")
    if a < 0:
        raise ValueError(f"alpha must be >= 0, got {a.item():.6g}")
    if s < 0:
        raise ValueError(f"sigma must be >= 0, got {s.item():.6g}")
    if a == 0 and s == 0:
        raise ValueError("alpha and sigma cannot both be 0 (the law would be a point mass)")
    return a, s


def count(n, name: str = "n") -> int:
    """A nonnegative integer (a number of samples)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 0:
        raise ValueError(f"{name} must be a nonnegative integer, got {n!r}")
    return int(n)


def points(x, name: str, *, d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Points of shape ``(..., d)``."""
    t = as_tensor(x, name, dtype=dtype, device=device)
    if t.ndim == 0 or t.shape[-1] != d:
        raise ValueError(f"{name} must have shape (..., {d}), got {tuple(t.shape)}")
    return t


def symmetric_tolerance(dtype: torch.dtype) -> float:
    """Relative asymmetry accepted for a "symmetric" matrix: 1e-10 in float64, 1e-5 in float32."""
    return 1e-5 if dtype == torch.float32 else 1e-10


def spd_eigh(S: torch.Tensor, name: str, *, allow_singular: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The one check of a covariance-like matrix, used by every module: ``S`` of shape ``(..., d, d)`` must be
    symmetric (:math:`\max|S-S^\top|\le\epsilon\max|S|`, :func:`symmetric_tolerance`) and positive definite
    (smallest eigenvalue :math:`> d\,\epsilon_{\rm mach}\,|\lambda_{\max}|`) or, with ``allow_singular``,
    positive semidefinite (smallest eigenvalue :math:`\ge -d\,\epsilon_{\rm mach}|\lambda_{\max}|`).

    Returns ``eigh`` of the symmetric part (eigenvalues ascending). A batch names the offending index,
    ``name[k]``; the messages are "is not symmetric" and "is not positive (semi)definite"."""
    if S.ndim < 2 or S.shape[-1] != S.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (or a batch of them), got shape {tuple(S.shape)}")
    batch = S.shape[:-2]
    flat = S.reshape(-1, *S.shape[-2:])
    label = (lambda k: f"{name}[{k}]") if batch else (lambda k: name)
    scale = flat.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(S.dtype).tiny)
    asym = (flat - flat.transpose(-1, -2)).abs().amax(dim=(-2, -1)) / scale
    bad = (asym > symmetric_tolerance(S.dtype)).nonzero()
    if len(bad):
        k = bad[0].item()
        raise ValueError(f"{label(k)} is not symmetric (max |C - C^T| / max |C| = {asym[k].item():.3g})")
    evals, evecs = torch.linalg.eigh(0.5 * (flat + flat.transpose(-1, -2)))
    floor = S.shape[-1] * torch.finfo(S.dtype).eps * evals[:, -1].abs()
    bad = ((evals[:, 0] < -floor) if allow_singular else (evals[:, 0] <= floor)).nonzero()
    if len(bad):
        k = bad[0].item()
        kind = "positive semidefinite" if allow_singular else "positive definite"
        raise ValueError(
            f"{label(k)} is not {kind}: smallest eigenvalue {evals[k, 0].item():.6g} (largest {evals[k, -1].item():.6g})"
        )
    return evals.reshape(*batch, -1), evecs.reshape(*batch, *S.shape[-2:])
