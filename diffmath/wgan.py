r"""From ReFlow to WGAN-GP: critic losses, the optimal critic, and the two generator schemes.

Part 20 of Su's series (kexue.fm 9668) starts from the ReFlow regression
:math:`\min_v\mathbb E\,\tfrac12\|v(x_t,t)-(x_1-x_0)\|^2` on the straight line
:math:`x_t=(1-t)x_0+tx_1`, drops the time input, restricts :math:`v` to a gradient
:math:`\nabla D`, and arrives at the WGAN critic loss with a zero-centred gradient penalty at
interpolates (Gulrajani et al. 2017, "Improved training of Wasserstein GANs").

**Convention (article 20).** :math:`x_0\sim p_0` is the noise or the generator output and sits at
:math:`t=0`; :math:`x_1\sim p_1` is the data and sits at :math:`t=1`; :math:`t` is ODE time and the
training step is :math:`\tau`. The coupling of :math:`(x_0,x_1)` is independent. In the library's
convention (data at :math:`t=0`) the same line is the rectified-flow schedule with
:math:`s=1-t`, and every velocity here changes sign there.

Contents:

* losses on samples: :func:`reflow_gradient_loss` (eq. (3) with :math:`v=\nabla D`, no time input),
  :func:`critic_loss` (eq. (10): :math:`\tfrac12\|\nabla D(\hat x)\|^2-D(x_1)+D(x_0)`),
  :func:`wgan_gp_loss` (the one-centred penalty, for comparison);
* seeded float64 torch models: :func:`critic_mlp`, :func:`generator_mlp`;
* the exact interpolant law for Gaussian-mixture :math:`p_0,p_1` (:func:`interpolant_mixture`), the
  exact ReFlow velocity :math:`v_t(x)=\mathbb E[x_1-x_0\mid x_t=x]` (:func:`reflow_velocity`), the
  time-averaged density :math:`\rho=\int_0^1p_t\,dt` and velocity
  :math:`\bar v=\int_0^1p_tv_t\,dt/\rho` (:func:`time_averaged_field`);
* the optimal critic, which solves the weighted Poisson equation
  :math:`-\nabla\cdot(\rho\nabla D^*)=p_1-p_0`; in 1-D :math:`D^{*\prime}=(F_0-F_1)/\rho`
  (:func:`optimal_critic_gradient_1d`, :func:`optimal_critic_value_1d`, :func:`critic_objective_1d`);
* the two generator schemes of the article on the affine Gaussian generator
  :math:`g(z)=a+bz` (:func:`scheme_t0`, :func:`scheme_averaged`), and on a 1-D particle cloud moved by
  :math:`x\leftarrow x+\epsilon v(x)` (:func:`scheme_particles`, with the cloud's law smoothed by
  :func:`cloud_mixture_1d`).

The exact velocity here is for a mixture generator law *and* a mixture data law (independent coupling,
straight line), which the article needs because the generator's law is arbitrary. Chapter 17's
:mod:`diffmath.reflow` treats data against :math:`\mathcal N(0,I)` noise with general interpolants and
couplings; where the two overlap (:math:`p_0=\mathcal N(0,I)`) they agree, up to :math:`t\mapsto1-t` and a
sign (``tests/test_wgan.py::test_reflow_velocity_matches_chapter_17``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

from diffmath._validation import as_tensor
from diffmath.mixture import GaussianMixture
from diffmath.wasserstein import mixture_cdf_1d, mixture_sf_1d

Critic = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------------
# samples and losses
# ---------------------------------------------------------------------------------------------------
def _pair(x0, x1, t):
    x0 = as_tensor(x0, "x0")
    x1 = as_tensor(x1, "x1", dtype=x0.dtype, device=x0.device)
    if x0.ndim != 2 or x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must both have shape (n, d), got {tuple(x0.shape)} and {tuple(x1.shape)}")
    t = as_tensor(t, "t", dtype=x0.dtype, device=x0.device)
    if t.ndim == 0:
        t = t.expand(x0.shape[0])
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must be a number or have shape (n,) = ({x0.shape[0]},), got {tuple(t.shape)}")
    if ((t < 0) | (t > 1)).any():
        raise ValueError("t must lie in [0, 1]")
    return x0, x1, t


def interpolate(x0, x1, t) -> torch.Tensor:
    r"""The straight line :math:`x_t=(1-t)x_0+tx_1` (article 20, eq. (1)); x0, x1 (n, d), t scalar or (n,)."""
    x0, x1, t = _pair(x0, x1, t)
    return (1 - t)[:, None] * x0 + t[:, None] * x1


def critic_gradient(D: Critic, x: torch.Tensor, *, create_graph: bool = True) -> torch.Tensor:
    r""":math:`\nabla_xD(x)` by autograd for a critic ``D`` mapping (n, d) to (n,)."""
    x = x.detach().requires_grad_(True)
    out = D(x)
    if out.shape != x.shape[:1]:
        raise ValueError(f"the critic must map (n, d) to (n,), got output shape {tuple(out.shape)}")
    return torch.autograd.grad(out.sum(), x, create_graph=create_graph)[0]


def reflow_gradient_loss(D: Critic, x0, x1, t) -> torch.Tensor:
    r"""Per-sample ReFlow loss (eq. (3)) with the time-independent gradient field :math:`v=\nabla D`:
    :math:`\tfrac12\|\nabla D(x_t)-(x_1-x_0)\|^2`."""
    x0, x1, t = _pair(x0, x1, t)
    g = critic_gradient(D, interpolate(x0, x1, t))
    return 0.5 * ((g - (x1 - x0)) ** 2).sum(-1)


def critic_loss(D: Critic, real, fake, t) -> torch.Tensor:
    r"""Per-sample critic loss (eq. (10)): :math:`\tfrac12\|\nabla D(\hat x)\|^2-D(x_{\rm real})+D(x_{\rm fake})`,
    :math:`\hat x=(1-t)x_{\rm fake}+t\,x_{\rm real}` — WGAN with a zero-centred gradient penalty of weight ½
    at interpolates. The critic is high on real data."""
    fake, real, t = _pair(fake, real, t)
    g = critic_gradient(D, interpolate(fake, real, t))
    return 0.5 * (g**2).sum(-1) - D(real) + D(fake)


def wgan_gp_loss(D: Critic, real, fake, t, lam: float = 10.0) -> torch.Tensor:
    r"""Per-sample WGAN-GP critic loss (Gulrajani et al. 2017): :math:`-D(x_{\rm real})+D(x_{\rm fake})
    +\lambda(\|\nabla D(\hat x)\|-1)^2` (one-centred penalty), for comparison."""
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    fake, real, t = _pair(fake, real, t)
    g = critic_gradient(D, interpolate(fake, real, t))
    return lam * (g.norm(dim=-1) - 1) ** 2 - D(real) + D(fake)


def gauss_legendre(nodes: int = 64, panels: int = 1, *, dtype=torch.float64, device=None):
    r"""Composite Gauss–Legendre nodes and weights on :math:`[0,1]` (``panels`` equal panels)."""
    if nodes < 1 or panels < 1:
        raise ValueError(f"nodes and panels must be >= 1, got {nodes}, {panels}")
    z, w = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(0.0, 1.0, panels + 1)
    ts = np.concatenate([(a + b) / 2 + (b - a) / 2 * z for a, b in itertools.pairwise(edges)])
    ws = np.concatenate([(b - a) / 2 * w for a, b in itertools.pairwise(edges)])
    return torch.tensor(ts, dtype=dtype, device=device), torch.tensor(ws, dtype=dtype, device=device)


def time_integrated(loss: Callable, x0, x1, nodes: int = 64, panels: int = 1) -> torch.Tensor:
    r"""Per-pair :math:`\int_0^1\text{loss}(x_0,x_1,t)\,dt` by Gauss–Legendre (uniform t-density); ``loss`` is called
    once, on all (node, pair) combinations stacked, and must return one value per row."""
    x0 = as_tensor(x0, "x0")
    x1 = as_tensor(x1, "x1", dtype=x0.dtype, device=x0.device)
    ts, ws = gauss_legendre(nodes, panels, dtype=x0.dtype, device=x0.device)
    n, T = x0.shape[0], ts.shape[0]
    vals = loss(x0.repeat(T, 1), x1.repeat(T, 1), ts.repeat_interleave(n)).reshape(T, n)
    return (ws[:, None] * vals).sum(0)


# ---------------------------------------------------------------------------------------------------
# small seeded models
# ---------------------------------------------------------------------------------------------------
class _Scalar(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def _init(net: torch.nn.Module, seed: int, scale: float = 1.0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64) / max(1, p.shape[-1]) ** 0.5)
    return net


def _mlp(d_in: int, d_out: int, width: int, depth: int) -> torch.nn.Sequential:
    if d_in < 1 or d_out < 1 or width < 1 or depth < 1:
        raise ValueError(f"dimensions, width and depth must be >= 1, got {d_in}, {d_out}, {width}, {depth}")
    layers, last = [], d_in
    for _ in range(depth):
        layers += [torch.nn.Linear(last, width), torch.nn.Tanh()]
        last = width
    layers.append(torch.nn.Linear(last, d_out))
    return torch.nn.Sequential(*layers).double()


def critic_mlp(d: int, width: int = 32, depth: int = 2, *, seed: int = 0, scale: float = 1.0) -> torch.nn.Module:
    r"""A seeded float64 tanh MLP critic :math:`D:\mathbb R^d\to\mathbb R` (maps (n, d) to (n,))."""
    return _Scalar(_init(_mlp(d, 1, width, depth), seed, scale))


def generator_mlp(latent: int, d: int, width: int = 16, depth: int = 1, *, seed: int = 0) -> torch.nn.Module:
    r"""A seeded float64 tanh MLP generator :math:`g_\theta:\mathbb R^{\rm latent}\to\mathbb R^d`."""
    return _init(_mlp(latent, d, width, depth), seed)


def generator_step_gradients(g: torch.nn.Module, D: Critic, z: torch.Tensor, eps: float):
    r"""Parameter gradients, at the current :math:`\theta_\tau`, of the article's (6) with
    :math:`v=\nabla D`, :math:`\mathbb E\|g_\theta(z)-g_{\theta_\tau}(z)-\epsilon\nabla D(g_{\theta_\tau}(z))\|^2`,
    and of the WGAN generator loss (11), :math:`\mathbb E[-D(g_\theta(z))]`. The first is :math:`2\epsilon`
    times the second (claim C20.6)."""
    params = list(g.parameters())
    with torch.no_grad():
        x_old = g(z)
    v = critic_gradient(D, x_old, create_graph=False).detach()
    out = g(z)
    proj = ((out - x_old - eps * v) ** 2).sum(-1).mean()
    g_proj = torch.autograd.grad(proj, params)
    g_wgan = torch.autograd.grad((-D(g(z))).mean(), params)
    return torch.cat([a.reshape(-1) for a in g_proj]), torch.cat([a.reshape(-1) for a in g_wgan])


def fit_critic(p0: GaussianMixture, p1: GaussianMixture, *, width=32, depth=2, steps=300, batch=512, lr=0.02, seed=0):
    r"""Train a seeded tanh MLP critic on the critic loss (10), fake ~ p0 and real ~ p1 (mixtures), with Adam and a
    cosine learning-rate decay; ``steps`` minibatches of ``batch`` triples :math:`(x_0,x_1,t)`, t ~ U[0, 1]. Returns the critic."""
    _check_pair(p0, p1)
    if steps < 1 or batch < 2 or not lr > 0:
        raise ValueError(f"steps must be >= 1, batch >= 2 and lr > 0, got {steps}, {batch}, {lr}")
    device = p0.device
    D = critic_mlp(p0.dim, width=width, depth=depth, seed=seed).to(device)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    g = torch.Generator(device=device).manual_seed(seed + 1)
    for step in range(steps):
        x0, x1 = p0.sample(batch, generator=g), p1.sample(batch, generator=g)
        t = torch.rand(batch, generator=g, dtype=torch.float64, device=device)
        loss = critic_loss(D, x1, x0, t).mean()
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return D


# ---------------------------------------------------------------------------------------------------
# the exact interpolant law and ReFlow velocity for Gaussian mixtures (independent coupling)
# ---------------------------------------------------------------------------------------------------
def _check_pair(p0: GaussianMixture, p1: GaussianMixture):
    for name, p in (("p0", p0), ("p1", p1)):
        if not isinstance(p, GaussianMixture):
            raise TypeError(f"{name} must be a diffmath.GaussianMixture, got {type(p).__name__}")
    if p0.dim != p1.dim:
        raise ValueError(f"p0 and p1 must have the same dimension, got {p0.dim} and {p1.dim}")


def _pairs(p0: GaussianMixture, p1: GaussianMixture, t):
    """For times t (T,): weights (T*P,), means (T*P,d), covariances (T*P,d,d), drifts (T*P,d) and gains
    Cov(x1 - x0, x_t) Cov(x_t)^-1 (T*P,d,d) of x_t per component pair, flattened time-major."""
    t = torch.as_tensor(t, dtype=p0.dtype, device=p0.device).reshape(-1)
    T = t.shape[0]
    tm, tc = t.reshape(T, 1, 1, 1), t.reshape(T, 1, 1, 1, 1)
    A, S = p0.covariances(), p1.covariances()
    a, m = p0.means, p1.means
    d = a.shape[1]
    w = (p0.weights[:, None] * p1.weights[None]).reshape(-1).repeat(T)
    mean = ((1 - tm) * a[None, :, None] + tm * m[None, None]).reshape(-1, d)
    cov = ((1 - tc) ** 2 * A[None, :, None] + tc**2 * S[None, None]).reshape(-1, d, d)
    cross = (tc * S[None, None] - (1 - tc) * A[None, :, None]).reshape(-1, d, d)  # Cov(x1 - x0, x_t)
    drift = (m[None, None] - a[None, :, None]).expand(T, -1, -1, -1).reshape(-1, d)
    gain = torch.linalg.solve(cov, cross.transpose(-1, -2)).transpose(-1, -2)  # cross @ cov^-1
    return w, mean, cov, drift, gain


def interpolant_mixture(p0: GaussianMixture, p1: GaussianMixture, t: float) -> GaussianMixture:
    r"""The law :math:`p_t` of :math:`x_t=(1-t)x_0+tx_1`, :math:`x_0\sim p_0` and :math:`x_1\sim p_1`
    independent: a mixture over component pairs with means :math:`(1-t)a_j+t\mu_k` and covariances
    :math:`(1-t)^2A_j+t^2\Sigma_k`."""
    _check_pair(p0, p1)
    if not 0 <= t <= 1:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    w, mean, cov, _, _ = _pairs(p0, p1, [t])
    return GaussianMixture(w, mean, cov)


def _log_terms(p0, p1, x, t, logq=None):
    """log(q_i w_p N(x; mean, cov)) (n, T*P) and E[x1 - x0 | x_t = x, pair] (n, T*P, d)."""
    w, mean, cov, drift, gain = _pairs(p0, p1, t)
    prec = torch.linalg.inv(cov)
    logdet = torch.linalg.slogdet(cov)[1]
    d = x.shape[1]
    const = torch.log(w) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)
    if logq is not None:
        const = const + logq.repeat_interleave(w.shape[0] // logq.shape[0])
    diff = x[:, None, :] - mean[None]  # (n, T*P, d)
    logn = const - 0.5 * torch.einsum("npi,pij,npj->np", diff, prec, diff)
    vel = drift[None] + torch.einsum("pij,npj->npi", gain, diff)
    return logn, vel


def _x_for(p0: GaussianMixture, x) -> torch.Tensor:
    x = as_tensor(x, "x", dtype=p0.dtype, device=p0.device)
    if x.ndim != 2 or x.shape[1] != p0.dim:
        raise ValueError(f"x must have shape (n, {p0.dim}), got {tuple(x.shape)}")
    return x


def reflow_velocity(p0: GaussianMixture, p1: GaussianMixture, x, t: float) -> torch.Tensor:
    r"""The exact ReFlow velocity :math:`v_t(x)=\mathbb E[x_1-x_0\mid x_t=x]` (article 20, eqs. (3)–(4)),
    independent coupling, :math:`0\le t\le1`; x (n, d). At :math:`t=0` it is :math:`\mathbb E_{p_1}x_1-x`."""
    _check_pair(p0, p1)
    if not 0 <= t <= 1:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    x = _x_for(p0, x)
    logn, vel = _log_terms(p0, p1, x, [t])
    r = torch.softmax(logn, -1)
    return (r[..., None] * vel).sum(1)


def time_averaged_field(p0: GaussianMixture, p1: GaussianMixture, x, *, nodes: int = 48, panels: int = 4):
    r"""The time-averaged density and velocity of the interpolants at points x (n, d):

    .. math::

        \rho(x)=\int_0^1p_t(x)\,dt,\qquad
        \bar v(x)=\frac{\int_0^1p_t(x)\,v_t(x)\,dt}{\rho(x)}=\mathbb E[x_1-x_0\mid x_\tau=x],\ \tau\sim U[0,1],

    by composite Gauss–Legendre in :math:`t`. :math:`\bar v` is the minimiser of the ReFlow loss (3) over
    fields without a time input (article 20 drops :math:`t`). Returns ``(rho (n,), vbar (n, d))``.
    """
    _check_pair(p0, p1)
    x = _x_for(p0, x)
    ts, ws = gauss_legendre(nodes, panels, dtype=x.dtype, device=x.device)
    rho, vbar = [], []
    chunk = max(1, 2_000_000 // (ts.shape[0] * p0.n_components * p1.n_components * p0.dim))
    for xc in x.split(chunk):
        logn, vel = _log_terms(p0, p1, xc, ts, torch.log(ws))
        rho.append(torch.logsumexp(logn, 1).exp())
        vbar.append((torch.softmax(logn, 1)[..., None] * vel).sum(1))
    return torch.cat(rho), torch.cat(vbar)


# ---------------------------------------------------------------------------------------------------
# the optimal critic in one dimension
# ---------------------------------------------------------------------------------------------------
def cdf_difference_1d(p0: GaussianMixture, p1: GaussianMixture, x) -> torch.Tensor:
    r""":math:`F_0(x)-F_1(x)` of two 1-D mixtures, through survival functions in the upper half (no cancellation
    against 1); x of shape (n,)."""
    _check_pair(p0, p1)
    x = as_tensor(x, "x", dtype=p0.dtype, device=p0.device)
    mid = 0.5 * (p0.mean()[0] + p1.mean()[0])
    lower = mixture_cdf_1d(p0, x) - mixture_cdf_1d(p1, x)
    upper = mixture_sf_1d(p1, x) - mixture_sf_1d(p0, x)
    return torch.where(x < mid, lower, upper)


def time_averaged_density_1d(p0: GaussianMixture, p1: GaussianMixture, x, *, nodes: int = 48, panels: int = 4):
    r""":math:`\rho(x)=\int_0^1p_t(x)\,dt` for 1-D mixtures; x of shape (n,)."""
    x = as_tensor(x, "x", dtype=p0.dtype, device=p0.device)
    if p0.dim != 1:
        raise ValueError(f"p0 must be one-dimensional, got d = {p0.dim}")
    return time_averaged_field(p0, p1, x[:, None], nodes=nodes, panels=panels)[0]


def optimal_critic_gradient_1d(p0: GaussianMixture, p1: GaussianMixture, x, **quad) -> torch.Tensor:
    r"""The optimal critic's derivative in 1-D, :math:`D^{*\prime}(x)=(F_0(x)-F_1(x))/\rho(x)`: the solution of
    :math:`-(\rho D')'=p_1-p_0` with zero flux at :math:`\pm\infty` (claim C20.5). It equals :math:`\bar v`."""
    x = as_tensor(x, "x", dtype=p0.dtype, device=p0.device)
    return cdf_difference_1d(p0, p1, x) / time_averaged_density_1d(p0, p1, x, **quad)


def _grid(p0: GaussianMixture, p1: GaussianMixture, n: int, width: float) -> torch.Tensor:
    mus = torch.cat([p0.means[:, 0], p1.means[:, 0]])
    sd = torch.cat([p0.covariances()[:, 0, 0], p1.covariances()[:, 0, 0]]).sqrt().max()
    return torch.linspace((mus.min() - width * sd).item(), (mus.max() + width * sd).item(), n, dtype=p0.dtype, device=p0.device)


def optimal_critic_value_1d(p0: GaussianMixture, p1: GaussianMixture, *, n: int = 4001, width: float = 9.0) -> torch.Tensor:
    r"""The minimum of the critic objective, :math:`J^*=-\tfrac12\int(F_0-F_1)^2/\rho\,dx` (trapezoid on ``n`` points)."""
    _check_pair(p0, p1)
    x = _grid(p0, p1, n, width)
    diff = cdf_difference_1d(p0, p1, x)
    return -0.5 * torch.trapezoid(diff**2 / time_averaged_density_1d(p0, p1, x), x)


def critic_objective_1d(D: Critic, p0: GaussianMixture, p1: GaussianMixture, *, n: int = 4001, width: float = 9.0):
    r"""The population critic objective :math:`J(D)=\tfrac12\int\rho\,D'^2\,dx-\int D\,(p_1-p_0)\,dx`, which is
    the expectation of :func:`critic_loss` with :math:`t\sim U[0,1]`, by the trapezoid rule on ``n`` points.

    Returns ``(J, excess)`` with ``excess`` :math:`=\tfrac12\int\rho\,(D'-D^{*\prime})^2\,dx`; the identity
    :math:`J(D)-J^*=` ``excess`` (claim C20.5) holds for every ``D`` exactly when :math:`D^*` is optimal.
    """
    _check_pair(p0, p1)
    x = _grid(p0, p1, n, width)
    rho = time_averaged_density_1d(p0, p1, x)
    dens = torch.exp(p1.log_prob(x[:, None])) - torch.exp(p0.log_prob(x[:, None]))
    Dx = D(x[:, None]).detach()
    g = critic_gradient(D, x[:, None], create_graph=False)[:, 0]
    J = 0.5 * torch.trapezoid(rho * g**2, x) - torch.trapezoid(Dx * dens, x)
    ustar = cdf_difference_1d(p0, p1, x) / rho
    return J, 0.5 * torch.trapezoid(rho * (g - ustar) ** 2, x)


# ---------------------------------------------------------------------------------------------------
# the two generator schemes on the affine Gaussian generator g(z) = a + b z
# ---------------------------------------------------------------------------------------------------
def scheme_t0(a: float, b: float, p1: GaussianMixture, eps: float, steps: int, *, hermite: int = 8) -> np.ndarray:
    r"""The article's scheme (6) with the exact time-dependent ReFlow field taken at :math:`t=0`, on the affine
    generator :math:`g(z)=a+bz` (1-D): each step evaluates :func:`reflow_velocity` for the current generator law
    :math:`p_0=\mathcal N(a,b^2)` at :math:`t=0` on Gauss–Hermite nodes :math:`z`, forms the targets
    :math:`y(z)=g(z)+\epsilon\,v^*(g(z),0)` and solves the argmin of (6), the least-squares fit of :math:`a+bz` to
    :math:`y` under :math:`z\sim\mathcal N(0,1)`: :math:`a\leftarrow\mathbb E y`, :math:`b\leftarrow\mathbb E[zy]` (exact:
    the nodes integrate polynomials of degree :math:`\le 2\,\text{hermite}-1`, and the targets are affine in
    :math:`z` because :math:`v^*(x,0)=\mathbb E_{p_1}x_1-x`, C20.7). Returns the path of :math:`(a,b)`, shape
    (steps + 1, 2); C20.7 predicts :math:`b_n=(1-\epsilon)^nb_0`."""
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    z, w = np.polynomial.hermite_e.hermegauss(hermite)
    z = torch.tensor(z, dtype=torch.float64, device=p1.device)
    w = torch.tensor(w / math.sqrt(2 * math.pi), dtype=torch.float64, device=p1.device)
    path = [(a, b)]
    for _ in range(steps):
        p0 = GaussianMixture(torch.ones(1, dtype=torch.float64, device=p1.device), [[a]], [max(b * b, 1e-300)])
        x = (a + b * z)[:, None]
        y = (x + eps * reflow_velocity(p0, p1, x, 0.0))[:, 0]
        a, b = (w * y).sum().item(), (w * z * y).sum().item()
        path.append((a, b))
    return np.array(path)


def scheme_averaged(a: float, b: float, p1: GaussianMixture, eps: float, steps: int, *, hermite: int = 128, **quad) -> np.ndarray:
    r"""Scheme (6) with the time-independent gradient field :math:`v=\nabla D^*` of the optimal critic for the
    current generator law :math:`p_0=\mathcal N(a,b^2)` (1-D), re-solved at every step. On the affine generator
    the argmin of (6) is :math:`a\leftarrow a+\epsilon\,\mathbb E[D^{*\prime}(a+bz)]`,
    :math:`b\leftarrow b+\epsilon\,\mathbb E[z\,D^{*\prime}(a+bz)]` (Gauss–Hermite in :math:`z`), which is also a
    gradient step on the WGAN generator loss :math:`\mathbb E[-D^*(g(z))]`. Returns the path of
    :math:`(a,b)`, shape (steps + 1, 2). The field :math:`D^{*\prime}(a+bz)` is not a polynomial in :math:`z`:
    ``hermite`` = 128 nodes agree with adaptive quadrature to 1e-10 on one step (32 nodes missed by 1e-5
    relative, ``tests/test_wgan.py``)."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    z, w = np.polynomial.hermite_e.hermegauss(hermite)
    z = torch.tensor(z, dtype=torch.float64, device=p1.device)
    w = torch.tensor(w / math.sqrt(2 * math.pi), dtype=torch.float64, device=p1.device)
    path = [(a, b)]
    for _ in range(steps):
        p0 = GaussianMixture(torch.ones(1, dtype=torch.float64, device=p1.device), [[a]], [b**2])
        u = optimal_critic_gradient_1d(p0, p1, a + b * z, **quad)
        a, b = a + eps * (w * u).sum().item(), b + eps * (w * z * u).sum().item()
        path.append((a, b))
    return np.array(path)


# ---------------------------------------------------------------------------------------------------
# the two generator schemes on a non-parametric generator: a 1-D particle cloud
# ---------------------------------------------------------------------------------------------------
def cloud_mixture_1d(x, bandwidth: float) -> GaussianMixture:
    r"""The law of a 1-D particle cloud ``x`` (n,) smoothed by a Gaussian kernel of standard deviation ``bandwidth``:
    the mixture :math:`\tfrac1n\sum_i\mathcal N(x_i,h^2)`, one component per particle (a kernel density estimate)."""
    x = as_tensor(x, "x", dtype=torch.float64)
    if x.ndim != 1 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n,) with n >= 1, got {tuple(x.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    n = x.shape[0]
    return GaussianMixture(torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device), x[:, None],
                           torch.full((n, 1), bandwidth**2, dtype=x.dtype, device=x.device))


def scheme_particles(x, p1: GaussianMixture, eps: float, steps: int, *, field: str = "t0", bandwidth: float = 0.1,
                     **quad) -> torch.Tensor:
    r"""Scheme (6) on a non-parametric generator, a 1-D cloud of particles: every particle is its own parameter, so
    the argmin of (6) is exactly :math:`x_i\leftarrow x_i+\epsilon\,v(x_i)`. The field is computed afresh at every
    step for the current cloud's law, smoothed by :func:`cloud_mixture_1d`:

    * ``field="t0"``: the exact ReFlow field at :math:`t=0`, :func:`reflow_velocity` (C20.7: :math:`\mathbb E_{p_1}x_1-x`,
      whatever the cloud);
    * ``field="averaged"``: the gradient of the optimal critic, :func:`optimal_critic_gradient_1d`
      (:math:`(F_0-F_1)/\rho`, C20.5); ``quad`` goes to its time quadrature.

    ``x`` (n,) is the initial cloud on ``p1``'s device. Returns the path of the cloud, shape (steps + 1, n)."""
    if field not in ("t0", "averaged"):
        raise ValueError(f"field must be 't0' or 'averaged', got {field!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not isinstance(p1, GaussianMixture):
        raise TypeError(f"p1 must be a diffmath.GaussianMixture, got {type(p1).__name__}")
    if p1.dim != 1:
        raise ValueError(f"p1 must be one-dimensional, got d = {p1.dim}")
    x = as_tensor(x, "x", dtype=p1.dtype, device=p1.device)
    cloud_mixture_1d(x, bandwidth)  # validates x and the bandwidth
    path = [x]
    for _ in range(steps):
        p0 = cloud_mixture_1d(x, bandwidth)
        if field == "t0":
            v = reflow_velocity(p0, p1, x[:, None], 0.0)[:, 0]
        else:
            v = optimal_critic_gradient_1d(p0, p1, x, **quad)
        x = x + eps * v
        path.append(x)
    return torch.stack(path)


__all__ = [
    "cdf_difference_1d",
    "cloud_mixture_1d",
    "critic_gradient",
    "critic_loss",
    "critic_mlp",
    "critic_objective_1d",
    "fit_critic",
    "gauss_legendre",
    "generator_mlp",
    "generator_step_gradients",
    "interpolant_mixture",
    "interpolate",
    "optimal_critic_gradient_1d",
    "optimal_critic_value_1d",
    "reflow_gradient_loss",
    "reflow_velocity",
    "scheme_averaged",
    "scheme_particles",
    "scheme_t0",
    "time_averaged_density_1d",
    "time_averaged_field",
    "time_integrated",
    "wgan_gp_loss",
]
