r"""GANs read as discretised gradient flows (article 19 of the series, kexue.fm 9662; MonoFlow).

Contents:

* optimal discriminators: the vanilla-GAN logit :math:`D^*=\log(p/q)` (article 19, (3)–(4);
  Goodfellow et al. 2014) and the f-GAN critics :math:`T^*=f'(p/q)` (Nowozin et al. 2016);
* a well-specified discriminator for one-dimensional Gaussians: logistic regression on the features
  :math:`(1,x,x^2)`, fitted by Newton's method, with its asymptotic covariance;
* small seeded float64 torch networks, the projection loss (8) and the generator loss (11)/(12)
  :math:`\mathbb E_z[-h(D(g_\theta(z)))]`, and the Gauss–Newton step that minimises (8) for a generator
  linear in its parameters;
* MonoFlow's family :math:`h`: identity (loss :math:`-D`), minimax (:math:`h=\mathrm{softplus}`, loss
  :math:`\log(1-\sigma(D))`) and non-saturating (:math:`h=\log\sigma`, loss :math:`-\log\sigma(D)`);
* the closed form of the generator objective against a *frozen* optimal discriminator for Gaussians;
* the affine generator :math:`g=\mu+Lz` in :math:`\mathbb R^d` (:class:`AffineGeneratorND`: full, triangular or
  isotropic :math:`L`), its Gauss–Newton matrix and the parameter velocity that solving (8) gives.

**Convention.** The article's: :math:`D` is the logit (pre-sigmoid); the generator's law :math:`q` flows
towards the data law :math:`p`; the index :math:`t` of :math:`\theta_t` is a training iteration and,
with step :math:`\epsilon`, the flow time is :math:`t\epsilon`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from diffmath import gradient_flows as gf
from diffmath._validation import as_tensor

Fn = Callable[[torch.Tensor], torch.Tensor]


# --- optimal discriminators -------------------------------------------------------------------------
def optimal_logit(log_p: Fn, log_q: Fn) -> Fn:
    r"""The maximiser of the vanilla-GAN objective (3), :math:`D^*(x)=\log p(x)-\log q(x)` (article 19, (4))."""
    return lambda x: log_p(x) - log_q(x)


def vanilla_d_objective(D: Fn, x_data: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    r"""Article 19, (3): :math:`\mathbb E_p[\log\sigma(D)]+\mathbb E_q[\log(1-\sigma(D))]`, by sample means
    (:math:`\log(1-\sigma(D))=\log\sigma(-D)`)."""
    return F.logsigmoid(D(x_data)).mean() + F.logsigmoid(-D(x_fake)).mean()


#: f-divergences :math:`D_f(p\|q)=\mathbb E_q f(p/q)`: name -> (f, f', convex conjugate f*).
FGAN = {
    "kl": (lambda u: u * torch.log(u), lambda u: 1 + torch.log(u), lambda t: torch.exp(t - 1)),
    "reverse_kl": (lambda u: -torch.log(u), lambda u: -1 / u, lambda t: -1 - torch.log(-t)),
    "pearson": (lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda t: t**2 / 4 + t),
    "js": (
        lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2),
        lambda u: torch.log(2 * u / (1 + u)),
        lambda t: -torch.log(2 - torch.exp(t)),
    ),
}


def fgan_optimal_critic(divergence: str, ratio) -> torch.Tensor:
    r"""The f-GAN optimal critic :math:`T^*=f'(r)`, :math:`r=p/q`, the pointwise maximiser of
    :math:`p\,T-q\,f^*(T)` (Nowozin et al. 2016; article 19 says only that it is a function of :math:`p/q`)."""
    if divergence not in FGAN:
        raise ValueError(f"divergence must be one of {sorted(FGAN)}, got {divergence!r}")
    r = as_tensor(ratio, "ratio")
    if (r <= 0).any():
        raise ValueError("ratio must be > 0")
    return FGAN[divergence][1](r)


def fgan_objective_density(divergence: str, p: torch.Tensor, q: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    r"""The integrand :math:`p\,T-q\,f^*(T)` of the f-GAN variational bound :math:`D_f(p\|q)\ge\mathbb E_pT-\mathbb E_qf^*(T)`."""
    if divergence not in FGAN:
        raise ValueError(f"divergence must be one of {sorted(FGAN)}, got {divergence!r}")
    return p * T - q * FGAN[divergence][2](T)


# --- a well-specified discriminator for 1-D Gaussians --------------------------------------------------
def quadratic_features(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.ones_like(x), x, x**2], -1)


def fit_quadratic_logit(x_data, x_fake, *, iters: int = 30, tol: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Maximise (3) over :math:`D(x)=c_0+c_1x+c_2x^2` by Newton's method (logistic regression; the objective is
    concave). With equal sample sizes and Gaussian :math:`p,q` the model contains :math:`\log(p/q)`, so the fit is
    consistent. Returns the coefficients and their asymptotic covariance (inverse Hessian of the summed
    log-likelihood). ``x_data`` and ``x_fake`` have shape ``(n,)``."""
    xp, xq = as_tensor(x_data, "x_data"), as_tensor(x_fake, "x_fake")
    if xp.ndim != 1 or xq.ndim != 1 or xp.shape != xq.shape:
        raise ValueError("x_data and x_fake must be 1-D with the same length")
    scale = torch.cat([xp, xq]).abs().max().clamp_min(1.0)
    phi = quadratic_features(torch.cat([xp, xq]) / scale)  # scaled features for conditioning
    y = torch.cat([torch.ones_like(xp), torch.zeros_like(xq)])
    c = torch.zeros(3, dtype=phi.dtype, device=phi.device)
    for _ in range(iters):
        prob = torch.sigmoid(phi @ c)
        grad = phi.T @ (y - prob)
        hess = (phi * (prob * (1 - prob))[:, None]).T @ phi
        step = torch.linalg.solve(hess, grad)
        c = c + step
        if step.abs().max() < tol:
            break
    prob = torch.sigmoid(phi @ c)
    hess = (phi * (prob * (1 - prob))[:, None]).T @ phi
    unscale = torch.diag(torch.stack([torch.ones_like(scale), 1 / scale, 1 / scale**2]))
    return unscale @ c, unscale @ torch.linalg.inv(hess) @ unscale


def gaussian_log_ratio_coefficients(m: float, s: float, mq: float, sq: float) -> torch.Tensor:
    r"""Coefficients of :math:`\log\mathcal N(x;m,s^2)-\log\mathcal N(x;m_q,s_q^2)=c_0+c_1x+c_2x^2`."""
    if s <= 0 or sq <= 0:
        raise ValueError("s and sq must be > 0")
    c2 = -1 / (2 * s**2) + 1 / (2 * sq**2)
    c1 = m / s**2 - mq / sq**2
    c0 = -(m**2) / (2 * s**2) + mq**2 / (2 * sq**2) + math.log(sq / s)
    return torch.tensor([c0, c1, c2], dtype=torch.float64)


# --- networks and generator losses ---------------------------------------------------------------------
def mlp(d_in: int, d_out: int, *, width: int = 16, depth: int = 2, seed: int = 0) -> torch.nn.Module:
    """A small tanh MLP in float64, initialised from ``seed`` (reproducible)."""
    if d_in < 1 or d_out < 1 or width < 1 or depth < 1:
        raise ValueError("d_in, d_out, width and depth must be >= 1")
    g = torch.Generator().manual_seed(seed)
    layers, d = [], d_in
    for _ in range(depth):
        lin = torch.nn.Linear(d, width).double()
        layers += [lin, torch.nn.Tanh()]
        d = width
    layers.append(torch.nn.Linear(d, d_out).double())
    with torch.no_grad():
        for lay in layers:
            if isinstance(lay, torch.nn.Linear):
                lay.weight.copy_(torch.randn(lay.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(lay.in_features))
                lay.bias.copy_(0.3 * torch.randn(lay.bias.shape, generator=g, dtype=torch.float64))
    return torch.nn.Sequential(*layers)


def input_gradient(D: Fn, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\nabla_xD(x)` per sample (``D`` maps ``(n, d)`` to ``(n,)`` or ``(n, 1)``), detached."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return g.detach()


def projection_loss(gen: torch.nn.Module, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Article 19, (8): :math:`\mathbb E_z\|g_\theta(z)-y(z)\|^2` with the frozen targets
    :math:`y(z)=g_{\theta_t}(z)+\epsilon\nabla D(g_{\theta_t}(z))` (computed once, without gradient)."""
    return ((gen(z) - target) ** 2).sum(-1).mean()


def projection_targets(gen: torch.nn.Module, z: torch.Tensor, D: Fn, eps: float) -> torch.Tensor:
    r"""The moved particles :math:`x+\epsilon\nabla D(x)`, :math:`x=g_{\theta_t}(z)` (article 19, (6))."""
    with torch.no_grad():
        x = gen(z)
    return (x + eps * input_gradient(D, x)).detach()


#: MonoFlow's family: name -> (h, h'). The generator loss is :math:`-h(D)`.
H_FAMILY: dict[str, tuple[Fn, Fn]] = {
    "identity": (lambda d: d, lambda d: torch.ones_like(d)),
    "minimax": (F.softplus, torch.sigmoid),  # -h(D) = log(1 - sigmoid(D))
    "nonsaturating": (F.logsigmoid, lambda d: torch.sigmoid(-d)),  # -h(D) = -log sigmoid(D)
}


def generator_loss(gen: torch.nn.Module, z: torch.Tensor, D: Fn, h: str = "identity") -> torch.Tensor:
    r"""Article 19, (11)/(12): :math:`\mathbb E_z[-h(D(g_\theta(z)))]` (``h`` a name in :data:`H_FAMILY`)."""
    if h not in H_FAMILY:
        raise ValueError(f"h must be one of {sorted(H_FAMILY)}, got {h!r}")
    return -H_FAMILY[h][0](D(gen(z)).reshape(-1)).mean()


def monoflow_velocity(x: torch.Tensor, log_ratio: Fn, h: str) -> torch.Tensor:
    r"""MonoFlow's particle velocity :math:`\nabla_x h(\log r(x))=h'(\log r)\,\nabla\log r` (article 19, (12); Yi et al.
    2023). ``x`` of shape ``(n,)`` (one dimension) or ``(n, d)``; ``log_ratio`` maps it to ``(n,)``, one sample at a time."""
    if h not in H_FAMILY:
        raise ValueError(f"h must be one of {sorted(H_FAMILY)}, got {h!r}")
    if x.ndim not in (1, 2):
        raise ValueError(f"x must have shape (n,) or (n, d), got {tuple(x.shape)}")
    create = x.requires_grad
    xx = x if create else x.detach().requires_grad_(True)
    ell = log_ratio(xx)
    if ell.shape != x.shape[:1]:
        raise ValueError(f"log_ratio must map the samples to shape ({x.shape[0]},), got {tuple(ell.shape)}")
    (g,) = torch.autograd.grad(ell.sum(), xx, create_graph=True)
    weight = H_FAMILY[h][1](ell)
    v = (weight if x.ndim == 1 else weight[:, None]) * g
    return v if create else v.detach()


def flat_jacobian(gen: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    r"""The Jacobian :math:`J(z)=\partial g_\theta(z)/\partial\theta`, shape ``(n, d, P)``, all parameters flattened."""
    params = dict(gen.named_parameters())
    names = list(params)

    def f(*vals):
        return torch.func.functional_call(gen, dict(zip(names, vals)), (z,))

    jac = torch.autograd.functional.jacobian(f, tuple(params[n] for n in names))
    n, d = z.shape[0], jac[0].shape[1]
    return torch.cat([j.reshape(n, d, -1) for j in jac], -1)


def gauss_newton_step(jac: torch.Tensor, velocity: torch.Tensor, eps: float) -> torch.Tensor:
    r""":math:`\Delta\theta=\epsilon\,\mathbb E[J^\top J]^{-1}\mathbb E[J^\top v]`: the minimiser of (8) to first order
    (exactly, when :math:`g_\theta` is linear in :math:`\theta`). ``jac`` (n, d, P), ``velocity`` (n, d)."""
    if jac.ndim != 3 or velocity.shape != jac.shape[:2]:
        raise ValueError("jac must be (n, d, P) and velocity (n, d)")
    G = torch.einsum("ndp,ndq->pq", jac, jac) / jac.shape[0]
    b = torch.einsum("ndp,nd->p", jac, velocity) / jac.shape[0]
    return eps * torch.linalg.solve(G, b)


class AffineGenerator(torch.nn.Module):
    r"""The one-dimensional affine generator :math:`g(z)=\mu+\sigma z`, parametrised by :math:`(\mu,\sigma)`
    (``"scale"``, for which :math:`\mathbb E[J^\top J]=I`) or by :math:`(\mu,\rho=\log\sigma)` (``"log"``, for which
    :math:`\mathbb E[J^\top J]=\mathrm{diag}(1,\sigma^2)`)."""

    def __init__(self, mu: float, sigma: float, parametrisation: str = "scale"):
        super().__init__()
        if sigma <= 0:
            raise ValueError("sigma must be > 0")
        if parametrisation not in ("scale", "log"):
            raise ValueError("parametrisation must be 'scale' or 'log'")
        self.parametrisation = parametrisation
        self.mu = torch.nn.Parameter(torch.tensor(float(mu), dtype=torch.float64))
        s = math.log(sigma) if parametrisation == "log" else sigma
        self.s = torch.nn.Parameter(torch.tensor(float(s), dtype=torch.float64))

    @property
    def sigma(self) -> torch.Tensor:
        return torch.exp(self.s) if self.parametrisation == "log" else self.s

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sigma * z


def frozen_generator_objective(mu, sigma, mu_t: float, sigma_t: float, m: float, s: float) -> torch.Tensor:
    r""":math:`\mathbb E_z[-D^*(\mu+\sigma z)]` with :math:`D^*=\log\frac{\mathcal N(m,s^2)}{\mathcal N(\mu_t,\sigma_t^2)}` frozen:

    .. math:: \frac{\sigma^2+(\mu-m)^2}{2s^2}-\frac{\sigma^2+(\mu-\mu_t)^2}{2\sigma_t^2}+\log\frac s{\sigma_t}.

    Unbounded below in :math:`\sigma` when :math:`\sigma_t<s`."""
    if sigma_t <= 0 or s <= 0:
        raise ValueError("sigma_t and s must be > 0")
    mu, sigma = as_tensor(mu, "mu"), as_tensor(sigma, "sigma")
    return (sigma**2 + (mu - m) ** 2) / (2 * s**2) - (sigma**2 + (mu - mu_t) ** 2) / (2 * sigma_t**2) + math.log(s / sigma_t)


# --- the affine generator in d dimensions --------------------------------------------------------------
#: Parametrisations of :class:`AffineGeneratorND`.
AFFINE_PARAMETRISATIONS = ("full", "tril", "isotropic", "log")


class AffineGeneratorND(torch.nn.Module):
    r"""The affine generator :math:`g(z)=\mu+Lz`, :math:`z\sim\mathcal N(0,I_d)`, whose law is :math:`\mathcal N(\mu,LL^\top)`;
    parameters :math:`\theta=(\mu,\cdot)` in the order of :meth:`named_parameters` (``mu``, then ``scale``):

    * ``"full"``: every entry of :math:`L` (row-major), :math:`\mathbb E[J^\top J]=I_{d+d^2}`;
    * ``"tril"``: the :math:`d(d+1)/2` entries of a lower-triangular :math:`L` (``torch.tril_indices`` order),
      :math:`\mathbb E[J^\top J]=I`;
    * ``"isotropic"``: :math:`L=\sigma I`, :math:`\mathbb E[J^\top J]=\mathrm{diag}(I_d,d)`;
    * ``"log"``: :math:`L=e^\rho I`, :math:`\mathbb E[J^\top J]=\mathrm{diag}(I_d,d\,e^{2\rho})`.

    :math:`J=\partial g/\partial\theta` (article 19, (8)–(10)); see :func:`affine_gauss_newton_metric`. For :math:`d=1`,
    ``"full"``, ``"tril"`` and ``"isotropic"`` are :class:`AffineGenerator`'s ``"scale"`` and ``"log"`` is its ``"log"``.
    ``mu`` has shape ``(d,)``; ``L`` is a nonsingular ``(d, d)`` matrix (lower triangular for ``"tril"``) or, for
    ``"isotropic"`` and ``"log"``, the positive number :math:`\sigma`. ``forward`` maps ``(n, d)`` to ``(n, d)``."""

    def __init__(self, mu, L, parametrisation: str = "full"):
        super().__init__()
        if parametrisation not in AFFINE_PARAMETRISATIONS:
            raise ValueError(f"parametrisation must be one of {AFFINE_PARAMETRISATIONS}, got {parametrisation!r}")
        m = as_tensor(mu, "mu", dtype=torch.float64)
        if m.ndim != 1 or m.shape[0] < 1:
            raise ValueError(f"mu must have shape (d,), got {tuple(m.shape)}")
        d = m.shape[0]
        self.d, self.parametrisation = d, parametrisation
        self.mu = torch.nn.Parameter(m.detach().clone())
        L = as_tensor(L, "L", dtype=torch.float64, device=m.device)
        if parametrisation in ("isotropic", "log"):
            if L.ndim != 0 or L.item() <= 0:
                raise ValueError(f"L must be a positive number sigma for parametrisation {parametrisation!r}")
            val = torch.log(L) if parametrisation == "log" else L
            self.scale = torch.nn.Parameter(val.detach().clone())
            return
        if tuple(L.shape) != (d, d):
            raise ValueError(f"L must have shape ({d}, {d}), got {tuple(L.shape)}")
        if torch.linalg.matrix_rank(L) < d:
            raise ValueError("L must be nonsingular (the generator's law needs a density)")
        if parametrisation == "tril":
            if (torch.triu(L, 1) != 0).any():
                raise ValueError("L must be lower triangular for parametrisation 'tril'")
            rows, cols = torch.tril_indices(d, d)
            self.scale = torch.nn.Parameter(L[rows, cols].detach().clone())
        else:
            self.scale = torch.nn.Parameter(L.detach().clone())

    @property
    def L(self) -> torch.Tensor:
        if self.parametrisation == "full":
            return self.scale
        eye = torch.eye(self.d, dtype=self.scale.dtype, device=self.scale.device)
        if self.parametrisation == "isotropic":
            return self.scale * eye
        if self.parametrisation == "log":
            return torch.exp(self.scale) * eye
        rows, cols = torch.tril_indices(self.d, self.d, device=self.scale.device)
        return torch.zeros(self.d, self.d, dtype=self.scale.dtype, device=self.scale.device).index_put((rows, cols), self.scale)

    @property
    def covariance(self) -> torch.Tensor:
        L = self.L
        return L @ L.T

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z must have shape (n, {self.d}), got {tuple(z.shape)}")
        return self.mu + z @ self.L.T


def affine_gauss_newton_metric(gen: AffineGeneratorND) -> torch.Tensor:
    r"""The Gauss–Newton matrix :math:`\mathbb E_z[J^\top J]` of :class:`AffineGeneratorND`, in closed form: with
    :math:`\partial g_i/\partial\mu_k=\delta_{ik}`, :math:`\partial g_i/\partial L_{kl}=\delta_{ik}z_l` and
    :math:`\mathbb E[z]=0`, :math:`\mathbb E[zz^\top]=I`, it is :math:`I` for ``"full"`` and ``"tril"`` (any :math:`d`),
    :math:`\mathrm{diag}(I_d,d)` for ``"isotropic"`` (:math:`\partial g/\partial\sigma=z`, :math:`\mathbb E\|z\|^2=d`) and
    :math:`\mathrm{diag}(I_d,d\,e^{2\rho})` for ``"log"`` (:math:`\partial g/\partial\rho=e^\rho z`). Article 19, (8): the
    minimiser of the projection loss is the Gauss–Newton step, a plain gradient step only when this is :math:`\propto I`."""
    P = sum(p.numel() for p in gen.parameters())
    G = torch.eye(P, dtype=torch.float64, device=gen.mu.device)
    if gen.parametrisation == "isotropic":
        G[-1, -1] = gen.d
    elif gen.parametrisation == "log":
        G[-1, -1] = gen.d * torch.exp(2 * gen.scale.detach())
    return G


def affine_parameter_velocity(gen: AffineGeneratorND, b, A) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The Gauss–Newton parameter velocity :math:`\mathbb E[J^\top J]^{-1}\mathbb E[J^\top v(g(z))]` of
    :class:`AffineGeneratorND` for an affine particle velocity :math:`v(x)=b+A(x-\mu)` (e.g. the exact
    :math:`\nabla D^*=\nabla\log(p/q)` between Gaussians, :func:`diffmath.gradient_flows.gaussian_velocity_nd`):
    :math:`v(g(z))=b+ALz`, so :math:`\mathbb E[J^\top v]` has :math:`\mu`-part :math:`b` and :math:`L`-part :math:`AL`, and

    * ``"full"``: :math:`(\dot\mu,\dot L)=(b,\,AL)`: the moved samples :math:`\mu+\epsilon b+(I+\epsilon A)Lz` are again
      a generator output, the step is exact, and :math:`\dot\Sigma=\dot LL^\top+L\dot L^\top=A\Sigma+\Sigma A`;
    * ``"tril"``: :math:`(b,\ \mathrm{tril}(AL))`, the projection of the moved samples onto triangular maps; its
      covariance velocity differs from :math:`A\Sigma+\Sigma A` by :math:`NL^\top+LN^\top`, :math:`N` the strictly upper
      part of :math:`AL` (nonzero in general for :math:`d\ge2`);
    * ``"isotropic"``: :math:`(b,\ \sigma\,\mathrm{tr}A/d)`; ``"log"``: :math:`(b,\ \mathrm{tr}A/d)`.

    For the parametrisations linear in :math:`\theta` (all but ``"log"``) :math:`\theta_t+\epsilon\times` this is the exact
    minimiser of (8); for ``"log"`` it is the minimiser to first order in :math:`\epsilon`. The scale part is returned in
    the shape of ``gen.scale``."""
    L = gen.L.detach()
    b = as_tensor(b, "b", dtype=L.dtype, device=L.device)
    A = as_tensor(A, "A", dtype=L.dtype, device=L.device)
    if tuple(b.shape) != (gen.d,) or tuple(A.shape) != (gen.d, gen.d):
        raise ValueError(f"b must have shape ({gen.d},) and A shape ({gen.d}, {gen.d})")
    AL = A @ L
    if gen.parametrisation == "full":
        return b, AL
    if gen.parametrisation == "tril":
        rows, cols = torch.tril_indices(gen.d, gen.d, device=L.device)
        return b, AL[rows, cols]
    rate = A.diagonal().sum() / gen.d
    return b, rate * gen.scale.detach() if gen.parametrisation == "isotropic" else rate


def frozen_generator_objective_nd(mu, L, mu_t, S_t, m, S) -> torch.Tensor:
    r""":math:`\mathbb E_z[-D^*(\mu+Lz)]`, :math:`z\sim\mathcal N(0,I_d)`, with :math:`D^*=\log\frac{\mathcal N(m,S)}{\mathcal N(\mu_t,S_t)}`
    frozen (the :math:`d`-dimensional :func:`frozen_generator_objective`; :math:`\Sigma=LL^\top`):

    .. math:: \tfrac12\mathrm{tr}\big((S^{-1}-S_t^{-1})\Sigma\big)+\tfrac12(\mu-m)^\top S^{-1}(\mu-m)
              -\tfrac12(\mu-\mu_t)^\top S_t^{-1}(\mu-\mu_t)+\tfrac12\log\frac{\det S}{\det S_t}.

    Its part in :math:`L` is the quadratic form :math:`\frac12\mathrm{tr}(L^\top(S^{-1}-S_t^{-1})L)`: unbounded below as soon as
    :math:`S^{-1}-S_t^{-1}` has a negative eigenvalue (the generator narrower than the data in one direction), minimised
    at :math:`L=0` when it is positive definite. ``mu``, ``L`` may carry gradients."""
    mu_t, S_t = gf._gaussian_nd(mu_t, S_t, "mu_t", "S_t")
    m, S = gf._gaussian_nd(m, S, "m", "S")
    mu, L = as_tensor(mu, "mu"), as_tensor(L, "L")
    d = mu_t.shape[0]
    if tuple(mu.shape) != (d,) or tuple(L.shape) != (d, d) or tuple(m.shape) != (d,):
        raise ValueError(f"mu and m must have shape ({d},) and L shape ({d}, {d}) to match mu_t")
    Sinv, Stinv = torch.linalg.inv(S), torch.linalg.inv(S_t)
    Sigma = L @ L.T
    quad = lambda u, P: u @ P @ u
    logdet = torch.linalg.slogdet(S)[1] - torch.linalg.slogdet(S_t)[1]
    return 0.5 * (((Sinv - Stinv) * Sigma).sum() + quad(mu - m, Sinv) - quad(mu - mu_t, Stinv) + logdet)
