r"""Part 16 (kexue.fm 9467) on exact toys: the W-distance bound against the true W-distance.

Convention of part 16 (and of this module): data at :math:`t = 0`, noise at :math:`t = T`, and
sampling integrates the ODE *backward* from :math:`T` to 0. The forward SDE is
:math:`dx = f_tx\,dt + g_t\,dw` with the marginals :math:`p_t` of :math:`\alpha_tx_0+\sigma_t\varepsilon`
(:func:`diffmath.linear_flows.sde_coefficients`); the true sampler follows the probability-flow
ODE :math:`dx/dt = f_tx - \tfrac12g_t^2\nabla\log p_t(x)` and the model sampler
:math:`dy/dt = f_ty - \tfrac12g_t^2s_\theta(y,t)`.

Two toys where everything is exact:

* :class:`LinearGaussianCase` — Gaussian data :math:`\mathcal N(\mu,\Sigma)` in :math:`d` dimensions
  and a model whose score is that of another diffused Gaussian :math:`\mathcal N(\mu_\theta,\Sigma_\theta)`.
  Both samplers are affine flows; :math:`\mathcal W_2` (Bures), the synchronous coupling cost, the
  score gap and the one-sided constants are all closed forms.
* :class:`MixtureGaussianModel` — 1-D Gaussian-mixture data and the same kind of Gaussian-score
  model. The model sampler is affine, so its output is again a mixture and the true
  :math:`\mathcal W_2` is a 1-D quadrature (:func:`diffmath.wasserstein.w2_1d_mixtures`); the score gap is
  a trapezoid-rule integral against the diffused density (:meth:`MixtureGaussianModel.score_gap`).

Plus the quantities of the SDE discussion (article (24)–(26)): :func:`ot_obstruction` (the term
(26) under the optimal coupling of two Gaussians, :math:`\operatorname{tr}(A+A^{-1}-2I)`) and
:func:`obstruction_samples` (its integrand, for Monte Carlo and for other couplings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffmath import flows
from diffmath import linear_flows as lf
from diffmath import wasserstein as wd
from diffmath._validation import as_tensor
from diffmath.mixture import GaussianMixture
from diffmath.schedules import Schedule, VPLinear

BOUND_KINDS = ("corrected", "literal", "g2")
"""The bounds reported by :meth:`LinearGaussianCase.bound` and :meth:`MixtureGaussianModel.bound`:

* ``corrected`` — :math:`\\int_0^T\\tfrac12g_t^2I_t\\,\\epsilon_t\\,dt + I_T\\mathcal W_2[p_T,q_T]` with
  :math:`L_t` the backward one-sided constant of the model field (claims C16.4, C16.9);
* ``literal`` — the same with the article's forward one-sided constant (10) (refuted, C16.3);
* ``g2`` — the corrected bound with coefficient :math:`g_t^2` instead of :math:`\\tfrac12g_t^2`, the
  form of the article's (1).

Here :math:`\\epsilon_t = (\\mathbb E_{p_t}\\|\\nabla\\log p_t-s_\\theta\\|^2)^{1/2}`.
"""


def _gaussian_flow_map(schedule: Schedule, mean: torch.Tensor, cov: torch.Tensor, t_from: float, t_to: float) -> lf.AffineMap:
    """The exact PF-ODE map of Gaussian data (claim C0.7) as an affine map."""
    d = mean.shape[0]
    a0, s0 = schedule.alpha(t_from).item(), schedule.sigma(t_from).item()
    a1, s1 = schedule.alpha(t_to).item(), schedule.sigma(t_to).item()
    eye = torch.eye(d, dtype=mean.dtype, device=mean.device)
    M = flows.gaussian_flow(torch.zeros_like(mean), cov, eye, a0, s0, a1, s1).T  # columns: images of e_i
    c = a1 * mean - a0 * (M @ mean)
    return lf.AffineMap(M, c)


def _check_T(schedule: Schedule, T: float) -> float:
    T = float(T)
    schedule.times(T)
    if not T > schedule.t_min:
        raise ValueError(f"T must be > {schedule.t_min}, got {T}")
    return T


# -------------------------------------------------------------------------------------------------
# Gaussian data, Gaussian-score model: everything in closed form
# -------------------------------------------------------------------------------------------------
@dataclass
class LinearGaussianCase:
    r"""Gaussian data :math:`\mathcal N(\mu,\Sigma)`, model score of the diffused :math:`\mathcal N(\mu_\theta,\Sigma_\theta)`.

    The model sampler is the probability-flow ODE of :math:`\mathcal N(\mu_\theta,\Sigma_\theta)`, so both
    samplers are affine maps from :math:`T` to 0. ``start`` picks the model's initial law:
    ``"exact"`` (:math:`q_T = p_T`, the same samples: synchronous coupling) or ``"standard"``
    (:math:`q_T = \mathcal N(0,I)`, coupled to :math:`p_T` optimally as in the article's (19)).
    """

    schedule: Schedule
    mean: torch.Tensor
    cov: torch.Tensor
    model_mean: torch.Tensor
    model_cov: torch.Tensor
    T: float = 1.0
    start: str = "exact"

    def __post_init__(self):
        dtype, device = wd.common_dtype_device(self.mean, self.cov, self.model_mean, self.model_cov)
        self.mean, self.cov = wd._mean_cov(self.mean, self.cov, "data", dtype=dtype, device=device)
        self.model_mean, self.model_cov = wd._mean_cov(self.model_mean, self.model_cov, "model", dtype=dtype, device=device)
        wd.check_spd(self.cov, "data cov")
        wd.check_spd(self.model_cov, "model cov")
        if self.mean.shape != self.model_mean.shape:
            raise ValueError("data and model must have the same dimension")
        self.T = _check_T(self.schedule, self.T)
        if self.start not in ("exact", "standard"):
            raise ValueError(f"start must be 'exact' or 'standard', got {self.start!r}")

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def marginal(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`p_t = \\mathcal N(\\alpha_t\\mu, \\alpha_t^2\\Sigma + \\sigma_t^2 I)`."""
        a, s = self.schedule.alpha(float(t)).item(), self.schedule.sigma(float(t)).item()
        eye = torch.eye(self.dim, dtype=self.mean.dtype, device=self.mean.device)
        return a * self.mean, a**2 * self.cov + s**2 * eye

    def start_laws(self):
        """:math:`(m, S)` of :math:`p_T` and of :math:`q_T`."""
        pT = self.marginal(self.T)
        if self.start == "exact":
            return pT, pT
        eye = torch.eye(self.dim, dtype=self.mean.dtype, device=self.mean.device)
        return pT, (torch.zeros_like(self.mean), eye)

    def true_flow(self) -> lf.AffineMap:
        return _gaussian_flow_map(self.schedule, self.mean, self.cov, self.T, 0.0)

    def model_flow(self) -> lf.AffineMap:
        return _gaussian_flow_map(self.schedule, self.model_mean, self.model_cov, self.T, 0.0)

    def w2(self) -> float:
        """The true :math:`\\mathcal W_2[p_0,q_0]` (Bures): :math:`p_0` is the data law, :math:`q_0` the model's output."""
        _, (mq, Sq) = self.start_laws()
        m0, S0 = lf.push_gaussian(self.model_flow(), mq, Sq)
        return wd.bures_w2(self.mean, self.cov, m0, S0).item()

    def wtilde(self) -> float:
        """:math:`\\tilde{\\mathcal W}_2`: the cost of the synchronous (or, from different laws, OT-started) coupling."""
        (mp, Sp), (mq, Sq) = self.start_laws()
        second = self.model_flow()
        if self.start == "standard":
            A = wd.gaussian_ot_map(Sp, Sq)
            second = lf.AffineMap(A, mq - A @ mp).then(second)
        return lf.coupling_cost(self.true_flow(), second, mp, Sp).clamp_min(0).sqrt().item()

    def w2_start(self) -> float:
        (mp, Sp), (mq, Sq) = self.start_laws()
        return wd.bures_w2(mp, Sp, mq, Sq).item()

    def model_field(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The model sampler's field :math:`f_ty-\\tfrac12g_t^2s_\\theta(y,t) = B_ty+b_t`."""
        return lf.gaussian_pf_field(self.schedule, self.model_mean, self.model_cov, t)

    def _batch(self, ts):
        ts = torch.as_tensor(np.asarray(ts, dtype=np.float64), dtype=self.mean.dtype, device=self.mean.device)
        a, s = self.schedule.alpha(ts), self.schedule.sigma(ts)
        f, g2 = lf.sde_coefficients(self.schedule, ts)
        eye = torch.eye(self.dim, dtype=self.mean.dtype, device=self.mean.device)
        S = a[:, None, None] ** 2 * self.cov + s[:, None, None] ** 2 * eye
        Sm = a[:, None, None] ** 2 * self.model_cov + s[:, None, None] ** 2 * eye
        return a, s, f, g2, S, Sm, eye

    def score_gap(self, ts) -> np.ndarray:
        r""":math:`\epsilon_t = (\mathbb E_{p_t}\|\nabla\log p_t-s_\theta\|^2)^{1/2}` in closed form, at the times ``ts``."""
        a, _, _, _, S, Sm, _ = self._batch(ts)
        P, Pm = torch.linalg.inv(S), torch.linalg.inv(Sm)
        D = Pm - P  # score - model score = D x + e
        m = a[:, None] * self.mean
        e = (P @ m[..., None])[..., 0] - a[:, None] * (Pm @ self.model_mean)
        shift = (D @ m[..., None])[..., 0] + e
        val = (shift**2).sum(-1) + torch.einsum("nij,njk,nik->n", D, S, D)
        return val.clamp_min(0).sqrt().cpu().numpy()

    def constants(self, ts) -> tuple[np.ndarray, np.ndarray]:
        """(backward one-sided constant, forward one-sided constant (10)) of the model field at the times ``ts``."""
        _, _, f, g2, _, Sm, eye = self._batch(ts)
        B = f[:, None, None] * eye + 0.5 * g2[:, None, None] * torch.linalg.inv(Sm)
        ev = torch.linalg.eigvalsh(0.5 * (B + B.transpose(-1, -2)))
        return (-ev[:, 0]).cpu().numpy(), ev[:, -1].cpu().numpy()

    def bound(self, kind: str = "corrected", **quad) -> float:
        """One of :data:`BOUND_KINDS`, by Gauss–Legendre quadrature (:func:`diffmath.linear_flows.lemma_bound`)."""
        if kind not in BOUND_KINDS:
            raise ValueError(f"kind must be one of {BOUND_KINDS}, got {kind!r}")
        coef = 1.0 if kind == "g2" else 0.5
        col = 1 if kind == "literal" else 0

        def L(ts):
            return self.constants(ts)[col]

        def F(ts):
            g2 = self._batch(ts)[3].cpu().numpy()
            return coef * g2 * self.score_gap(ts)

        return lf.lemma_bound(L, F, self.T, self.w2_start(), **quad)


# -------------------------------------------------------------------------------------------------
# 1-D Gaussian-mixture data, Gaussian-score model
# -------------------------------------------------------------------------------------------------
@dataclass
class MixtureGaussianModel:
    r"""1-D mixture data and the score model of a diffused Gaussian :math:`\mathcal N(\mu_\theta, v_\theta)`.

    The model score :math:`s_\theta(y,t) = -(y-\alpha_t\mu_\theta)/(\alpha_t^2v_\theta+\sigma_t^2)` is linear in
    :math:`y`, so the model field's one-sided constants are exact. Both samplers start from
    the exact :math:`p_T` (:math:`\mathcal W_2[p_T,q_T] = 0`). Expectations under :math:`p_t` use the
    trapezoid rule on ``grid`` points spanning 12 standard deviations beyond every component of
    :math:`p_t` (exponentially accurate for these smooth, fast-decaying integrands once the grid
    resolves the responsibilities' switch between components).
    """

    data: GaussianMixture
    schedule: Schedule
    model_mean: float
    model_var: float
    T: float = 1.0
    grid: int = 4001
    width: float = 12.0

    def __post_init__(self):
        wd._mixture_1d(self.data, "data")
        self.T = _check_T(self.schedule, self.T)
        if not (self.model_var > 0 and math.isfinite(self.model_var)):
            raise ValueError(f"model_var must be a finite number > 0, got {self.model_var}")
        if not math.isfinite(self.model_mean):
            raise ValueError("model_mean must be finite")
        if self.grid < 101:
            raise ValueError(f"grid must be >= 101 points, got {self.grid}")

    @classmethod
    def moment_matched(cls, data: GaussianMixture, schedule: Schedule, *, shift: float = 0.3, scale: float = 1.2, T: float = 1.0):
        """The model whose Gaussian has the data's mean plus ``shift`` and its variance times ``scale``."""
        m = data.mean()[0].item()
        v = data.covariance()[0, 0].item()
        return cls(data, schedule, m + shift, v * scale, T)

    # -- levels ---------------------------------------------------------------------------------------
    def _levels(self, ts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ts = torch.as_tensor(np.atleast_1d(np.asarray(ts, dtype=np.float64)), dtype=self.data.dtype, device=self.data.device)
        a, s = self.schedule.alpha(ts), self.schedule.sigma(ts)
        f, g2 = lf.sde_coefficients(self.schedule, ts)
        return a, s, f, g2

    def model_var_at(self, ts) -> torch.Tensor:
        """:math:`S_\\theta(t) = \\alpha_t^2v_\\theta+\\sigma_t^2`."""
        a, s, _, _ = self._levels(ts)
        return a**2 * self.model_var + s**2

    def model_score(self, x: torch.Tensor, t: float) -> torch.Tensor:
        a, s = self.schedule.alpha(float(t)).item(), self.schedule.sigma(float(t)).item()
        return -(x - a * self.model_mean) / (a**2 * self.model_var + s**2)

    # -- constants --------------------------------------------------------------------------------------
    def L_corrected(self, ts) -> np.ndarray:
        r"""Backward one-sided constant of :math:`y\mapsto f_ty-\tfrac12g_t^2s_\theta(y,t)`: :math:`-f_t-\tfrac12g_t^2/S_\theta(t)`."""
        _, _, f, g2 = self._levels(ts)
        return (-f - 0.5 * g2 / self.model_var_at(ts)).cpu().numpy()

    def L_literal(self, ts) -> np.ndarray:
        """The article's forward constant (10) of the same field: the negative of :meth:`L_corrected`."""
        return -self.L_corrected(ts)

    def L_kwon(self, ts, coefficient: float = 1.0) -> np.ndarray:
        r""":math:`L_f + c\,g_t^2L_s` with :math:`L_f = |f_t|` (Lipschitz constant of the drift) and
        :math:`L_s = -1/S_\theta(t)` (one-sided constant of the model score); :math:`c = 1` for the SDE
        drift, :math:`\tfrac12` for the ODE field (the constants reported for Kwon et al., claim C16.8)."""
        _, _, f, g2 = self._levels(ts)
        return (f.abs() - coefficient * g2 / self.model_var_at(ts)).cpu().numpy()

    # -- expectations under p_t -------------------------------------------------------------------------
    def _grid(self, ts):
        """Per-time grids x (n_t, n) with trapezoid-times-density weights (n_t, n), and the levels."""
        a, s, _, _ = self._levels(ts)
        mu = self.data.means[:, 0]
        sd = (a[:, None] ** 2 * self.data.eigenvalues[None, :, 0] + s[:, None] ** 2).sqrt()  # (n_t, K)
        lo = (a[:, None] * mu - self.width * sd).min(1).values
        hi = (a[:, None] * mu + self.width * sd).max(1).values
        u = torch.linspace(0.0, 1.0, self.grid, dtype=self.data.dtype, device=self.data.device)
        x = lo[:, None] + (hi - lo)[:, None] * u
        # the density of p_t, component by component (independent of the library's score code)
        z = (x[..., None] - a[:, None, None] * mu) / sd[:, None, :]
        dens = (self.data.weights * torch.exp(-0.5 * z**2) / (sd[:, None, :] * math.sqrt(2 * math.pi))).sum(-1)
        h = ((hi - lo) / (self.grid - 1))[:, None]
        w = dens * h
        w[:, 0] *= 0.5
        w[:, -1] *= 0.5
        return x, w, a, s

    def _score_on(self, x, a, s) -> torch.Tensor:
        lev_a = a[:, None].expand_as(x).reshape(-1)
        lev_s = s[:, None].expand_as(x).reshape(-1)
        return self.data.score_at(x.reshape(-1, 1), lev_a, lev_s)[:, 0].reshape(x.shape)

    def score_gap(self, ts) -> np.ndarray:
        r""":math:`\epsilon_t = (\mathbb E_{p_t}|\nabla\log p_t - s_\theta|^2)^{1/2}` at the times ``ts``."""
        x, w, a, s = self._grid(ts)
        model = -(x - a[:, None] * self.model_mean) / (a[:, None] ** 2 * self.model_var + s[:, None] ** 2)
        gap = ((self._score_on(x, a, s) - model) ** 2 * w).sum(1)
        return gap.clamp_min(0).sqrt().cpu().numpy()

    def fisher(self, ts) -> np.ndarray:
        """:math:`\\mathbb E_{p_t}|\\nabla\\log p_t|^2` (trapezoid rule)."""
        x, w, a, s = self._grid(ts)
        return ((self._score_on(x, a, s) ** 2) * w).sum(1).cpu().numpy()

    def csm_gap(self, ts) -> np.ndarray:
        r""":math:`C_t = L_{CSM}-L_{SM} = \frac{\alpha_t^2}{\sigma_t^4}\mathbb E\operatorname{Var}(x_0\mid x_t)` (needs :math:`\sigma_t>0`).

        The posterior of a mixture is the mixture of the component posteriors
        (:meth:`~diffmath.GaussianMixture.posterior`), each of variance :math:`v_k\sigma^2/(\alpha^2v_k+\sigma^2)`.
        """
        x, w, a, s = self._grid(ts)
        if (s <= 0).any():
            raise ValueError("csm_gap needs sigma_t > 0 (it diverges like 1/sigma_t^2)")
        lev_a = a[:, None].expand_as(x).reshape(-1)
        lev_s = s[:, None].expand_as(x).reshape(-1)
        r, m = self.data.posterior(x.reshape(-1, 1), lev_a, lev_s)
        m = m[..., 0]
        v = self.data.eigenvalues[None, :, 0]
        P = v * lev_s[:, None] ** 2 / (lev_a[:, None] ** 2 * v + lev_s[:, None] ** 2)
        var = (r * (P + m**2)).sum(-1) - (r * m).sum(-1) ** 2
        ev = (var.reshape(x.shape) * w).sum(1)
        return (a**2 / s**4 * ev).cpu().numpy()

    # -- laws at t = 0 ----------------------------------------------------------------------------------
    def start_law(self) -> GaussianMixture:
        a, s = self.schedule.alpha(self.T).item(), self.schedule.sigma(self.T).item()
        return self.data.diffuse(a, s)

    def model_flow(self) -> tuple[float, float]:
        """The model ODE sampler's affine map :math:`y_T\\mapsto My_T+c` (slope, intercept)."""
        mean = torch.tensor([self.model_mean], dtype=self.data.dtype, device=self.data.device)
        cov = torch.tensor([[self.model_var]], dtype=self.data.dtype, device=self.data.device)
        fm = _gaussian_flow_map(self.schedule, mean, cov, self.T, 0.0)
        return fm.M[0, 0].item(), fm.c[0].item()

    def model_output(self) -> GaussianMixture:
        """:math:`q_0` of the ODE sampler: the image of :math:`p_T` under the affine model flow (a mixture)."""
        M, c = self.model_flow()
        pT = self.start_law()
        return wd.gaussian_mixture_1d(pT.weights, M * pT.means[:, 0] + c, M**2 * pT.eigenvalues[:, 0], device=pT.device)

    def sde_output(self, **tol) -> GaussianMixture:
        r""":math:`q_0` of the model's reverse SDE :math:`dy = [f_ty-g_t^2s_\theta(y,t)]dt+g_t\,d\bar w` from :math:`p_T`.

        Its drift is affine, :math:`c_ty+d_t`, so :math:`y_0 = a\,y_T + b + \mathcal N(0,V)` with
        :math:`\dot a = c_ta`, :math:`\dot b = c_tb+d_t`, :math:`\dot V = 2c_tV-g_t^2` integrated from
        :math:`(1,0,0)` at :math:`t = T` down to 0.
        """
        sched, mm, mv = self.schedule, self.model_mean, self.model_var

        def rhs(t, y):
            f, g2 = (v.item() for v in lf.sde_coefficients(sched, t))
            al, si = sched.alpha(t).item(), sched.sigma(t).item()
            S = al**2 * mv + si**2
            c, d = f + g2 / S, -g2 * al * mm / S
            return torch.stack([c * y[0], c * y[1] + d, 2 * c * y[2] - g2])

        y0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        a, b, V = flows.integrate(rhs, y0, self.T, 0.0, **(tol or {"rtol": 1e-11, "atol": 1e-12})).tolist()
        pT = self.start_law()
        return wd.gaussian_mixture_1d(pT.weights, a * pT.means[:, 0] + b, a**2 * pT.eigenvalues[:, 0] + V, device=pT.device)

    def w2(self) -> float:
        """True :math:`\\mathcal W_2[p_0,q_0]` for the ODE sampler (1-D quadrature)."""
        return wd.w2_1d_mixtures(self.data, self.model_output()).item()

    def w2_sde(self) -> float:
        """True :math:`\\mathcal W_2[p_0,q_0^{SDE}]` for the model's reverse-SDE sampler."""
        return wd.w2_1d_mixtures(self.data, self.sde_output()).item()

    # -- bounds -----------------------------------------------------------------------------------------
    def F(self, ts, coefficient: float = 0.5) -> np.ndarray:
        """:math:`c\\,g_t^2\\,\\epsilon_t` (``coefficient`` c = 1/2 for the ODE sampler)."""
        _, _, _, g2 = self._levels(ts)
        return coefficient * g2.cpu().numpy() * self.score_gap(ts)

    def bound(self, kind: str = "corrected", **quad) -> float:
        """One of :data:`BOUND_KINDS` (the initial term vanishes: both samplers start from :math:`p_T`)."""
        if kind not in BOUND_KINDS:
            raise ValueError(f"kind must be one of {BOUND_KINDS}, got {kind!r}")
        L = self.L_literal if kind == "literal" else self.L_corrected
        coef = 1.0 if kind == "g2" else 0.5
        return lf.lemma_bound(L, lambda ts: self.F(ts, coef), self.T, 0.0, **quad)

    def bound_csm(self, **quad) -> float:
        """The corrected bound with :math:`\\sqrt{L_{SM}+C_t}` (the CSM loss) in place of :math:`\\epsilon_t`.

        The integrand then grows like :math:`1/\\sigma_t` at :math:`t\\to0`; the substitution
        :math:`t = u^2` makes it smooth for the Gauss–Legendre rule.
        """
        T = self.T

        def L(us):
            us = np.asarray(us)
            return 2 * us * self.L_corrected(us**2)

        def F(us):
            us = np.asarray(us)
            ts = np.clip(us**2, 1e-300, None)
            _, _, _, g2 = self._levels(ts)
            eps2 = self.score_gap(ts) ** 2 + self.csm_gap(ts)
            return 2 * us * 0.5 * g2.cpu().numpy() * np.sqrt(eps2)

        return lf.lemma_bound(L, F, math.sqrt(T), 0.0, **quad)

    def bound_kwon_sde(self, **quad) -> float:
        r"""The SDE form :math:`\int_0^Tg_t^2e^{\int_0^t(L_f+g^2L_s)}\epsilon_t\,dt` (as reported for Kwon et al.)."""
        return lf.lemma_bound(lambda ts: self.L_kwon(ts, 1.0), lambda ts: self.F(ts, 1.0), self.T, 0.0, **quad)

    # -- sample paths -----------------------------------------------------------------------------------
    def paths(self, n: int, *, seed: int = 0, device: torch.device | None = None, rtol: float = 1e-9, atol: float = 1e-9):
        """``n`` exact samples :math:`z\\sim p_T` pushed to :math:`t=0` by the true PF-ODE (reference
        Dormand–Prince solver, exact mixture score) and by the model's affine flow.

        Returns ``(z, x0, y0)``, each of shape (n,).
        """
        device = self.data.device if device is None else torch.device(device)
        data = self.data.to(device)
        pT = data.diffuse(self.schedule.alpha(self.T).item(), self.schedule.sigma(self.T).item())
        z = pT.sample(n, generator=torch.Generator(device=device).manual_seed(seed))
        sched = self.schedule

        def velocity(t, x):
            f, g2 = (v.item() for v in lf.sde_coefficients(sched, t))
            al, si = sched.alpha(t).item(), sched.sigma(t).item()
            return f * x - 0.5 * g2 * data.score_at(x, al, si)

        x0 = flows.integrate(velocity, z, self.T, 0.0, rtol=rtol, atol=atol)
        M, c = self.model_flow()
        return z[:, 0], x0[:, 0], M * z[:, 0] + c


def standard_example(device=None, *, shift: float = 0.3, scale: float = 1.2, beta: float = 6.0) -> MixtureGaussianModel:
    r"""The chapter's running example: data :math:`0.3\,\mathcal N(-2,0.3)+0.7\,\mathcal N(1.5,0.5)`, VP with
    constant :math:`\beta` on :math:`[0,1]` (``VPLinear(beta, beta)``: the same as :math:`\beta = 1` on
    :math:`[0,6]` after rescaling time, which leaves :math:`\int g^2dt` and :math:`\int L\,dt` unchanged),
    model = the data's moment-matched Gaussian, mean shifted by ``shift``, variance times ``scale``."""
    data = wd.gaussian_mixture_1d([0.3, 0.7], [-2.0, 1.5], [0.3, 0.5], device=device)
    return MixtureGaussianModel.moment_matched(data, VPLinear(beta, beta), shift=shift, scale=scale, T=1.0)


# -------------------------------------------------------------------------------------------------
# the SDE obstruction (26)
# -------------------------------------------------------------------------------------------------
def ot_obstruction(S1, S2) -> torch.Tensor:
    r"""The term (26) under the optimal coupling of :math:`\mathcal N(m_1,S_1)` and :math:`\mathcal N(m_2,S_2)`.

    :math:`\mathbb E_{\gamma^*}[(x-y)\cdot(\nabla\log p(x)-\nabla\log q(y))] = \operatorname{tr}(A+A^{-1}-2I)
    = \sum_i(\sqrt{a_i}-1/\sqrt{a_i})^2\ge0`, with :math:`A` the optimal map's slope
    (:func:`diffmath.wasserstein.gaussian_ot_map`) and :math:`a_i` its eigenvalues. It does not depend on the means.
    """
    A = wd.gaussian_ot_map(S1, S2)
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    return torch.trace(A + torch.linalg.inv(A) - 2 * eye)


def obstruction_samples(m1, S1, m2, S2, n: int, *, coupling: str = "ot", rotation=None, generator=None) -> torch.Tensor:
    r"""Samples of :math:`(x-y)\cdot(\nabla\log p(x)-\nabla\log q(y))` for Gaussians :math:`p, q` under a coupling.

    ``coupling="ot"``: :math:`y = m_2 + A(x-m_1)`. ``coupling="rotation"``: :math:`y = m_2 + R(x-m_1)` with
    the orthogonal matrix ``rotation`` (a synchronous coupling of two flows with the same marginals
    when :math:`S_2 = RS_1R^\top`). Returns (n,) values; their mean estimates the term (26).
    """
    dtype, device = wd.common_dtype_device(m1, S1, m2, S2)
    m1, S1 = wd._mean_cov(m1, S1, "first", dtype=dtype, device=device)
    m2, S2 = wd._mean_cov(m2, S2, "second", dtype=dtype, device=device)
    d = m1.shape[0]
    if coupling == "ot":
        A = wd.gaussian_ot_map(S1, S2)
    elif coupling == "rotation":
        if rotation is None:
            raise ValueError("coupling='rotation' needs the rotation matrix")
        A = as_tensor(rotation, "rotation", dtype=m1.dtype, device=m1.device)
        if tuple(A.shape) != (d, d) or not torch.allclose(A @ A.T, torch.eye(d, dtype=A.dtype, device=A.device), atol=1e-12):
            raise ValueError("rotation must be an orthogonal (d, d) matrix")
    else:
        raise ValueError(f"coupling must be 'ot' or 'rotation', got {coupling!r}")
    L = torch.linalg.cholesky(S1)
    u = torch.randn(n, d, dtype=m1.dtype, device=m1.device, generator=generator) @ L.T
    x, y = m1 + u, m2 + u @ A.T
    sp = -torch.linalg.solve(S1, u.T).T
    sq = -torch.linalg.solve(S2, (y - m2).T).T
    return ((x - y) * (sp - sq)).sum(-1)


def rotation(d: int, theta: float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """The rotation by ``theta`` in the plane of the first two coordinates of :math:`\\mathbb R^d` (d >= 2)."""
    if d < 2:
        raise ValueError("a rotation needs d >= 2")
    R = torch.eye(d, dtype=dtype, device=device)
    c, s = math.cos(theta), math.sin(theta)
    R[0, 0], R[0, 1], R[1, 0], R[1, 1] = c, -s, s, c
    return R


__all__ = [
    "BOUND_KINDS",
    "LinearGaussianCase",
    "MixtureGaussianModel",
    "obstruction_samples",
    "ot_obstruction",
    "rotation",
    "standard_example",
]
