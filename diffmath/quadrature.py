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


def _axis(gm: GaussianMixture, j: int, n: int, width: float, centre: float | None, half: float | None) -> torch.Tensor:
    """Grid along axis j: the prior's range (means +- width sd), cut down to the likelihood's
    window ``centre +- half`` when that is narrower, so the grid always resolves the posterior."""
    sd = gm.eigenvalues.sqrt().max().item()
    lo = gm.means[:, j].min().item() - width * sd
    hi = gm.means[:, j].max().item() + width * sd
    if centre is not None:
        lo, hi = max(lo, centre - half), min(hi, centre + half)
        if lo >= hi:  # the point is far outside the prior's range: centre the window on the likelihood
            lo, hi = centre - half, centre + half
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

    ``fn(grid, x)`` gets the grid of x0 values (G, d) and the points (1, d) and returns (1, G, k);
    the result is (m, k). ``n`` grid points per axis (default 20,001 in 1-D, 401 in 2-D). Each
    point gets its own grid: the prior's range, narrowed to ``width`` likelihood widths
    :math:`\\sigma/\\alpha` around :math:`x/\\alpha` (outside it the likelihood is below :math:`e^{-98}`).
    """
    d = gm.dim
    if d not in (1, 2):
        raise ValueError(f"quadrature is implemented for d = 1 or 2, got d = {d}")
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    n = n or (20_001 if d == 1 else 401)
    out = []
    for xi in x:
        xi = xi[None]
        if alpha > 0:
            axes = [_axis(gm, j, n, width, xi[0, j].item() / alpha, width * sigma / alpha) for j in range(d)]
        else:
            axes = [_axis(gm, j, n, width, None, None) for j in range(d)]
        grid = torch.cartesian_prod(*axes).reshape(-1, d)
        loglik = -((xi[:, None, :] - alpha * grid[None]) ** 2).sum(-1) / (2 * sigma**2)  # (1, G)
        logw = gm.log_prob(grid)[None] + loglik
        w = torch.exp(logw - logw.max(1, keepdim=True).values)
        vals = fn(grid, xi)  # (1, G, k)
        shape = (1,) + (n,) * d
        num = (w[..., None] * vals).reshape(*shape, -1)
        den = w.reshape(shape)
        for j in range(d):  # trapezoid along each axis in turn
            num = torch.trapezoid(num, axes[j], dim=1)
            den = torch.trapezoid(den, axes[j], dim=1)
        out.append(num / den[:, None])
    return torch.cat(out, 0)
