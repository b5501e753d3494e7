r"""Posterior expectations by brute-force quadrature, for 1-D and 2-D mixtures.

An independent route to :math:`\mathbb E[f(x_0)\mid \alpha x_0+\sigma\varepsilon = x]`: only the prior
density :math:`p_0` and the Gaussian likelihood enter, on a tensor-product grid with the trapezoid
rule (exponentially accurate for these smooth, fast-decaying integrands once the grid resolves
the likelihood's width :math:`\sigma/\alpha`). Used to check the closed forms (claims C0.3, C0.5,
C18.1, C18.2) and in the tests.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from diffmath.mixture import GaussianMixture


def _prior_range(gm: GaussianMixture, j: int, width: float) -> tuple[float, float]:
    sd = gm.eigenvalues.sqrt().max().item()
    return gm.means[:, j].min().item() - width * sd, gm.means[:, j].max().item() + width * sd


def _log_weights(gm: GaussianMixture, grid: torch.Tensor, xi: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """log prior + log likelihood on the grid (G, d) for one point ``xi`` (1, d): (1, G), up to a constant."""
    loglik = -((xi[:, None, :] - alpha * grid[None]) ** 2).sum(-1) / (2 * sigma**2)
    return gm.log_prob(grid)[None] + loglik


def _window(gm: GaussianMixture, xi: torch.Tensor, alpha: float, sigma: float, n: int, width: float) -> list[torch.Tensor]:
    r"""The integration grid for one point, per axis, found without the closed forms in two passes.

    Pass 1 evaluates the unnormalised log posterior on a scouting grid per axis, ``max(101, n // 4)`` points on
    each of: the prior's range (means +- ``width`` sd); the likelihood's window (:math:`x/\alpha` +- (``width`` + 1)
    :math:`\sigma/\alpha`) cut to the prior's range, or, when the two are disjoint (a point far in the prior's
    tail), the whole window and the gap between it and the prior's range, where the posterior then lies. A
    likelihood too wide to place in float64 (:math:`\alpha` near 0) is flat across the prior and adds nothing.
    Where the region within :math:`\text{width}^2/2` (98) of the maximum reaches the edge of the scouted
    range (a far point's posterior in the prior's tail can reach past the prior's range), that side is scouted
    further, doubling its span, until it does not. Pass 2 spreads ``n`` points over the box of that region,
    widened on each side to the next scouting node (where the threshold is crossed). Neither
    window alone is enough: the likelihood's window misses the posterior of a point far in the prior's tail (the
    prior can grow by far more than :math:`e^{98}` across it: at :math:`x = 40`, :math:`\sigma = 0.3` for a unit
    prior at 0 the posterior mean lies 2.8 posterior standard deviations outside it), and the prior's range is
    far too coarse for a narrow likelihood.
    """
    d = gm.dim
    m = max(101, n // 4)  # scouting points per window
    scout = []
    for j in range(d):
        lo, hi = _prior_range(gm, j, width)
        parts = [torch.linspace(lo, hi, m, dtype=gm.dtype, device=gm.device)]
        # one likelihood sd past the threshold: a narrow likelihood's kept region then ends inside its window, where the
        # scouting is finest, not on its edge (which would send the loop below to scout past it, coarsely)
        c, half = (xi[0, j].item() / alpha, (width + 1) * sigma / alpha) if alpha > 0 else (math.nan, math.nan)
        if math.isfinite(c - half) and math.isfinite(c + half):  # else the likelihood is flat across the prior
            wlo, whi = max(lo, c - half), min(hi, c + half)
            if wlo >= whi:  # disjoint: the likelihood's own window, and the gap between it and the prior's range
                wlo, whi = c - half, c + half
                glo, ghi = (hi, wlo) if wlo > hi else (whi, lo)
                parts.append(torch.linspace(glo, ghi, m, dtype=gm.dtype, device=gm.device))
            parts.append(torch.linspace(wlo, whi, m, dtype=gm.dtype, device=gm.device))
        scout.append(torch.unique(torch.cat(parts)))
    for _ in range(60):  # the kept region must not touch the scouted one: else extend that side and look again
        grid = torch.cartesian_prod(*scout).reshape(-1, d)
        logw = _log_weights(gm, grid, xi, alpha, sigma)[0]
        keep = grid[logw >= logw.max() - width**2 / 2]
        grown = False
        for j in range(d):
            ax = scout[j]
            span = (ax[-1] - ax[0]).item()
            ends = []  # the sides the kept region touches, each scouted a span further
            if keep[:, j].min() <= ax[0]:
                ends.append(torch.linspace(ax[0].item() - span, ax[0].item(), m, dtype=gm.dtype, device=gm.device))
            if keep[:, j].max() >= ax[-1]:
                ends.append(torch.linspace(ax[-1].item(), ax[-1].item() + span, m, dtype=gm.dtype, device=gm.device))
            if ends:
                scout[j] = torch.unique(torch.cat([ax, *ends]))
                grown = True
        if not grown:
            break
    else:
        raise RuntimeError("quadrature: the posterior's region kept growing; is the log density finite?")
    axes = []
    for j in range(d):
        # the threshold is crossed between the outermost kept node and the next scouting node: widen to that node (the
        # loop above left at least one node outside the kept region on each side)
        i_lo = int(torch.searchsorted(scout[j], keep[:, j].min()).item())
        i_hi = int(torch.searchsorted(scout[j], keep[:, j].max()).item())
        lo, hi = scout[j][i_lo - 1].item(), scout[j][i_hi + 1].item()
        axes.append(torch.linspace(lo, hi, n, dtype=gm.dtype, device=gm.device))
    return axes


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
    r""":math:`\mathbb E[\,\text{fn}(x_0, x)\mid x_t = x]` for points x (m, d), d in {1, 2}.

    ``fn(grid, x)`` gets the grid of x0 values (G, d) and the points (1, d) and returns (1, G, k);
    the result is (m, k). ``n`` grid points per axis (default 20,001 in 1-D, 401 in 2-D). Each
    point gets its own grid (:func:`_window`): the box where the unnormalised log posterior is within
    ``width**2 / 2`` of its maximum, found on a scouting grid; outside it the posterior density is below
    :math:`e^{-98}` of its peak.
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
        axes = _window(gm, xi, alpha, sigma, n, width)
        grid = torch.cartesian_prod(*axes).reshape(-1, d)
        logw = _log_weights(gm, grid, xi, alpha, sigma)
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
