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
* Articles 17, 19 and 20 use the rectified-flow line; article 17 has data at :math:`t=0` (as here),
  19 and 20 put noise at :math:`t = 0` and data at :math:`t = 1` (use ``1 - t``).
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

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, sigma_data: float = 0.5):
        if not (0 < sigma_min < sigma_max < math.inf):
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got {sigma_min}, {sigma_max}")
        if not rho > 0:
            raise ValueError(f"rho must be > 0, got {rho}")
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

    Data at :math:`t = 0` (article 17's convention); articles 19 and 20 run it the other way.
    """

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
