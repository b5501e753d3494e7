r"""Exact ReFlow (rectified-flow / flow-matching) velocities for Gaussian-mixture data.

Part 17 of Su's series (kexue.fm 9497), after Liu, Gong & Liu (2023), builds an ODE between a data
law :math:`p_0` and a noise law :math:`p_1` from any interpolation :math:`x_t = \varphi_t(x_0,x_1)`
of a pair :math:`(x_0,x_1)`: regress the path velocity :math:`\partial_t\varphi_t` on
:math:`x_t` (article (5)); the minimiser is the conditional mean (article (16)–(17))

.. math::

    v^*(x,t) = \mathbb E\big[\partial_t\varphi_t(x_0,x_1)\,\big|\,x_t = x\big].

**Convention** (article 17's, which is the library's): data at :math:`t = 0`, noise at
:math:`t = 1`. This module treats the *linear* interpolants

.. math::

    x_t = a(t)\,x_0 + b(t)\,x_1,\qquad a(0) = b(1) = 1,\ a(1) = b(0) = 0,

(:class:`Interpolant`: the straight line :math:`a = 1-t`, :math:`b = t` of the article's (7), the
trigonometric :math:`a = \cos\frac{\pi t}2`, :math:`b = \sin\frac{\pi t}2`, or any schedule of
:mod:`diffmath.schedules`), with :math:`x_0\sim\sum_k\pi_k\mathcal N(\mu_k,\Sigma_k)` and
:math:`x_1\sim\mathcal N(0,I)`. The pair need **not** be independent (:class:`Coupling`): in
component :math:`k` the two are jointly Gaussian with cross-covariance
:math:`C_k = \mathrm{Cov}(x_0,x_1\mid k)` (``cross``; zero for the independent coupling). The noise
keeps the law :math:`\mathcal N(0,I)` whatever the :math:`C_k`, so every such pair is a coupling of
:math:`p_0` and :math:`p_1`. Within a component, :math:`x_t` and the target
:math:`u = \dot a x_0 + \dot b x_1` are jointly Gaussian:

.. math::

    x_t\mid k\sim\mathcal N(a\mu_k, S_k),\quad S_k = a^2\Sigma_k + b^2I + ab\,(C_k + C_k^\top),\qquad
    G_k = \mathrm{Cov}(u, x_t\mid k) = a\dot a\,\Sigma_k + b\dot b\,I + \dot a b\,C_k + a\dot b\,C_k^\top,

so with responsibilities :math:`r_k(x)\propto\pi_k\mathcal N(x; a\mu_k, S_k)`

.. math::

    v^*(x,t) = \sum_k r_k(x)\big(\dot a\mu_k + G_kS_k^{-1}(x - a\mu_k)\big),\qquad
    \mathrm{tr\,Cov}(u\mid x_t = x) = \sum_k r_k\big(\mathrm{tr}(U_k - G_kS_k^{-1}G_k^\top) + \|m_k - v^*\|^2\big),

with :math:`U_k = \dot a^2\Sigma_k + \dot b^2 I + \dot a\dot b(C_k + C_k^\top)` and :math:`m_k` the
component means in the first sum. The second quantity is the pointwise irreducible ("crossing")
part of the loss (5); its mean over :math:`x_t` is :math:`\min_v` of (5) at time :math:`t`.

For the independent coupling :math:`v^*` is the probability-flow velocity of
:mod:`diffmath.flows` with :math:`\alpha = a`, :math:`\sigma = b` (claim C0.6); the tests compare the
two. Everything here is differentiable in :math:`x` and :math:`t` (torch autograd), which is how the
continuity equation is checked pointwise (:meth:`Coupling.continuity_residual`).

One rectification between two Gaussians (:func:`rectify_gaussians`): with :math:`x_0\sim\mathcal
N(m_0,S_0)`, :math:`x_1\sim\mathcal N(m_1,S_1)` jointly Gaussian with cross-covariance
:math:`C = \mathrm{Cov}(x_0,x_1)` (:math:`C = 0`: independent) and the straight line, the field is affine,
:math:`v^*(x,t) = m_1 - m_0 + M_t(x - m_t)` with
:math:`M_t = \big(tS_1-(1-t)S_0+(1-t)C^\top-tC\big)\big((1-t)^2S_0+t^2S_1+t(1-t)(C+C^\top)\big)^{-1}`,
:math:`m_t = (1-t)m_0+tm_1`; its flow from 0 to 1 is the 1-rectified map, integrated with
:func:`diffmath.linear_flows.linear_flow_tv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

from diffmath import flows
from diffmath import linear_flows as lf
from diffmath import wasserstein as wd
from diffmath._validation import as_tensor, points
from diffmath.mixture import GaussianMixture
from diffmath.schedules import Schedule

Coefficient = Callable[[torch.Tensor], torch.Tensor]


# --- interpolants ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interpolant:
    r"""A linear interpolant :math:`x_t = a(t)x_0 + b(t)x_1` on :math:`t\in[0,1]` with its derivatives.

    ``a``, ``b``, ``da``, ``db`` map a float tensor of times to a tensor of the same shape (torch
    operations only, so that they can be differentiated). The end conditions
    :math:`a(0) = b(1) = 1`, :math:`a(1) = b(0) = 0` are checked on construction.
    """

    name: str
    a: Coefficient
    b: Coefficient
    da: Coefficient
    db: Coefficient

    def __post_init__(self):
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        a, b = self.a(ends), self.b(ends)
        want_a, want_b = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
        if not (torch.allclose(a, want_a, atol=1e-12) and torch.allclose(b, want_b, atol=1e-12)):
            raise ValueError(
                f"interpolant {self.name!r} must have a(0) = b(1) = 1 and a(1) = b(0) = 0; got a = {a.tolist()}, b = {b.tolist()}"
            )

    @staticmethod
    def linear() -> "Interpolant":
        """The straight line of the article's (7): :math:`a = 1 - t`, :math:`b = t`."""
        return Interpolant("linear", lambda t: 1 - t, lambda t: t.clone(), lambda t: -torch.ones_like(t), lambda t: torch.ones_like(t))

    @staticmethod
    def trigonometric() -> "Interpolant":
        r"""The quarter circle :math:`a = \cos\frac{\pi t}2`, :math:`b = \sin\frac{\pi t}2` (variance preserving)."""
        h = math.pi / 2
        return Interpolant(
            "trigonometric",
            lambda t: torch.cos(h * t),
            lambda t: torch.sin(h * t),
            lambda t: -h * torch.sin(h * t),
            lambda t: h * torch.cos(h * t),
        )

    @staticmethod
    def from_schedule(schedule: Schedule, name: Optional[str] = None) -> "Interpolant":
        """A library schedule on ``[0, 1]`` read as an interpolant: :math:`a = \\alpha`, :math:`b = \\sigma`."""
        if schedule.t_min != 0.0 or schedule.t_max != 1.0:
            raise ValueError(f"schedule must live on [0, 1], got [{schedule.t_min}, {schedule.t_max}]")
        return Interpolant(name or type(schedule).__name__, schedule.alpha, schedule.sigma, schedule.dalpha, schedule.dsigma)

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:math:`(a, b, \\dot a, \\dot b)` at ``t`` (a number or tensor in [0, 1]); gradients flow through ``t``."""
        t = times(t)
        return self.a(t), self.b(t), self.da(t), self.db(t)


def times(t, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """``t`` as a float tensor (keeping its autograd graph), checked to lie in [0, 1]."""
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            t = t.to(dtype)
        if not torch.isfinite(t).all():
            raise ValueError("t contains NaN or Inf")
    else:
        t = as_tensor(t, "t", dtype=dtype, device=device)
    if t.numel() and (t.min().item() < 0 or t.max().item() > 1):
        raise ValueError(f"t must lie in [0, 1], got values in [{t.min().item():.6g}, {t.max().item():.6g}]")
    return t


# --- couplings of mixture data with standard Gaussian noise ---------------------------------------
class Coupling:
    r"""A coupling of mixture data :math:`x_0` with noise :math:`x_1\sim\mathcal N(0,I)`.

    Given the component, :math:`x_1 = C_k^\top\Sigma_k^{-1}(x_0-\mu_k) + (I-C_k^\top\Sigma_k^{-1}C_k)^{1/2}z`
    with :math:`z\sim\mathcal N(0,I)`, so :math:`x_1\sim\mathcal N(0,I)` in every component and overall.

    Parameters
    ----------
    data : :class:`~diffmath.GaussianMixture` with K components in dimension d (float64)
    cross : (K, d, d) cross-covariances :math:`C_k = \mathrm{Cov}(x_0, x_1\mid k)`, or ``None``
        (independent). The joint covariance :math:`\left[\begin{smallmatrix}\Sigma_k&C_k\\C_k^\top&I
        \end{smallmatrix}\right]` must be positive semidefinite, i.e. :math:`I - C_k^\top\Sigma_k^{-1}C_k
        \succeq 0`; otherwise ``ValueError`` names ``cross``.
    """

    def __init__(self, data: GaussianMixture, cross=None):
        if not isinstance(data, GaussianMixture):
            raise ValueError(f"data must be a diffmath.GaussianMixture, got {type(data).__name__}")
        self.data = data
        K, d = data.n_components, data.dim
        self.covs = data.covariances()
        if cross is None:
            self.cross = None
            self._resid = None
        else:
            C = as_tensor(cross, "cross", dtype=data.dtype, device=data.device)
            if tuple(C.shape) != (K, d, d):
                raise ValueError(f"cross must have shape (K, d, d) = ({K}, {d}, {d}), got {tuple(C.shape)}")
            prec = torch.linalg.inv(self.covs)
            resid = torch.eye(d, dtype=C.dtype, device=C.device) - C.mT @ prec @ C
            resid = 0.5 * (resid + resid.mT)
            low = torch.linalg.eigvalsh(resid)[:, 0]
            tol = 1e-10 * (1 + (C.mT @ prec @ C).abs().amax((-2, -1)))
            bad = (low < -tol).nonzero()
            if len(bad):
                k = bad[0].item()
                raise ValueError(
                    f"cross[{k}] is not a valid cross-covariance: I - C^T Sigma^-1 C has eigenvalue {low[k].item():.6g} < 0"
                )
            self.cross = C
            self._resid = resid

    @classmethod
    def independent(cls, data: GaussianMixture) -> "Coupling":
        """The article's coupling: :math:`x_0` and :math:`x_1` independent."""
        return cls(data)

    @classmethod
    def root(cls, data: GaussianMixture, rho: float, rotation=None) -> "Coupling":
        r"""Cross-covariances :math:`C_k = \rho\,\Sigma_k^{1/2}R` with :math:`|\rho|\le1` and orthogonal :math:`R`
        (default :math:`I`). Then :math:`I - C_k^\top\Sigma_k^{-1}C_k = (1-\rho^2)I`; at :math:`\rho = 1`,
        :math:`x_1 = R^\top\Sigma_k^{-1/2}(x_0-\mu_k)` is a function of :math:`x_0` (a deterministic coupling
        within each component; with :math:`R = I` and one component it is the optimal transport coupling)."""
        rho = float(rho)
        if not (-1.0 <= rho <= 1.0):
            raise ValueError(f"rho must lie in [-1, 1], got {rho}")
        d = data.dim
        R = torch.eye(d, dtype=data.dtype, device=data.device) if rotation is None else as_tensor(rotation, "rotation", dtype=data.dtype, device=data.device)
        if tuple(R.shape) != (d, d) or not torch.allclose(R @ R.T, torch.eye(d, dtype=R.dtype, device=R.device), atol=1e-10):
            raise ValueError(f"rotation must be an orthogonal ({d}, {d}) matrix")
        roots = torch.stack([wd.sqrtm_psd(S) for S in data.covariances()])
        return cls(data, rho * roots @ R)

    def __repr__(self) -> str:
        kind = "independent" if self.cross is None else "correlated"
        return f"Coupling({self.data!r}, {kind})"

    @property
    def dim(self) -> int:
        return self.data.dim

    def _cross(self) -> torch.Tensor:
        if self.cross is None:
            return torch.zeros_like(self.covs)
        return self.cross

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws of the pair :math:`(x_0, x_1)`, each of shape (n, d)."""
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        gm, n = self.data, int(n)
        dt, dev = gm.dtype, gm.device
        comp = torch.multinomial(gm.weights, n, replacement=True, generator=generator)
        z0 = torch.randn(n, gm.dim, dtype=dt, device=dev, generator=generator)
        z1 = torch.randn(n, gm.dim, dtype=dt, device=dev, generator=generator)
        roots = torch.stack([wd.sqrtm_psd(S) for S in self.covs])
        x0c = torch.einsum("nij,nj->ni", roots[comp], z0)
        x0 = gm.means[comp] + x0c
        if self.cross is None:
            return x0, z1
        gain = self.cross.mT @ torch.linalg.inv(self.covs)  # C^T Sigma^-1
        resid_root = torch.stack([wd.sqrtm_psd(R) for R in self._resid])
        x1 = torch.einsum("nij,nj->ni", gain[comp], x0c) + torch.einsum("nij,nj->ni", resid_root[comp], z1)
        return x0, x1

    # -- the law of x_t ---------------------------------------------------------------------------
    def _moments(self, interp: Interpolant, t):
        """Component moments at time(s) t: S, G, U with a leading time axis when t has one."""
        a, b, da, db = interp.coefficients(times(t, dtype=self.data.dtype, device=self.data.device))
        shape = a.shape + (1, 1, 1)
        a, b, da, db = (c.reshape(shape) for c in (a, b, da, db))
        Sig, C = self.covs, self._cross()
        eye = torch.eye(self.dim, dtype=Sig.dtype, device=Sig.device)
        sym = C + C.mT
        S = a**2 * Sig + b**2 * eye + a * b * sym
        G = a * da * Sig + b * db * eye + da * b * C + a * db * C.mT
        U = da**2 * Sig + db**2 * eye + da * db * sym
        return (a, b, da, db), S, G, U

    def marginal(self, interp: Interpolant, t: float) -> GaussianMixture:
        r"""The exact law :math:`\rho_t` of :math:`x_t`: means :math:`a\mu_k`, covariances :math:`S_k`.

        For the independent coupling this is ``data.diffuse(a, b)`` (claim C0.1).
        """
        tt = times(t, dtype=self.data.dtype, device=self.data.device)
        if tt.ndim != 0:
            raise ValueError("marginal takes one time t")
        (a, b, _, _), S, _, _ = self._moments(interp, tt)
        a0, b0 = a.reshape(()).item(), b.reshape(()).item()
        if self.cross is None and not (a0 == 0 and b0 == 0):
            return self.data.diffuse(a0, b0)
        return GaussianMixture(self.data.weights, a0 * self.data.means, 0.5 * (S + S.mT))

    def _terms(self, interp: Interpolant, x: torch.Tensor, t):
        """log rho_t(x) (n,), responsibilities (n, K), component conditional means (n, K, d), and moments."""
        (a, _, da, _), S, G, U = self._moments(interp, t)
        try:
            L = torch.linalg.cholesky(S)
        except RuntimeError:
            raise ValueError(
                "the law of x_t is degenerate at this t (S_k = a^2 Sigma_k + b^2 I + ab (C_k + C_k^T) is singular): "
                "the coupling's cross covariances make paths of a component meet at one point"
            ) from None
        lead = a.shape[:-3]  # () or (n,)
        mu = self.data.means
        if len(lead):  # per-point times: (n, K, ...)
            a2, da2 = a[..., 0], da[..., 0]  # (n, 1, 1)
            y = x[:, None, :] - a2 * mu[None]
            means_u = da2 * mu[None]
        else:
            y = x[:, None, :] - a.reshape(()) * mu[None]
            means_u = (da.reshape(()) * mu)[None]
        P = torch.cholesky_inverse(L)  # S_k^{-1}: K (or n K) small matrices, inverted once per call
        if len(lead):
            w = (P @ y[..., None])[..., 0]
        else:
            w = torch.einsum("kij,nkj->nki", P, y)
        maha = (w * y).sum(-1)
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        d = self.dim
        logc = torch.log(self.data.weights)[None] - 0.5 * (d * math.log(2 * math.pi) + logdet + maha)
        logp = torch.logsumexp(logc, 1)
        r = torch.exp(logc - logp[:, None])
        m = means_u + ((G @ w[..., None])[..., 0] if len(lead) else torch.einsum("kij,nkj->nki", G, w))
        return logp, r, m, (S, G, U)

    def _x(self, x) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.requires_grad:
            if x.shape[-1] != self.dim or x.ndim != 2:
                raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
            return x
        x = points(x, "x", d=self.dim, dtype=self.data.dtype, device=self.data.device)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x

    def _t(self, t, n: int):
        tt = times(t, dtype=self.data.dtype, device=self.data.device)
        if tt.ndim not in (0, 1) or (tt.ndim == 1 and tt.shape[0] != n):
            raise ValueError(f"t must be a number or have shape (n,) = ({n},), got shape {tuple(tt.shape)}")
        return tt

    def log_density(self, interp: Interpolant, x, t) -> torch.Tensor:
        """:math:`\\log\\rho_t(x)` for x (n, d), t a number or (n,) (differentiable in both)."""
        x = self._x(x)
        return self._terms(interp, x, self._t(t, x.shape[0]))[0]

    def velocity(self, interp: Interpolant, x, t) -> torch.Tensor:
        r"""The exact ReFlow velocity :math:`v^*(x,t) = \mathbb E[\dot a x_0 + \dot b x_1\mid x_t = x]`, shape (n, d)."""
        x = self._x(x)
        _, r, m, _ = self._terms(interp, x, self._t(t, x.shape[0]))
        return torch.einsum("nk,nkd->nd", r, m)

    def crossing(self, interp: Interpolant, x, t) -> torch.Tensor:
        r""":math:`\mathrm{tr\,Cov}(\dot a x_0 + \dot b x_1\mid x_t = x)`, shape (n,): the pointwise irreducible loss."""
        x = self._x(x)
        _, r, m, (S, G, U) = self._terms(interp, x, self._t(t, x.shape[0]))
        within = torch.diagonal(U - G @ torch.linalg.solve(S, G.mT), dim1=-2, dim2=-1).sum(-1)  # (K,) or (n, K)
        vbar = torch.einsum("nk,nkd->nd", r, m)
        spread = ((m - vbar[:, None, :]) ** 2).sum(-1)
        return (r * (within + spread)).sum(-1)

    def component_crossing(self, interp: Interpolant, t: float) -> torch.Tensor:
        r""":math:`\mathrm{tr}(U_k - G_kS_k^{-1}G_k^\top)`, shape (K,): the irreducible loss within each component.

        For one component (Gaussian data) this is the minimum of the loss (5) at time ``t`` in closed form.
        """
        tt = times(t, dtype=self.data.dtype, device=self.data.device)
        if tt.ndim != 0:
            raise ValueError("component_crossing takes one time t")
        _, S, G, U = self._moments(interp, tt)
        return torch.diagonal(U - G @ torch.linalg.solve(S, G.mT), dim1=-2, dim2=-1).sum(-1)

    def jacobian(self, interp: Interpolant, x, t) -> torch.Tensor:
        r"""The Jacobian :math:`\partial v^*_i/\partial x_j` at points x (n, d), time t (a number or (n,)), by autograd;
        shape (n, d, d). Its symmetric part bounds how fast nearby trajectories separate (a one-sided
        Lipschitz constant), which is what an ODE solver has to resolve."""
        x = self._x(x).detach().clone().requires_grad_(True)
        v = self.velocity(interp, x, self._t(t, x.shape[0]).detach())
        rows = [torch.autograd.grad(v[:, i].sum(), x, retain_graph=i + 1 < self.dim)[0] for i in range(self.dim)]
        return torch.stack(rows, 1)

    # -- the continuity equation ------------------------------------------------------------------
    def continuity_residual(self, interp: Interpolant, x, t) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The continuity equation :math:`\partial_t\rho_t + \nabla\cdot(\rho_tv^*) = 0`, divided by :math:`\rho_t`,
        at points x (n, d) and times t (n,), by autograd:

        .. math::

            \mathrm{res} = \partial_t\log\rho_t + \nabla\log\rho_t\cdot v^* + \nabla\cdot v^*,

        returned with the scale :math:`|\partial_t\log\rho_t| + |\nabla\log\rho_t\cdot v^*| + |\nabla\cdot v^*|`
        against which it is small (about 1e-14 relative in float64 when the equation holds).
        """
        x = self._x(x).detach().clone().requires_grad_(True)
        n = x.shape[0]
        t = self._t(t, n).detach().clone()
        if t.ndim == 0:
            t = t.expand(n).clone()
        t.requires_grad_(True)
        logp, r, m, _ = self._terms(interp, x, t)
        v = torch.einsum("nk,nkd->nd", r, m)
        dlogp_dt, grad_logp = torch.autograd.grad(logp.sum(), (t, x), create_graph=False, retain_graph=True)
        div = torch.zeros(n, dtype=x.dtype, device=x.device)
        for i in range(self.dim):
            div = div + torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i]
        transport = (grad_logp * v).sum(-1)
        res = dlogp_dt + transport + div
        scale = dlogp_dt.abs() + transport.abs() + div.abs()
        return res.detach(), scale.detach()

    # -- the ODE ----------------------------------------------------------------------------------
    def transport(self, interp: Interpolant, x, t_from: float, t_to: float, *, rtol: float = 1e-10, atol: float = 1e-10) -> torch.Tensor:
        r"""Move points ``x`` (n, d) at time ``t_from`` to ``t_to`` along :math:`dx/dt = v^*(x,t)` (either
        direction), with the library's adaptive Dormand–Prince solver (:func:`diffmath.flows.integrate`)."""
        x = self._x(x)
        for name, v in (("t_from", t_from), ("t_to", t_to)):
            if not (0.0 <= float(v) <= 1.0):
                raise ValueError(f"{name} must lie in [0, 1], got {v}")
        return flows.integrate(lambda t, y: self.velocity(interp, y, t), x, float(t_from), float(t_to), rtol=rtol, atol=atol)

    # -- the regression loss ------------------------------------------------------------------------
    def regression_terms(self, interp: Interpolant, model: Callable, t: float, n: int, generator=None) -> dict:
        r"""Per-sample terms of the loss (5) at time ``t`` on ``n`` paired draws (float64 tensors of shape (n,)):

        ``loss`` :math:`\|v_\theta(x_t)-u\|^2`, ``loss_star`` :math:`\|v^*(x_t)-u\|^2`,
        ``excess`` :math:`\|v_\theta(x_t)-v^*(x_t)\|^2`, ``crossing`` :math:`\mathrm{tr\,Cov}(u\mid x_t)`, with
        :math:`u = \dot a x_0 + \dot b x_1`. ``model(x, t)`` returns (n, d). Pythagoras (claim C17.1):
        :math:`\mathbb E\,\texttt{loss} = \mathbb E\,\texttt{excess} + \mathbb E\,\texttt{loss\_star}`.
        """
        x0, x1 = self.sample(n, generator)
        a, b, da, db = (c.item() for c in interp.coefficients(float(t)))
        xt = a * x0 + b * x1
        u = da * x0 + db * x1
        vstar = self.velocity(interp, xt, t)
        vm = model(xt, t)
        if tuple(vm.shape) != tuple(xt.shape):
            raise ValueError(f"model must return shape {tuple(xt.shape)}, got {tuple(vm.shape)}")
        return {
            "loss": ((vm - u) ** 2).sum(-1),
            "loss_star": ((vstar - u) ** 2).sum(-1),
            "excess": ((vm - vstar) ** 2).sum(-1),
            "crossing": self.crossing(interp, xt, t),
        }


# --- one rectification between Gaussians ------------------------------------------------------------
class Rectification(NamedTuple):
    """One rectification of :math:`\\mathcal N(m_0,S_0)\\to\\mathcal N(m_1,S_1)` and its transport costs."""

    map: lf.AffineMap  #: the 1-rectified map x0 -> x1 (flow of v* from t = 0 to 1)
    cost: float  #: E||T(x0) - x0||^2, the quadratic cost of the rectified coupling
    w2_squared: float  #: the optimal cost (Bures formula)
    cost_independent: float  #: E||x1 - x0||^2 for the independent coupling it started from
    pushforward_error: float  #: ``max|M S0 M^T - S1| / max|S1|`` (marginal preservation)
    asymmetry: float  #: ``max|M - M^T| / max|M|`` (an optimal linear map is symmetric)
    cost_start: float  #: E||x1 - x0||^2 for the coupling it started from (= cost_independent when cross is None)


def _gaussian_cross(cross, S0: torch.Tensor, S1: torch.Tensor) -> Optional[torch.Tensor]:
    r"""``cross`` validated as :math:`C = \mathrm{Cov}(x_0,x_1)` of a joint Gaussian with marginal covariances
    :math:`S_0, S_1`: shape (d, d) and :math:`S_1 - C^\top S_0^{-1}C\succeq 0` (the joint covariance is PSD)."""
    if cross is None:
        return None
    d = S0.shape[0]
    C = as_tensor(cross, "cross", dtype=S0.dtype, device=S0.device)
    if tuple(C.shape) != (d, d):
        raise ValueError(f"cross must have shape ({d}, {d}), got {tuple(C.shape)}")
    schur = S1 - C.T @ torch.linalg.solve(S0, C)
    low = torch.linalg.eigvalsh(0.5 * (schur + schur.T))[0].item()
    if low < -1e-10 * (1 + S1.abs().max().item()):
        raise ValueError(f"cross is not a valid cross-covariance: S1 - C^T S0^-1 C has eigenvalue {low:.6g} < 0")
    return C


def rectified_field(m0, S0, m1, S1, cross=None) -> tuple[Callable[[float], torch.Tensor], Callable[[float], torch.Tensor]]:
    r"""The straight-line ReFlow field between jointly Gaussian ends as :math:`v^*(x,t) = B_tx + c_t`.

    With :math:`C = \mathrm{Cov}(x_0,x_1)` (``cross``, shape (d, d); ``None`` for the independent coupling),
    :math:`x_t = (1-t)x_0 + tx_1` and the target :math:`u = x_1 - x_0` are jointly Gaussian, so the conditional
    mean :math:`\mathbb E[u\mid x_t = x]` (the minimiser of the regression objective of Liu, Gong & Liu 2023; article 17, (16)–(17)) is affine:

    .. math::

        V_t = \mathrm{Cov}(x_t) = (1-t)^2S_0 + t^2S_1 + t(1-t)(C + C^\top),\qquad
        G_t = \mathrm{Cov}(u, x_t) = tS_1 - (1-t)S_0 + (1-t)C^\top - tC,

    :math:`B_t = M_t = G_tV_t^{-1}`, :math:`c_t = m_1 - m_0 - M_tm_t`, :math:`m_t = (1-t)m_0 + tm_1` (data
    :math:`\mathcal N(m_0,S_0)` at :math:`t = 0`). These are :class:`Coupling`'s :math:`S_k`, :math:`G_k` with
    :math:`a = 1-t`, :math:`b = t` and general :math:`S_1`. ``cross`` must make the joint covariance PSD
    (:math:`S_1 - C^\top S_0^{-1}C\succeq 0`), else ``ValueError``; if :math:`V_t` is singular at an
    evaluated time (paths meet: a deterministic coupling that crosses), the field raises ``ValueError``.
    Returns the two functions of :math:`t`.
    """
    m0, S0 = wd._mean_cov(m0, S0, "source (m0, S0)")
    m1, S1 = wd._mean_cov(m1, S1, "target (m1, S1)", dtype=m0.dtype, device=m0.device)
    wd.check_spd(S0, "S0")
    wd.check_spd(S1, "S1")
    if m0.shape != m1.shape:
        raise ValueError(f"the two Gaussians live in different dimensions: {m0.shape[0]} and {m1.shape[0]}")
    C = _gaussian_cross(cross, S0, S1)
    sym = None if C is None else C + C.T

    def B(t: float) -> torch.Tensor:
        V = (1 - t) ** 2 * S0 + t**2 * S1
        G = t * S1 - (1 - t) * S0
        if C is not None:
            V = V + t * (1 - t) * sym
            G = G + (1 - t) * C.T - t * C
        try:
            return torch.linalg.solve(V, G.T).T  # G V^{-1} (V symmetric)
        except RuntimeError:
            raise ValueError(f"the law of x_t is degenerate at t = {t:.6g} (V_t singular): the coupling's paths meet") from None

    def c(t: float) -> torch.Tensor:
        return m1 - m0 - B(t) @ ((1 - t) * m0 + t * m1)

    return B, c


def rectify_gaussians(m0, S0, m1, S1, *, cross=None, rtol: float = 1e-12, atol: float = 1e-12) -> Rectification:
    r"""One rectification of a Gaussian coupling of :math:`\mathcal N(m_0,S_0)` (data, :math:`t=0`) and
    :math:`\mathcal N(m_1,S_1)` (:math:`t=1`) along the straight line; compares its cost with :math:`\mathcal W_2^2`.

    The starting coupling is independent (``cross=None``, the article's) or jointly Gaussian with
    :math:`C = \mathrm{Cov}(x_0,x_1)` = ``cross`` (the field is :func:`rectified_field`). The rectified map
    is :math:`x_0\mapsto m_1 + \Phi(x_0-m_0)`, :math:`\Phi` the flow of :math:`\dot y = M_ty` over [0, 1]. Its cost is
    :math:`\|m_1-m_0\|^2 + \mathrm{tr}((\Phi-I)S_0(\Phi-I)^\top)`; the starting coupling's is
    :math:`\|m_1-m_0\|^2 + \mathrm{tr}(S_0 + S_1 - 2C)` (``cost_start``).
    """
    B, c = rectified_field(m0, S0, m1, S1, cross)
    m0, S0 = wd._mean_cov(m0, S0, "source (m0, S0)")
    m1, S1 = wd._mean_cov(m1, S1, "target (m1, S1)", dtype=m0.dtype, device=m0.device)
    C = _gaussian_cross(cross, S0, S1)
    T = lf.linear_flow_tv(B, c, 0.0, 1.0, rtol=rtol, atol=atol)
    eye = torch.eye(m0.shape[0], dtype=m0.dtype, device=m0.device)
    cost = lf.coupling_cost(T, lf.AffineMap(eye, torch.zeros_like(m0)), m0, S0).item()
    push = T.M @ S0 @ T.M.T
    cost_independent = (((m1 - m0) ** 2).sum() + torch.trace(S0) + torch.trace(S1)).item()
    return Rectification(
        map=T,
        cost=cost,
        w2_squared=wd.bures_w2_squared(m0, S0, m1, S1).item(),
        cost_independent=cost_independent,
        pushforward_error=((push - S1).abs().max() / S1.abs().max()).item(),
        asymmetry=((T.M - T.M.T).abs().max() / T.M.abs().max()).item(),
        cost_start=cost_independent if C is None else cost_independent - 2 * torch.trace(C).item(),
    )


class ModelBound(NamedTuple):
    """Both sides of part 16's corrected ODE lemma for an affine perturbation of the exact ReFlow field."""

    w2: float  #: W2 between the data N(m0, S0) and the model's output q_0 (Bures)
    bound: float  #: the integral of I_t F_t over [0, 1] (same starting noise, so no W2 term at t = 1)
    gap_at: Callable  #: F_t^2 = E_{rho_t}||g_t - v*_t||^2 as a function of t (= L_t(model) - L_t^*, C17.1)


def w2_bound_affine_model(m0, S0, E, e, *, panels: int = 8, nodes: int = 12) -> ModelBound:
    r"""Part 16's W-distance bound applied to a ReFlow model (claim C17.7), exactly, for Gaussian data.

    Data :math:`\mathcal N(m_0,S_0)` at :math:`t=0`, noise :math:`\mathcal N(0,I)` at :math:`t=1`, independent, the
    straight line; the exact field :math:`v^*_t(x) = B_tx+c_t` (:func:`rectified_field`) and a model
    :math:`g_t(x) = v^*_t(x) + Ex + e`. Both ODEs run from the same noise at :math:`t = 1` to :math:`t = 0`;
    the model ends at a Gaussian :math:`q_0` (its affine flow map by :func:`diffmath.linear_flows.linear_flow_tv`). The bound is
    :math:`\int_0^1I_tF_t\,dt`, :math:`I_t=\exp\int_0^tL_s\,ds`, :math:`L_t` the backward one-sided constant of
    :math:`g_t` (:func:`diffmath.linear_flows.backward_one_sided_lipschitz` of :math:`B_t+E`), and
    :math:`F_t^2=\mathbb E_{\rho_t}\|Ex+e\|^2=\|Em_t+e\|^2+\mathrm{tr}(EV_tE^\top)`, :math:`\rho_t=\mathcal N(m_t,V_t)`.
    """
    import numpy as np

    m0, S0 = wd._mean_cov(m0, S0, "data")
    wd.check_spd(S0, "S0")
    d = m0.shape[0]
    E = as_tensor(E, "E", dtype=m0.dtype, device=m0.device)
    e = as_tensor(e, "e", dtype=m0.dtype, device=m0.device)
    if tuple(E.shape) != (d, d) or tuple(e.shape) != (d,):
        raise ValueError(f"E must have shape ({d}, {d}) and e shape ({d},); got {tuple(E.shape)}, {tuple(e.shape)}")
    eye = torch.eye(d, dtype=m0.dtype, device=m0.device)
    B, c = rectified_field(m0, S0, torch.zeros_like(m0), eye)
    model = lf.linear_flow_tv(lambda t: B(t) + E, lambda t: c(t) + e, 1.0, 0.0)
    mq, Sq = lf.push_gaussian(model, torch.zeros_like(m0), eye)
    w2 = wd.bures_w2(m0, S0, mq, Sq).item()

    def gap(t: float) -> float:
        mt, Vt = (1 - t) * m0, (1 - t) ** 2 * S0 + t**2 * eye
        return (((E @ mt + e) ** 2).sum() + torch.trace(E @ Vt @ E.T)).item()

    L = lambda ts: np.array([lf.backward_one_sided_lipschitz(B(float(t)) + E).item() for t in np.ravel(ts)]).reshape(np.shape(ts))
    F = lambda ts: np.sqrt(np.array([gap(float(t)) for t in np.ravel(ts)])).reshape(np.shape(ts))
    return ModelBound(w2=w2, bound=lf.lemma_bound(L, F, 1.0, 0.0, panels=panels, nodes=nodes), gap_at=gap)


# --- a distributional distance with a finite-sample bound -------------------------------------------
def projected_ks(samples, mixture: GaussianMixture, directions) -> torch.Tensor:
    r""":math:`\sqrt n\,\sup_s|F_n(s)-F(s)|` for the projections :math:`w^\top x` of ``samples`` (n, d) on each
    unit direction ``w`` (rows of ``directions`` (m, d)), against the exact projected law of ``mixture``
    (a 1-D mixture with means :math:`w^\top\mu_k` and variances :math:`w^\top\Sigma_kw`). Shape (m,).

    Under the null (the samples are i.i.d. from ``mixture``) the Dvoretzky–Kiefer–Wolfowitz inequality
    (with Massart's constant) gives :math:`P(\sqrt n D_n > \lambda)\le 2e^{-2\lambda^2}` for every n: see
    :func:`dkw_threshold`.
    """
    x = points(samples, "samples", d=mixture.dim, dtype=mixture.dtype, device=mixture.device)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"samples must have shape (n, {mixture.dim}) with n >= 1, got {tuple(x.shape)}")
    W = as_tensor(directions, "directions", dtype=mixture.dtype, device=mixture.device)
    if W.ndim != 2 or W.shape[1] != mixture.dim:
        raise ValueError(f"directions must have shape (m, {mixture.dim}), got {tuple(W.shape)}")
    norms = W.norm(dim=1)
    if (norms == 0).any():
        raise ValueError("directions must be nonzero")
    W = W / norms[:, None]
    n = x.shape[0]
    covs = mixture.covariances()
    out = []
    for w in W:
        proj = torch.sort(x @ w).values
        line = wd.gaussian_mixture_1d(mixture.weights, mixture.means @ w, torch.einsum("i,kij,j->k", w, covs, w), device=mixture.device)
        F = wd.mixture_cdf_1d(line, proj)
        i = torch.arange(1, n + 1, dtype=F.dtype, device=F.device)
        D = torch.maximum(i / n - F, F - (i - 1) / n).max()
        out.append(math.sqrt(n) * D)
    return torch.stack(out)


def dkw_threshold(false_alarm: float) -> float:
    r"""The :math:`\lambda` with :math:`2e^{-2\lambda^2} = ` ``false_alarm``: :math:`P(\sqrt nD_n>\lambda)` is at most
    ``false_alarm`` for i.i.d. samples of the reference law (DKW–Massart), whatever n."""
    if not (0 < false_alarm < 1):
        raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
    return math.sqrt(math.log(2 / false_alarm) / 2)


def rotation2(theta: float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """The 2-D rotation by ``theta`` radians."""
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=dtype, device=device)


__all__ = [
    "Coupling",
    "Interpolant",
    "ModelBound",
    "Rectification",
    "dkw_threshold",
    "projected_ks",
    "rectified_field",
    "rectify_gaussians",
    "rotation2",
    "times",
    "w2_bound_affine_model",
]
