r"""The empirical law of a finite training set, and its exact denoiser: what a perfectly trained network memorises.

For training points :math:`p_1,\dots,p_n\in\mathbb R^d` the data law is :math:`\frac1n\sum_i\delta_{p_i}`, and the
noisy law at :math:`x=\alpha x_0+\sigma\varepsilon` is the mixture :math:`\frac1n\sum_i\mathcal N(\alpha p_i,\sigma^2I)`
(:meth:`EmpiricalLaw.diffuse`). Its denoiser is a softmax-weighted average of the training points,

.. math:: D(x;\alpha,\sigma)=\sum_iw_i(x)\,p_i,\qquad w_i(x)=\operatorname{softmax}_i\Big(-\frac{\|x-\alpha p_i\|^2}{2\sigma^2}\Big),

and Tweedie's formula gives the score :math:`(\alpha D-x)/\sigma^2`. As :math:`\sigma\to0` the weights concentrate on
the nearest training point, so sampling the exact flow of this law reproduces the training set: the reference for
memorisation and generalisation studies (a network that generalises is *not* this denoiser). Issue 13's bench adds it
to the exact laws the samplers are tested on.

Convention: :math:`x_t=\alpha x_0+\sigma\varepsilon` (the library's); ``alpha`` >= 0 and ``sigma`` > 0 are numbers or
tensors of the batch's shape; points are float64 unless given as float32.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from diffmath._validation import as_tensor, count
from diffmath.mixture import GaussianMixture


class EmpiricalLaw:
    """The uniform law on the rows of ``points`` (n, d); see the module docstring."""

    def __init__(self, points):
        p = as_tensor(points, "points")
        if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
            raise ValueError(f"points must have shape (n, d) with n, d >= 1, got {tuple(p.shape)}")
        if not torch.isfinite(p).all():
            raise ValueError("points contains NaN or Inf")
        self.points = p

    @property
    def n(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.points.dtype

    @property
    def device(self) -> torch.device:
        return self.points.device

    def __repr__(self) -> str:
        return f"EmpiricalLaw(n={self.n}, d={self.dim}, dtype={self.dtype})"

    def to(self, device) -> "EmpiricalLaw":
        return EmpiricalLaw(self.points.to(device))

    # -- levels and points ---------------------------------------------------------------------------------
    def _x(self, x) -> torch.Tensor:
        x = as_tensor(x, "x", dtype=self.dtype, device=self.device)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., {self.dim}), got {tuple(x.shape)}")
        return x

    def _level(self, v, name: str, x: torch.Tensor, positive: bool) -> torch.Tensor:
        t = as_tensor(v, name, dtype=self.dtype, device=self.device)
        if t.ndim and tuple(t.shape) != tuple(x.shape[:-1]):
            raise ValueError(f"{name} must be a number or have x's batch shape {tuple(x.shape[:-1])}, got {tuple(t.shape)}")
        if (t <= 0).any() if positive else (t < 0).any():
            raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}")
        return t[..., None] if t.ndim else t

    def _logits(self, x, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """(-||x - alpha p_i||^2 / (2 sigma^2), of shape (..., n); sigma broadcast as (..., 1))."""
        x = self._x(x)
        a = self._level(alpha, "alpha", x, positive=False)
        s = self._level(sigma, "sigma", x, positive=True)
        diff = x[..., None, :] - a[..., None] * self.points if a.ndim else x[..., None, :] - a * self.points
        return -(diff * diff).sum(-1) / (2 * s * s), s

    # -- the law -------------------------------------------------------------------------------------------
    def weights(self, x, alpha, sigma) -> torch.Tensor:
        r"""The posterior weights :math:`w_i(x)=P(x_0=p_i\mid x)`, shape (..., n)."""
        return torch.softmax(self._logits(x, alpha, sigma)[0], -1)

    def denoise(self, x, alpha, sigma) -> torch.Tensor:
        r"""The exact denoiser :math:`\mathbb E[x_0\mid\alpha x_0+\sigma\varepsilon=x]=\sum_iw_i(x)p_i`."""
        return self.weights(x, alpha, sigma) @ self.points

    def score_at(self, x, alpha, sigma) -> torch.Tensor:
        r"""The score of the noisy law, :math:`(\alpha D(x)-x)/\sigma^2` (Tweedie's formula)."""
        x = self._x(x)
        a = self._level(alpha, "alpha", x, positive=False)
        s = self._level(sigma, "sigma", x, positive=True)
        return (a * self.denoise(x, alpha, sigma) - x) / (s * s)

    def log_prob_at(self, x, alpha, sigma) -> torch.Tensor:
        r""":math:`\log\frac1n\sum_i\mathcal N(x;\alpha p_i,\sigma^2I)`, shape (...)."""
        logits, s = self._logits(x, alpha, sigma)
        s = s[..., 0] if s.ndim else s
        return torch.logsumexp(logits, -1) - math.log(self.n) - self.dim * torch.log(s * math.sqrt(2 * math.pi))

    def diffuse(self, alpha, sigma) -> GaussianMixture:
        r"""The noisy law as a :class:`~diffmath.mixture.GaussianMixture`: equal weights, means :math:`\alpha p_i`,
        isotropic variance :math:`\sigma^2` (``alpha`` >= 0, ``sigma`` > 0 numbers)."""
        a = float(alpha)
        s = float(sigma)
        if not (a >= 0 and math.isfinite(a)) or not (s > 0 and math.isfinite(s)):
            raise ValueError(f"need alpha >= 0 and sigma > 0 (finite numbers), got {alpha!r}, {sigma!r}")
        w = torch.full((self.n,), 1.0 / self.n, dtype=self.dtype, device=self.device)
        return GaussianMixture(w, a * self.points, torch.full((self.n,), s * s, dtype=self.dtype, device=self.device))

    def nearest(self, x) -> torch.Tensor:
        """The training point nearest each x (the denoiser's limit as sigma -> 0 at alpha = 1), shape (..., d)."""
        x = self._x(x)
        d2 = ((x[..., None, :] - self.points) ** 2).sum(-1)
        return self.points[d2.argmin(-1)]

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` draws of the law: training points chosen uniformly with replacement, shape (n, d)."""
        n = count(n)
        idx = torch.randint(self.n, (n,), generator=generator, device=self.device if generator is None else generator.device)
        return self.points[idx.to(self.device)]
