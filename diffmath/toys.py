"""Standard toy problems: random Gaussian mixtures with a known closed form.

Used by the claim checks, the tests, the notebooks and :mod:`diffmath.strategies`; seeded through a
``torch.Generator`` so that every check is reproducible.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from diffmath.mixture import GaussianMixture

COV_TYPES = ("full", "diagonal", "isotropic")


def random_spd(d: int, *, generator: torch.Generator, dtype=torch.float64, device="cpu", floor: float = 0.2):
    """A random symmetric positive-definite (d, d) matrix :math:`AA^\\top/d + \\text{floor}\\,I`."""
    A = torch.randn(d, d, generator=generator, dtype=dtype, device=device)
    return A @ A.T / d + floor * torch.eye(d, dtype=dtype, device=device)


def random_mixture(
    n_components: int,
    dim: int,
    *,
    cov_type: str = "full",
    seed: int = 0,
    spread: float = 3.0,
    dtype: torch.dtype = torch.float64,
    device: Optional[torch.device] = None,
) -> GaussianMixture:
    """A random mixture: Dirichlet(1) weights, means of scale ``spread``, random covariances."""
    for name, v in (("n_components", n_components), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    n_components, dim = int(n_components), int(dim)
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    if not math.isfinite(spread):
        raise ValueError(f"spread must be a finite number, got {spread!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = torch.device("cpu") if device is None else torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = -torch.log(torch.rand(n_components, generator=g, dtype=torch.float64))
    w = w / w.sum()
    mu = spread * torch.randn(n_components, dim, generator=g, dtype=torch.float64)
    if cov_type == "full":
        covs = torch.stack([random_spd(dim, generator=g) for _ in range(n_components)])
    elif cov_type == "diagonal":
        covs = 0.2 + torch.rand(n_components, dim, generator=g, dtype=torch.float64)
    else:
        covs = 0.2 + torch.rand(n_components, generator=g, dtype=torch.float64)
    return GaussianMixture(w.to(dtype=dtype, device=device), mu.to(dtype=dtype, device=device), covs.to(dtype=dtype, device=device))


def random_low_rank_mixture(
    n_components: int,
    dim: int,
    rank: int,
    *,
    seed: int = 0,
    spread: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device: Optional[torch.device] = None,
) -> GaussianMixture:
    """A random low-rank mixture (:meth:`GaussianMixture.low_rank`): Dirichlet(1) weights, means of scale
    ``spread``, each component on a random ``rank``-dimensional affine subspace with factor entries of scale
    ``1/sqrt(rank)`` (unit-scale spread along the subspace)."""
    for name, v in (("n_components", n_components), ("dim", dim), ("rank", rank)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if rank > dim:
        raise ValueError(f"rank must be <= dim, got {rank} > {dim}")
    if not math.isfinite(spread):
        raise ValueError(f"spread must be a finite number, got {spread!r}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = -torch.log(torch.rand(n_components, generator=g, dtype=torch.float64))
    w = w / w.sum()
    mu = spread * torch.randn(n_components, dim, generator=g, dtype=torch.float64)
    A = torch.randn(n_components, dim, rank, generator=g, dtype=torch.float64) / math.sqrt(rank)
    device = torch.device("cpu") if device is None else torch.device(device)
    return GaussianMixture.low_rank(w.to(dtype=dtype, device=device), mu.to(dtype=dtype, device=device), A.to(dtype=dtype, device=device))
