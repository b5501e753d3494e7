r"""Mean-value facts behind AMED (article 21, kexue.fm 9881; Zhou et al. 2024, arXiv 2312.00094).

Convention: article 21 writes the sampling ODE in EDM/VE form with time :math:`t\equiv\sigma`,
data at :math:`t=0` and the starting noise :math:`x_T` at the large end; here :math:`x=x_0+\sigma\varepsilon`
(the library's :math:`\alpha=1` case, Karras et al. 2022), the velocity is
:math:`v(x,\sigma)=(x-D(x;\sigma))/\sigma` and a sampler step goes from :math:`t_{n+1}` down to :math:`t_n`.

Contents:

* :func:`edm_rho_limit` -- the :math:`\rho\to\infty` limit of EDM's grid (eq. 2), the geometric grid;
* :func:`cubic_mean_value_time` -- the mean-value time of the curve :math:`x(t)=(t,t^3)`;
* :func:`isotropic_velocity_gain`, :func:`exact_gain`, :func:`amed_gain`, :func:`mean_value_time` --
  the exact AMED mean-value time for isotropic Gaussian data :math:`\mathcal N(\mu,s^2I)` (eq. 13);
* :func:`euler_step` -- one Euler step (eq. 4) in EDM coordinates with a given denoiser output;
* :func:`afs_ratio` -- the analytic first step's gain against the exact velocity;
* :func:`pca_residuals` -- how far a trajectory is from its best :math:`k`-dimensional affine subspace.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "edm_rho_limit",
    "cubic_mean_value_time",
    "isotropic_velocity_gain",
    "exact_gain",
    "amed_gain",
    "mean_value_time",
    "euler_step",
    "afs_ratio",
    "pca_residuals",
]


def _positive(value, name: str) -> float:
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def edm_rho_limit(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    r"""The geometric grid :math:`\sigma_i=\sigma_{\max}^{1-i/(n-1)}\sigma_{\min}^{i/(n-1)}`, descending.

    The :math:`\rho\to\infty` limit of EDM's grid (article 21, eq. 2; Karras et al. 2022, eq. 5),
    i.e. nodes uniform in :math:`\log\sigma` (claim C21.2).
    """
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n}")
    lo, hi = _positive(sigma_min, "sigma_min"), _positive(sigma_max, "sigma_max")
    if not lo < hi:
        raise ValueError(f"need sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    u = torch.arange(n, dtype=torch.float64) / (n - 1)
    grid = torch.exp((1 - u) * math.log(hi) + u * math.log(lo))
    grid[0], grid[-1] = hi, lo
    return grid


def cubic_mean_value_time(a: float, b: float) -> float:
    r"""The :math:`s\in(a,b)` at which the velocity :math:`(1,3s^2)` of :math:`x(t)=(t,t^3)` equals the chord.

    The chord slope is :math:`(b^3-a^3)/(b-a)=a^2+ab+b^2`, so :math:`s=\operatorname{sign}(a+b)\sqrt{(a^2+ab+b^2)/3}`
    (either sign when :math:`a+b=0`). It lies in :math:`(a,b)` for every :math:`a<b`: the curve satisfies
    the vector integral mean-value theorem on every interval although it is not straight (claim C21.6,
    the counterexample to article 21's converse).
    """
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"need finite a < b, got a={a}, b={b}")
    s = math.sqrt((a * a + a * b + b * b) / 3.0)
    return -s if a + b < 0 else s


def isotropic_velocity_gain(sigma, sd: float):
    r""":math:`c(\sigma)=\sigma/(s^2+\sigma^2)`: for data :math:`\mathcal N(\mu,s^2I)`, :math:`v(x,\sigma)=c(\sigma)(x-\mu)`."""
    sd = _positive(sd, "sd")
    return sigma / (sd * sd + sigma * sigma)


def exact_gain(t_to: float, t_from: float, sd: float) -> float:
    r"""The exact PF-ODE factor :math:`(x(t_{to})-\mu)/(x(t_{from})-\mu)=\sqrt{(s^2+t_{to}^2)/(s^2+t_{from}^2)}`.

    Isotropic Gaussian data :math:`\mathcal N(\mu,s^2I)` in EDM coordinates (the scalar case of
    :func:`diffmath.flows.gaussian_flow`, claim C0.7).
    """
    sd = _positive(sd, "sd")
    for name, t in (("t_to", t_to), ("t_from", t_from)):
        if not (float(t) >= 0 and math.isfinite(float(t))):
            raise ValueError(f"{name} must be a finite number >= 0, got {t!r}")
    return math.sqrt((sd * sd + t_to * t_to) / (sd * sd + t_from * t_from))


def amed_gain(s, t_to: float, t_from: float, sd: float):
    r"""The factor by which one AMED step (article 21, eq. 13) multiplies :math:`x-\mu` for :math:`\mathcal N(\mu,s^2I)`.

    The step predicts :math:`\tilde x_s=x-v(x,t_{from})(t_{from}-s)` by Euler and then moves
    :math:`x\leftarrow x-v(\tilde x_s,s)(t_{from}-t_{to})`; both keep :math:`x-\mu` on one line, so
    :math:`\varphi(s)=1-c(s)\,[1-c(t_{from})(t_{from}-s)]\,(t_{from}-t_{to})` with :math:`c` from
    :func:`isotropic_velocity_gain`. ``s`` may be a float or a tensor.
    """
    h = t_from - t_to
    return 1 - isotropic_velocity_gain(s, sd) * (1 - isotropic_velocity_gain(t_from, sd) * (t_from - s)) * h


def mean_value_time(t_to: float, t_from: float, sd: float, *, iterations: int = 200) -> float:
    r"""The exact AMED mean-value time :math:`s^*\in(t_{to},t_{from})` for data :math:`\mathcal N(\mu,s^2I)`.

    Solves :math:`\varphi(s^*)=\sqrt{(s^2+t_{to}^2)/(s^2+t_{from}^2)}` (:func:`amed_gain` against
    :func:`exact_gain`) by bisection to the last bit. The bracket: :math:`\varphi(t_{from})` is Euler's
    factor :math:`(s^2+t_{to}t_{from})/(s^2+t_{from}^2)`, below the exact one by Cauchy–Schwarz, and
    :math:`\varphi(t_{to})` is above it (checked here; a ValueError if not). Claim C21.8.
    Requires :math:`0<t_{to}<t_{from}`.
    """
    t_to, t_from = _positive(t_to, "t_to"), _positive(t_from, "t_from")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, float)) or int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not t_to < t_from:
        raise ValueError(f"need t_to < t_from, got t_to={t_to}, t_from={t_from}")
    target = exact_gain(t_to, t_from, sd)
    lo, hi = t_to, t_from  # g(lo) >= 0 >= g(hi)
    g_lo, g_hi = amed_gain(lo, t_to, t_from, sd) - target, amed_gain(hi, t_to, t_from, sd) - target
    if not (g_lo >= 0 >= g_hi):
        raise ValueError(f"no sign change on [t_to, t_from]: phi - exact = {g_lo:.3g}, {g_hi:.3g}")
    for _ in range(int(iterations)):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if amed_gain(mid, t_to, t_from, sd) - target >= 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    r"""One Euler step of :math:`dx/d\sigma=(x-D)/\sigma` (article 21, eq. 4): :math:`x+(\sigma_{next}-\sigma)(x-D)/\sigma`.

    ``denoised`` is :math:`D(x;\sigma)`; ``sigma`` > 0, ``sigma_next`` >= 0. For point-mass data
    :math:`D\equiv\mu` this is the exact flow (claim C21.9).
    """
    sigma = _positive(sigma, "sigma")
    if not (sigma_next >= 0 and math.isfinite(sigma_next)):
        raise ValueError(f"sigma_next must be a finite number >= 0, got {sigma_next!r}")
    return x + (sigma_next - sigma) * (x - denoised) / sigma


def afs_ratio(sigma: float, sd: float) -> float:
    r"""Analytic first step against the exact velocity, centred isotropic data :math:`\mathcal N(0,s^2I)`.

    AFS (Dockhorn et al. 2022, GENIE; used by AMED's code) replaces :math:`v(x,T)` by
    :math:`x/\sqrt{1+T^2}`; the exact velocity is :math:`Tx/(s^2+T^2)`, so the ratio is
    :math:`(s^2+T^2)/(T\sqrt{1+T^2})=1+(s^2-\tfrac12)/T^2+O(T^{-4})` (claim C21.10).
    """
    T, sd = _positive(sigma, "sigma"), _positive(sd, "sd")
    return (sd * sd + T * T) / (T * math.sqrt(1 + T * T))


def pca_residuals(points: torch.Tensor, ks=(1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Best affine :math:`k`-dimensional fit of one trajectory (points of shape (m, d)).

    Centres the points, takes the SVD, and returns ``(residual, explained)``: for each ``k`` the
    largest distance of a point to its projection on the top-:math:`k` affine principal subspace,
    divided by the largest distance of a point from the centroid, and the fraction of the
    variance explained by the top :math:`k` components. The residual is non-increasing in ``k``
    (Eckart–Young) and 0 for :math:`k\ge` the rank.
    """
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[0] < 2:
        raise ValueError("points must be a tensor of shape (m, d) with m >= 2")
    ks = tuple(int(k) for k in ks)
    if any(k < 0 for k in ks):
        raise ValueError(f"ks must be nonnegative, got {ks}")
    c = points - points.mean(0)
    _, S, Vh = torch.linalg.svd(c, full_matrices=False)
    scale = c.norm(dim=1).max()
    var = S**2
    res, expl = [], []
    for k in ks:
        V = Vh[:k]
        r = c - (c @ V.T) @ V
        res.append(r.norm(dim=1).max() / scale)
        expl.append(var[:k].sum() / var.sum())
    return torch.stack(res), torch.stack(expl)
