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
* the closed form of the generator objective against a *frozen* optimal discriminator for Gaussians.

**Convention.** The article's: :math:`D` is the logit (pre-sigmoid); the generator's law :math:`q` flows
towards the data law :math:`p`; the index :math:`t` of :math:`\theta_t` is a training iteration and,
with step :math:`\epsilon`, the flow time is :math:`t\epsilon`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

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
    r"""MonoFlow's particle velocity :math:`\nabla_x h(\log r(x))=h'(\log r)\,\nabla\log r` (one dimension, ``x`` of shape ``(n,)``)."""
    if h not in H_FAMILY:
        raise ValueError(f"h must be one of {sorted(H_FAMILY)}, got {h!r}")
    create = x.requires_grad
    xx = x if create else x.detach().requires_grad_(True)
    ell = log_ratio(xx)
    (g,) = torch.autograd.grad(ell.sum(), xx, create_graph=True)
    v = H_FAMILY[h][1](ell) * g
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
