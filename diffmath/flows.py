r"""The probability-flow ODE: its velocity, the exact flow of a Gaussian, a reference solver.

For :math:`x_t = \alpha_t x_0 + \sigma_t\varepsilon` with exact denoiser
:math:`D(x;\alpha,\sigma) = \mathbb E[x_0\mid x_t = x]`, the probability-flow ODE (Song et al. 2021;
Su's part 6) has velocity (claim C0.6)

.. math::

    \frac{dx}{dt} = \dot\alpha_t D + \dot\sigma_t\frac{x - \alpha_t D}{\sigma_t}
                 = \frac{\dot\alpha_t}{\alpha_t}x - \Big(\sigma_t\dot\sigma_t - \frac{\dot\alpha_t}{\alpha_t}\sigma_t^2\Big)\nabla\log p_t(x),

the posterior mean of the conditional velocity :math:`\dot\alpha x_0 + \dot\sigma\varepsilon`.
In EDM variables :math:`\tilde x = x/\alpha`, :math:`s = \sigma/\alpha` it reads
:math:`d\tilde x/ds = (\tilde x - D(\tilde x; 1, s))/s` (claim C0.9): the trajectory depends on the
schedule only through :math:`s`, so one reference solver serves every schedule. It integrates
:math:`d\tilde x/du = \tilde x - D` in :math:`u = \log s` with an adaptive Dormand–Prince 5(4)
method at tolerances near float64 precision, entirely in torch (on the data's device).

For Gaussian data :math:`\mathcal N(\mu,\Sigma)` the flow is exact (claim C0.7):
:math:`x_t = \alpha_t\mu + (\alpha_t^2\Sigma+\sigma_t^2 I)^{1/2}(\alpha_s^2\Sigma+\sigma_s^2 I)^{-1/2}(x_s-\alpha_s\mu)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from diffmath._validation import as_tensor, spd_eigh
from diffmath.schedules import Schedule

Denoiser = Callable[[torch.Tensor, object, object], torch.Tensor]
"""``denoiser(x, alpha, sigma) -> E[x0 | alpha x0 + sigma eps = x]``, e.g. ``GaussianMixture.denoise``."""


def pf_ode_velocity(schedule: Schedule, denoiser: Denoiser) -> Callable[[torch.Tensor, object], torch.Tensor]:
    """The PF-ODE velocity :math:`v(x,t) = \\dot\\alpha D + \\dot\\sigma (x-\\alpha D)/\\sigma` (claim C0.6).

    ``t`` is a number (one time for every point). Needs :math:`\\sigma_t > 0`.
    """

    def velocity(x: torch.Tensor, t) -> torch.Tensor:
        t = schedule.times(t)
        if t.ndim != 0:
            raise ValueError("pf_ode_velocity takes one time t for all points")
        a, s = schedule.alpha(t).item(), schedule.sigma(t).item()
        da, ds = schedule.dalpha(t).item(), schedule.dsigma(t).item()
        if s <= 0:
            raise ValueError(f"the PF-ODE velocity needs sigma(t) > 0, got sigma({t.item():.6g}) = {s:.6g}")
        D = denoiser(x, a, s)
        return da * D + ds * (x - a * D) / s

    return velocity


def gaussian_flow(mean, cov, x_from, alpha_from, sigma_from, alpha_to, sigma_to) -> torch.Tensor:
    """The exact PF-ODE map for Gaussian data :math:`\\mathcal N(\\mu,\\Sigma)` (claim C0.7).

    :math:`x_{to} = \\alpha_{to}\\mu + (\\alpha_{to}^2\\Sigma+\\sigma_{to}^2 I)^{1/2}(\\alpha_{from}^2\\Sigma+\\sigma_{from}^2I)^{-1/2}(x_{from}-\\alpha_{from}\\mu)`.
    ``cov`` is a (d, d) symmetric positive-definite matrix; ``x_from`` has shape (..., d).
    """
    mu = as_tensor(mean, "mean")
    if mu.ndim != 1:
        raise ValueError(f"mean must have shape (d,), got {tuple(mu.shape)}")
    d = mu.shape[0]
    C = as_tensor(cov, "cov", dtype=mu.dtype, device=mu.device)
    if tuple(C.shape) != (d, d):
        raise ValueError(f"cov must have shape ({d}, {d}), got {tuple(C.shape)}")
    lam, U = spd_eigh(C, "cov")
    x = as_tensor(x_from, "x_from", dtype=mu.dtype, device=mu.device)
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(f"x_from must have shape (..., {d}), got {tuple(x.shape)}")
    levels = [
        as_tensor(v, name, dtype=mu.dtype, device=mu.device)
        for v, name in ((alpha_from, "alpha_from"), (sigma_from, "sigma_from"), (alpha_to, "alpha_to"), (sigma_to, "sigma_to"))
    ]
    for v, name in zip(levels, ("alpha_from", "sigma_from", "alpha_to", "sigma_to")):
        if v.ndim != 0 or v < 0:
            raise ValueError(f"{name} must be a number >= 0")
    a0, s0, a1, s1 = levels  # tensors, so that the map can be differentiated in the levels
    v0, v1 = a0**2 * lam + s0**2, a1**2 * lam + s1**2
    if (v0 <= 0).any():
        raise ValueError("the starting covariance alpha^2 Sigma + sigma^2 I must be positive definite")
    gain = torch.sqrt(v1 / v0)
    y = (x - a0 * mu) @ U
    return a1 * mu + (y * gain) @ U.T


# --- the reference solver ------------------------------------------------------------------------

# Dormand & Prince (1980), RK5(4)7FM: nodes, stages, 5th-order weights, embedded 4th-order weights.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


@dataclass
class SolveStats:
    """What the reference solver did: accepted and rejected steps, denoiser calls."""

    accepted: int = 0
    rejected: int = 0
    evaluations: int = 0


def _dopri5(f, y0: torch.Tensor, u0: float, u1: float, rtol: float, atol: float, max_steps: int, stats: SolveStats):
    """Integrate dy/du = f(u, y) from u0 to u1 (either direction) with error control per point."""
    direction = 1.0 if u1 >= u0 else -1.0
    span = abs(u1 - u0)
    if span == 0:
        return y0.clone()
    y, u = y0.clone(), u0
    k1 = f(u, y)
    stats.evaluations += 1
    h = min(span, 0.01 * max(1.0, span))
    batch_rows = y.reshape(y.shape[0], -1) if y.ndim > 1 else y.reshape(1, -1)
    while abs(u1 - u) > 1e-15 * max(1.0, abs(u1)):
        if stats.accepted + stats.rejected >= max_steps:
            raise RuntimeError(f"reference solver exceeded max_steps={max_steps}")
        h = min(h, abs(u1 - u))
        ks = [k1]
        for i in range(1, 7):
            yi = y + (direction * h) * sum(a * k for a, k in zip(_A[i], ks) if a != 0.0)
            ks.append(f(u + direction * h * _C[i], yi))
        stats.evaluations += 6
        y_new = y + (direction * h) * sum(b * k for b, k in zip(_B5, ks) if b != 0.0)
        err = (direction * h) * sum((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, ks) if b5 != b4)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        ratio = (err / scale).reshape(batch_rows.shape)
        err_norm = torch.sqrt((ratio**2).mean(-1)).max().item()  # the worst point decides
        if err_norm <= 1.0:
            u += direction * h
            y = y_new
            k1 = ks[-1]  # first-same-as-last
            stats.accepted += 1
            factor = 5.0 if err_norm == 0 else min(5.0, max(0.2, 0.9 * err_norm ** (-0.2)))
        else:
            stats.rejected += 1
            factor = max(0.2, 0.9 * err_norm ** (-0.2))
        h *= factor
    return y


def _solver_options(rtol, atol, max_steps) -> int:
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and 0 < v < math.inf):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, float)) or int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    return int(max_steps)


def integrate(f, y0, t0: float, t1: float, *, rtol: float = 1e-12, atol: float = 1e-12, max_steps: int = 100_000):
    """Integrate :math:`dy/dt = f(t, y)` from ``t0`` to ``t1`` with the reference Dormand–Prince
    5(4) method (error controlled point by point: the worst row of ``y`` decides the step)."""
    y0 = as_tensor(y0, "y0")
    max_steps = _solver_options(rtol, atol, max_steps)
    for name, v in (("t0", t0), ("t1", t1)):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    return _dopri5(f, y0, float(t0), float(t1), rtol, atol, max_steps, SolveStats())


def solve_pf_ode(
    denoiser: Denoiser,
    x,
    sigma_from: float,
    sigma_to: float,
    *,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    max_steps: int = 100_000,
    return_stats: bool = False,
):
    """Reference PF-ODE solver in EDM variables (:math:`\\alpha = 1`, noise level :math:`s`).

    Moves points ``x`` (shape (..., d)) from EDM noise level ``sigma_from`` to ``sigma_to`` along
    :math:`d\\tilde x/ds = (\\tilde x - D(\\tilde x; 1, s))/s`, integrated in :math:`\\log s` by an
    adaptive Dormand–Prince 5(4) method. Both levels must be > 0 and finite; either direction works.
    With the default tolerances the error is about 1e-10 on Gaussians (claim C0.7 measures it).
    For another schedule, use :func:`solve_schedule`.
    """
    x = as_tensor(x, "x")
    s0, s1 = float(sigma_from), float(sigma_to)
    for name, v in (("sigma_from", s0), ("sigma_to", s1)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number > 0, got {v}")
    max_steps = _solver_options(rtol, atol, max_steps)
    if not callable(denoiser):
        raise ValueError("denoiser must be callable denoiser(x, alpha, sigma)")

    def f(u, y):
        s = math.exp(u)
        out = denoiser(y, 1.0, s)
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the denoiser must return x's shape {tuple(y.shape)}, got {got}")
        return y - out

    stats = SolveStats()
    out = _dopri5(f, x, math.log(s0), math.log(s1), rtol, atol, max_steps, stats)
    return (out, stats) if return_stats else out


def solve_schedule(schedule: Schedule, denoiser: Denoiser, x, t_from, t_to, **kwargs) -> torch.Tensor:
    """Move ``x`` (a state at time ``t_from`` of ``schedule``) to ``t_to`` along the PF-ODE.

    Uses the schedule invariance (claim C0.9): :math:`x_{to} = \\alpha_{to}\\,\\Phi(x/\\alpha_{from})`
    with :math:`\\Phi` the EDM-variable flow from :math:`\\sigma_{from}/\\alpha_{from}` to
    :math:`\\sigma_{to}/\\alpha_{to}` (:func:`solve_pf_ode`). Both times need :math:`\\alpha,\\sigma > 0`.
    """
    x = as_tensor(x, "x")
    a0, a1 = schedule.alpha(t_from).item(), schedule.alpha(t_to).item()
    if a0 <= 0 or a1 <= 0:
        raise ValueError("solve_schedule needs alpha > 0 at both times (pure noise has no EDM level)")
    s0, s1 = schedule.edm_sigma(t_from).item(), schedule.edm_sigma(t_to).item()
    return a1 * solve_pf_ode(denoiser, x / a0, s0, s1, **kwargs)
