r"""Posterior expectations by brute-force quadrature, for 1-D and 2-D mixtures.

An independent route to :math:`\mathbb E[f(x_0)\mid \alpha x_0+\sigma\varepsilon = x]`: only the prior
density :math:`p_0` and the Gaussian likelihood enter, on a tensor-product grid with the trapezoid
rule (exponentially accurate for these smooth, fast-decaying integrands once the grid resolves
the likelihood's width :math:`\sigma/\alpha`). Used to check the closed forms (claims C0.3, C0.5,
C18.1, C18.2) and in the tests.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffmath.mixture import GaussianMixture


def _axis(gm: GaussianMixture, j: int, n: int, width: float) -> torch.Tensor:
    sd = gm.eigenvalues.sqrt().max().item()
    lo = gm.means[:, j].min().item() - width * sd
    hi = gm.means[:, j].max().item() + width * sd
    return torch.linspace(lo, hi, n, dtype=gm.dtype, device=gm.device)


def posterior_expectation(
    gm: GaussianMixture,
    x: torch.Tensor,
    alpha: float,
    sigma: float,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    n: int | None = None,
    width: float = 14.0,
) -> torch.Tensor:
    """:math:`\\mathbb E[\\,\\text{fn}(x_0, x)\\mid x_t = x]` for points x (m, d), d in {1, 2}.

    ``fn(grid, x)`` gets the grid of x0 values (G, d) and the points (m, d) and returns (m, G, k);
    the result is (m, k). ``n`` grid points per axis (default 40,001 in 1-D, 801 in 2-D).
    """
    d = gm.dim
    if d not in (1, 2):
        raise ValueError(f"quadrature is implemented for d = 1 or 2, got d = {d}")
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    n = n or (40_001 if d == 1 else 801)
    axes = [_axis(gm, j, n, width) for j in range(d)]
    grid = torch.cartesian_prod(*axes).reshape(-1, d)
    loglik = -((x[:, None, :] - alpha * grid[None]) ** 2).sum(-1) / (2 * sigma**2)  # (m, G)
    logw = gm.log_prob(grid)[None] + loglik
    w = torch.exp(logw - logw.max(1, keepdim=True).values)
    vals = fn(grid, x)  # (m, G, k)
    shape = (x.shape[0],) + (n,) * d
    num = (w[..., None] * vals).reshape(*shape, -1)
    den = w.reshape(shape)
    for j in range(d):  # trapezoid along each axis in turn
        num = torch.trapezoid(num, axes[j], dim=1)
        den = torch.trapezoid(den, axes[j], dim=1)
    return num / den[:, None]
