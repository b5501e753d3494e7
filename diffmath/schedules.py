r"""Noise schedules in the library's one convention, :math:`x_t = \alpha_t x_0 + \sigma_t\varepsilon`.

Time runs from data (:math:`t = 0`) to noise. Every schedule gives :math:`\alpha(t)`,
:math:`\sigma(t)`, their time derivatives (where the schedule is continuous),
:math:`\mathrm{SNR}(t) = \alpha^2/\sigma^2`, the log-SNR :math:`\lambda(t) = \log(\alpha^2/\sigma^2)`,
and the EDM noise level :math:`\sigma/\alpha` with its inverse, which is what the samplers need.

Notation clashes (see the book's notation chapter):

* Su's articles write :math:`\bar\alpha_t, \bar\beta_t` for our :math:`\alpha, \sigma` (VP, with
  :math:`\bar\alpha^2 + \bar\beta^2 = 1`); DDPM code stores :math:`\bar\alpha_t^2` as
  ``alphas_cumprod``.
* dpm-solver's :math:`\alpha_t` is our :math:`\alpha` but its :math:`\lambda_t` is *half* our log-SNR.
* EDM works with :math:`x/\alpha` and :math:`\sigma_{\rm EDM} = \sigma/\alpha` (:meth:`Schedule.edm_sigma`).
* Articles 17 and 20 use the rectified-flow line; article 17 has data at :math:`t=0` (as here),
  20 puts noise at :math:`t = 0` and data at :math:`t = 1` (use ``1 - t``). Article 19's flow is a
  gradient flow from the generator's law, not a noising path; it shares only that time direction.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from diffmath._validation import as_tensor


class Schedule(ABC):
    """A noise schedule on ``[t_min, t_max]``: :math:`\\alpha(t)`, :math:`\\sigma(t)` and derivatives."""

    t_min: float = 0.0
    t_max: float = 1.0
    family: str = "vp"
    """The constraint tying alpha to sigma: ``"vp"`` (alpha² + sigma² = 1), ``"rf"`` (alpha + sigma = 1)
    or ``"ve"`` (alpha = 1); :class:`ShiftedSchedule` stays in the family of its base."""

    # -- subclasses implement these on a validated float tensor ------------------------------
    @abstractmethod
    def _alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _sigma(self, t: torch.Tensor) -> torch.Tensor: ...

    def _dalpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no time derivative")

    def _dsigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no time derivative")

    @abstractmethod
    def _t_of_edm_sigma(self, s: torch.Tensor) -> torch.Tensor: ...

    # -- public, validated -------------------------------------------------------------------
    def times(self, t) -> torch.Tensor:
        """``t`` as a float tensor, checked to lie in ``[t_min, t_max]``."""
        t = as_tensor(t, "t")
        lo, hi = t.min().item() if t.numel() else self.t_min, t.max().item() if t.numel() else self.t_max
        if lo < self.t_min or hi > self.t_max:
            raise ValueError(
                f"t must lie in [{self.t_min}, {self.t_max}] for {self!r}, got values in [{lo:.6g}, {hi:.6g}]"
            )
        return t

    def alpha(self, t) -> torch.Tensor:
        """Signal coefficient :math:`\\alpha(t)`."""
        return self._alpha(self.times(t))

    def sigma(self, t) -> torch.Tensor:
        """Noise coefficient :math:`\\sigma(t)`."""
        return self._sigma(self.times(t))

    def dalpha(self, t) -> torch.Tensor:
        """:math:`d\\alpha/dt`."""
        return self._dalpha(self.times(t))

    def dsigma(self, t) -> torch.Tensor:
        """:math:`d\\sigma/dt`."""
        return self._dsigma(self.times(t))

    def snr(self, t) -> torch.Tensor:
        """:math:`\\mathrm{SNR}(t) = \\alpha^2/\\sigma^2` (``inf`` where :math:`\\sigma = 0`)."""
        t = self.times(t)
        return self._alpha(t) ** 2 / self._sigma(t) ** 2

    def log_snr(self, t) -> torch.Tensor:
        """:math:`\\lambda(t) = \\log(\\alpha^2/\\sigma^2) = 2\\log\\alpha - 2\\log\\sigma` (twice dpm-solver's λ)."""
        t = self.times(t)
        return 2.0 * (torch.log(self._alpha(t)) - torch.log(self._sigma(t)))

    def edm_sigma(self, t) -> torch.Tensor:
        """EDM noise level :math:`\\sigma/\\alpha`; the EDM state is :math:`x/\\alpha`."""
        t = self.times(t)
        return self._sigma(t) / self._alpha(t)

    def t_of_edm_sigma(self, s) -> torch.Tensor:
        """Inverse of :meth:`edm_sigma`: the time at which :math:`\\sigma/\\alpha = s`."""
        s = as_tensor(s, "s")
        if (s < 0).any():
            raise ValueError(f"s (an EDM noise level) must be >= 0, got min {s.min().item():.6g}")
        t = self._t_of_edm_sigma(s)
        if t.numel() and (t.max().item() > self.t_max * (1 + 1e-12) or torch.isnan(t).any()):
            raise ValueError(f"s = {s.max().item():.6g} is beyond {self!r}'s largest noise level")
        return t

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class VPLinear(Schedule):
    r"""Continuous variance-preserving schedule with linear :math:`\beta(t)` (Song et al. 2021, VP SDE).

    :math:`\beta(t) = \beta_{\min} + t(\beta_{\max} - \beta_{\min})`,
    :math:`\log\alpha(t) = -\tfrac14 t^2(\beta_{\max}-\beta_{\min}) - \tfrac12 t\beta_{\min}`,
    :math:`\sigma = \sqrt{1-\alpha^2}`, :math:`t\in[0,1]`. The continuous limit of DDPM's discrete
    linear schedule with ``beta_min = N * beta_start``, ``beta_max = N * beta_end``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not (0 <= beta_min <= beta_max) or not math.isfinite(beta_max) or beta_max == 0:
            raise ValueError(f"need 0 <= beta_min <= beta_max, beta_max > 0; got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t) -> torch.Tensor:
        t = self.times(t)
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def _alpha(self, t):
        return torch.exp(self._log_alpha(t))

    def _sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self._log_alpha(t)))

    def _dalpha(self, t):
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min)) * self._alpha(t)

    def _dsigma(self, t):
        return -self._alpha(t) * self._dalpha(t) / self._sigma(t)

    def _t_of_edm_sigma(self, s):
        # alpha^2 = 1/(1+s^2): solve 1/4 D t^2 + 1/2 b t - 1/2 log(1+s^2) = 0 for t >= 0
        D, b = self.beta_max - self.beta_min, self.beta_min
        c = 0.5 * torch.log1p(s**2)
        if D == 0:
            return c / (0.5 * b)
        return (-0.5 * b + torch.sqrt(0.25 * b * b + D * c)) / (0.5 * D)


class VPCosine(Schedule):
    r"""The cosine VP schedule of Nichol & Dhariwal (2021).

    :math:`\alpha(t) = \cos\phi(t)/\cos\phi(0)`, :math:`\phi(t) = \frac{t+s}{1+s}\frac{\pi}{2}`,
    :math:`\sigma = \sqrt{1-\alpha^2}`, :math:`t\in[0,1]` (so :math:`\alpha(1) = 0`). The paper's
    clipping of the discrete :math:`\beta_t` at 0.999 is not applied to this continuous form.
    """

    def __init__(self, s: float = 0.008):
        if not (0 <= s < 1):
            raise ValueError(f"s must lie in [0, 1), got {s}")
        self.s = float(s)

    def _phi(self, t):
        return (t + self.s) / (1 + self.s) * (math.pi / 2)

    def _alpha(self, t):
        return torch.cos(self._phi(t)) / math.cos(self._phi(0.0))

    def _sigma(self, t):
        return torch.sqrt(torch.clamp(1 - self._alpha(t) ** 2, min=0.0))

    def _dalpha(self, t):
        return -torch.sin(self._phi(t)) * (math.pi / 2) / (1 + self.s) / math.cos(self._phi(0.0))

    def _dsigma(self, t):
        return -self._alpha(t) * self._dalpha(t) / self._sigma(t)

    def _t_of_edm_sigma(self, s):
        alpha = 1 / torch.sqrt(1 + s**2)
        phi = torch.arccos(alpha * math.cos(self._phi(0.0)))
        return torch.clamp(phi * 2 * (1 + self.s) / math.pi - self.s, min=0.0)


class DDPMDiscrete(Schedule):
    r"""DDPM's discrete linear schedule (Ho et al. 2020): ``betas = linspace(beta_start, beta_end, N)``.

    ``alphas_cumprod[n]`` :math:`= \prod_{i\le n}(1-\beta_i) = \alpha_n^2` (Su's :math:`\bar\alpha_n^2`),
    :math:`\sigma_n = \sqrt{1-\alpha_n^2}`, for integer steps :math:`n = 0,\dots,N-1` as in diffusers.
    Non-integer times are rejected and there are no time derivatives: samplers use the EDM
    parametrisation :meth:`edm_sigma` on the grid. :meth:`as_continuous` gives the VP SDE limit.
    """

    def __init__(self, beta_start: float = 1e-4, beta_end: float = 0.02, num_steps: int = 1000):
        if not (0 < beta_start <= beta_end < 1):
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        if int(num_steps) != num_steps or num_steps < 2:
            raise ValueError(f"num_steps must be an integer >= 2, got {num_steps}")
        self.beta_start, self.beta_end, self.num_steps = float(beta_start), float(beta_end), int(num_steps)
        self.t_min, self.t_max = 0.0, float(self.num_steps - 1)
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=torch.float64)
        self._log_ac = torch.cumsum(torch.log1p(-betas), 0)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """DDPM's ``alphas_cumprod`` (= α², Su's ᾱ²) at every step."""
        return torch.exp(self._log_ac)

    def times(self, t) -> torch.Tensor:
        t = super().times(t)
        if not torch.equal(t, torch.round(t)):
            raise ValueError("t must be an integer step index for DDPMDiscrete (use as_continuous() for real t)")
        return t

    def _lookup(self, t):
        return self._log_ac.to(t.device)[t.long()]

    def _alpha(self, t):
        return torch.exp(0.5 * self._lookup(t))

    def _sigma(self, t):
        return torch.sqrt(-torch.expm1(self._lookup(t)))

    def _t_of_edm_sigma(self, s):
        raise NotImplementedError("DDPMDiscrete has only the grid of edm_sigma(arange(N)); no inverse")

    def as_continuous(self) -> VPLinear:
        """The VP SDE with :math:`\\beta(t) = N\\beta_{\\rm start} + t N(\\beta_{\\rm end}-\\beta_{\\rm start})`."""
        n = self.num_steps
        return VPLinear(beta_min=n * self.beta_start, beta_max=n * self.beta_end)


class EDM(Schedule):
    r"""The variance-exploding schedule of EDM (Karras et al. 2022): :math:`\alpha = 1`, :math:`\sigma = t`.

    :math:`t \in [0, \infty)`. ``sigma_min``, ``sigma_max``, ``rho`` and ``sigma_data`` are EDM's
    sampling defaults; :meth:`sampling_sigmas` gives its ρ-grid.
    """

    t_max = math.inf
    family = "ve"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 0.5):
        if not (0 < sigma_min < sigma_max < math.inf):
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got {sigma_min}, {sigma_max}")
        if not (rho > 0 and math.isfinite(rho)):
            raise ValueError(f"rho must be finite and > 0, got {rho}")
        if not (0 < sigma_data < math.inf):
            raise ValueError(f"sigma_data must be finite and > 0, got {sigma_data}")
        self.sigma_min, self.sigma_max, self.rho, self.sigma_data = map(float, (sigma_min, sigma_max, rho, sigma_data))

    def _alpha(self, t):
        return torch.ones_like(t)

    def _sigma(self, t):
        return t.clone()

    def _dalpha(self, t):
        return torch.zeros_like(t)

    def _dsigma(self, t):
        return torch.ones_like(t)

    def _t_of_edm_sigma(self, s):
        return s.clone()

    def sampling_sigmas(self, n: int, *, append_zero: bool = True) -> torch.Tensor:
        """EDM's ρ-grid from ``sigma_max`` down to ``sigma_min`` (:func:`edm_rho_grid`), then 0."""
        grid = edm_rho_grid(n, self.sigma_min, self.sigma_max, self.rho)
        return torch.cat([grid, grid.new_zeros(1)]) if append_zero else grid


class RectifiedFlow(Schedule):
    r"""The straight line of rectified flow (Liu et al. 2022): :math:`\alpha = 1 - t`, :math:`\sigma = t`.

    Data at :math:`t = 0` (article 17's convention); article 20 runs it the other way (noise at 0).
    """

    family = "rf"

    def _alpha(self, t):
        return 1 - t

    def _sigma(self, t):
        return t.clone()

    def _dalpha(self, t):
        return -torch.ones_like(t)

    def _dsigma(self, t):
        return torch.ones_like(t)

    def _t_of_edm_sigma(self, s):
        return s / (1 + s)


def edm_rho_grid(n: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    r"""EDM's sampling noise levels (Karras et al. 2022, eq. 5; article 21, eq. 2), descending.

    :math:`\sigma_i = \big(\sigma_{\max}^{1/\rho} + \tfrac{i}{n-1}(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho})\big)^{\rho}`,
    :math:`i = 0,\dots,n-1`. Uniform for :math:`\rho = 1`, geometric as :math:`\rho\to\infty`.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n}")
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got {sigma_min}, {sigma_max}")
    if not (rho > 0 and math.isfinite(rho)):
        raise ValueError(f"rho must be a finite number > 0, got {rho}")
    i = torch.arange(n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    grid = (hi + i / (n - 1) * (lo - hi)) ** rho
    grid[0], grid[-1] = sigma_max, sigma_min  # the endpoints exactly, not up to rounding
    return grid


class LogSNRCosine(Schedule):
    r"""simple diffusion's cosine schedule with a clipped log-SNR (Hoogeboom et al. 2023, arXiv 2301.11093).

    :math:`\lambda(t) = -2\log\tan\theta(t)`, :math:`\theta(t) = \theta_0 + t(\theta_1-\theta_0)` with
    :math:`\theta_0 = \arctan e^{-\lambda_{\max}/2}`, :math:`\theta_1 = \arctan e^{-\lambda_{\min}/2}`, so
    :math:`\lambda(0)=\lambda_{\max}`, :math:`\lambda(1)=\lambda_{\min}`; VP with
    :math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`, i.e. :math:`\alpha=\cos\theta`, :math:`\sigma=\sin\theta`,
    and EDM noise level :math:`\tan\theta`. Defaults :math:`\lambda\in[-15, 15]` as in the paper and
    in lucidrains' ``logsnr_schedule_cosine``. The unclipped limit is :class:`VPCosine` with ``s=0``.
    """

    def __init__(self, logsnr_min: float = -15.0, logsnr_max: float = 15.0):
        if not (math.isfinite(logsnr_min) and math.isfinite(logsnr_max) and logsnr_min < logsnr_max):
            raise ValueError(f"need finite logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}")
        self.logsnr_min, self.logsnr_max = float(logsnr_min), float(logsnr_max)
        self._th0 = math.atan(math.exp(-0.5 * self.logsnr_max))
        self._th1 = math.atan(math.exp(-0.5 * self.logsnr_min))

    def _theta(self, t):
        return self._th0 + t * (self._th1 - self._th0)

    def _alpha(self, t):
        return torch.cos(self._theta(t))

    def _sigma(self, t):
        return torch.sin(self._theta(t))

    def _dalpha(self, t):
        return -torch.sin(self._theta(t)) * (self._th1 - self._th0)

    def _dsigma(self, t):
        return torch.cos(self._theta(t)) * (self._th1 - self._th0)

    def _t_of_edm_sigma(self, s):
        return (torch.atan(s) - self._th0) / (self._th1 - self._th0)


def family_normaliser(family: str, a: torch.Tensor, b: torch.Tensor):
    r"""For a schedule family, :math:`n(a, b)` — homogeneous of degree 1 and equal to 1 exactly on the
    family's :math:`(\alpha, \sigma)` — and its partial derivatives :math:`(\partial_an, \partial_bn)`:
    VP :math:`\sqrt{a^2+b^2}`, rectified flow :math:`a+b`, VE :math:`a`. Dividing any
    :math:`(a, b)` by :math:`n` puts it on the family with the same ratio :math:`b/a`."""
    if family == "vp":
        n = torch.sqrt(a * a + b * b)
        return n, a / n, b / n
    if family == "rf":
        return a + b, torch.ones_like(a), torch.ones_like(b)
    if family == "ve":
        return a, torch.ones_like(a), torch.zeros_like(b)
    raise ValueError(f"unknown schedule family {family!r}")


class ShiftedSchedule(Schedule):
    r"""A schedule with its SNR divided by :math:`s^2`: the resolution shift of articles 22 and 23.

    :math:`\mathrm{SNR}'(t) = \mathrm{SNR}(t)/s^2`, i.e. :math:`\lambda'(t) = \lambda(t) - 2\log s`, at the
    same time :math:`t`, staying in the base's family: with :math:`(a, b) = (\alpha(t), s\,\sigma(t))`,
    :math:`(\alpha', \sigma') = (a, b)/n(a, b)` where :math:`n = \sqrt{a^2+b^2}` (VP), :math:`a+b`
    (rectified flow) or :math:`a` (VE/EDM: :math:`\sigma' = s\sigma`). For a VP base this is the
    unique solution of article 22's alignment (5),
    :math:`\alpha'^2 = \alpha^2/(\alpha^2 + s^2\sigma^2)` (claim C22.3) and simple diffusion's shifted
    schedule with :math:`s = d/64` (resolution :math:`d`, base 64); for the rectified-flow line it is
    Stable Diffusion 3's timestep shift (:func:`sd3_time_shift`, claim C22.7). The EDM noise level is
    multiplied by :math:`s`.

    ``shift`` is :math:`s > 0` (``s > 1``: more noise at every time, for a higher resolution), or a
    pair ``(s_start, s_end)`` interpolated log-linearly over the time range: simple diffusion's
    *interpolated* schedule, :math:`\lambda'(t) = (1-u)(\lambda - 2\log s_{\rm start}) + u(\lambda - 2\log s_{\rm end})`
    with :math:`u = (t - t_{\min})/(t_{\max}-t_{\min})` (lucidrains' ``logsnr_schedule_interpolated``
    with ``s_start = d/noise_d_high`` at the data end and ``s_end = d/noise_d_low`` at the noise end).
    """

    def __init__(self, base: Schedule, shift):
        if not isinstance(base, Schedule):
            raise ValueError(f"base must be a Schedule, got {type(base).__name__}")
        pair = isinstance(shift, (tuple, list))
        values = [float(v) for v in shift] if pair else [float(shift)]
        if (pair and len(values) != 2) or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"shift must be a number > 0 or a pair of numbers > 0, got {shift!r}")
        if pair and not math.isfinite(base.t_max):
            raise ValueError("an interpolated shift needs a base schedule with a finite time range")
        self.base, self.shift = base, (tuple(values) if pair else values[0])
        self.t_min, self.t_max, self.family = base.t_min, base.t_max, base.family
        self._logs = (math.log(values[0]), math.log(values[-1]))

    def times(self, t) -> torch.Tensor:
        return self.base.times(t)

    def factor(self, t) -> torch.Tensor:
        """:math:`s(t)`: the constant shift, or the log-linear interpolation of the pair."""
        return self._factor(self.times(t))

    def _factor(self, t):
        l0, l1 = self._logs
        if l0 == l1:
            return torch.full_like(t, math.exp(l0))
        u = (t - self.t_min) / (self.t_max - self.t_min)
        return torch.exp(l0 + u * (l1 - l0))

    def _ab(self, t):
        a, b = self.base._alpha(t), self._factor(t) * self.base._sigma(t)
        n, _, _ = family_normaliser(self.family, a, b)
        return a / n, b / n

    def _alpha(self, t):
        return self._ab(t)[0]

    def _sigma(self, t):
        return self._ab(t)[1]

    def _derivs(self, t):
        l0, l1 = self._logs
        f = self._factor(t)
        df = f * (l1 - l0) / (self.t_max - self.t_min) if l0 != l1 else torch.zeros_like(t)
        a, da = self.base._alpha(t), self.base._dalpha(t)
        b, db = f * self.base._sigma(t), f * self.base._dsigma(t) + df * self.base._sigma(t)
        n, na, nb = family_normaliser(self.family, a, b)
        dn = na * da + nb * db
        return (da * n - a * dn) / n**2, (db * n - b * dn) / n**2

    def _dalpha(self, t):
        return self._derivs(t)[0]

    def _dsigma(self, t):
        return self._derivs(t)[1]

    def _t_of_edm_sigma(self, s):
        l0, l1 = self._logs
        if l0 == l1:
            return self.base._t_of_edm_sigma(s / math.exp(l0))
        # sigma'/alpha' = s(t) sigma(t)/alpha(t): increasing in t for the shifts in use; bisection
        lo = torch.full_like(s, self.t_min)
        hi = torch.full_like(s, self.t_max)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            up = self._factor(mid) * self.base._sigma(mid) / self.base._alpha(mid) < s
            lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
        t = 0.5 * (lo + hi)
        got = self._factor(t) * self.base._sigma(t) / self.base._alpha(t)
        if not torch.allclose(got, s, rtol=1e-8, atol=1e-12):
            raise ValueError("this interpolated shift is not monotone in t here; no unique time for that noise level")
        return t

    def __repr__(self) -> str:
        return f"ShiftedSchedule({self.base!r}, shift={self.shift!r})"


def sd3_time_shift(t, shift: float) -> torch.Tensor:
    r"""Stable Diffusion 3's resolution-dependent timestep shift (Esser et al. 2024, arXiv 2403.03206, §5.3.2).

    :math:`t' = \frac{s\,t}{1 + (s-1)\,t}` on the rectified-flow line :math:`x_t = (1-t)x_0 + t\varepsilon`
    (noise at :math:`t = 1`, as here), with :math:`s = \sqrt{m/n}` for :math:`m` and :math:`n` pixels
    (the linear resolution factor). Written from the paper's formula, independently of
    :class:`ShiftedSchedule`, which claim C22.7 shows it equals.
    """
    t = as_tensor(t, "t")
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a finite number > 0, got {shift!r}")
    if t.numel() and (t.min().item() < 0 or t.max().item() > 1):
        raise ValueError("t must lie in [0, 1]")
    return shift * t / (1 + (shift - 1) * t)
