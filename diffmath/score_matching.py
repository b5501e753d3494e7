r"""Score matching (SM) and conditional (denoising) score matching (CSM), article 18.

At one noise level, :math:`x_t = \alpha x_0 + \sigma\varepsilon`, a score model :math:`s_\theta` is fit by

.. math::

    L_{SM}(\theta) = \mathbb E_{x_t}\|\nabla\log p_t(x_t) - s_\theta(x_t)\|^2 \quad\text{(article 18, eq. 1)},\qquad
    L_{CSM}(\theta) = \mathbb E_{x_0,\varepsilon}\|{-\varepsilon/\sigma} - s_\theta(x_t)\|^2 \quad\text{(eq. 4)},

where :math:`-\varepsilon/\sigma = \nabla_{x_t}\log p(x_t\mid x_0)` (claim C0.5). Vincent (2011) and the
article show :math:`L_{CSM} - L_{SM} = C_t`, a constant (claim C18.4); for the Gaussian kernel

.. math::

    C_t = \mathbb E\|{-\varepsilon/\sigma} - \nabla\log p_t(x_t)\|^2
        = \frac{\alpha^2}{\sigma^4}\,\mathbb E_{x_t}\,\mathrm{tr}\,\mathrm{Cov}(x_0\mid x_t),

which for Gaussian data :math:`\mathcal N(\mu,\Sigma)` is :math:`d/\sigma^2 - \mathrm{tr}\big((\alpha^2\Sigma+\sigma^2I)^{-1}\big)`.

Everything here takes the exact oracle (a :class:`~diffmath.mixture.GaussianMixture`) and any
model callable ``model(x_t) -> s`` (a torch module or function, at this fixed noise level).
Per-sample losses are returned *paired* (the same :math:`x_0,\varepsilon` for both), so that
differences have small standard errors.
"""

from __future__ import annotations

from typing import Callable

import torch

from diffmath._validation import as_tensor, spd_eigh
from diffmath.mixture import GaussianMixture

Model = Callable[[torch.Tensor], torch.Tensor]


def sample_pairs(gm: GaussianMixture, alpha: float, sigma: float, n: int, generator: torch.Generator):
    """Draw :math:`x_0\\sim p_0`, :math:`\\varepsilon\\sim\\mathcal N(0,I)`; return ``(x0, eps, x_t)``."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x0 = gm.sample(n, generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return x0, eps, alpha * x0 + sigma * eps


def conditional_score(eps: torch.Tensor, sigma: float) -> torch.Tensor:
    """The CSM target :math:`\\nabla_{x_t}\\log p(x_t\\mid x_0) = -\\varepsilon/\\sigma` (claim C0.5)."""
    return -eps / sigma


def per_sample_losses(model: Model, gm: GaussianMixture, alpha: float, sigma: float, x0, eps):
    """Paired per-sample losses ``(sm, csm)``, each of shape (n,):

    ``sm`` :math:`= \\|\\nabla\\log p_t(x_t) - s_\\theta(x_t)\\|^2` with the exact score,
    ``csm`` :math:`= \\|{-\\varepsilon/\\sigma} - s_\\theta(x_t)\\|^2`, at :math:`x_t=\\alpha x_0+\\sigma\\varepsilon`.
    Differentiable in the model's parameters.
    """
    xt = alpha * x0 + sigma * eps
    s = model(xt)
    sm = ((gm.score_at(xt, alpha, sigma) - s) ** 2).sum(-1)
    csm = ((conditional_score(eps, sigma) - s) ** 2).sum(-1)
    return sm, csm


def gap_per_sample(gm: GaussianMixture, alpha: float, sigma: float, xt: torch.Tensor) -> torch.Tensor:
    """:math:`\\frac{\\alpha^2}{\\sigma^4}\\mathrm{tr}\\,\\mathrm{Cov}(x_0\\mid x_t)` at each point: its mean over
    :math:`x_t\\sim p_t` is :math:`C_t` (the inner expectation is exact, only the outer one is sampled)."""
    return alpha**2 / sigma**4 * gm.posterior_covariance_trace(xt, alpha, sigma)


def gap_gaussian(cov, alpha: float, sigma: float) -> torch.Tensor:
    """:math:`C_t = d/\\sigma^2 - \\mathrm{tr}\\big((\\alpha^2\\Sigma+\\sigma^2 I)^{-1}\\big)` for data :math:`\\mathcal N(\\mu,\\Sigma)`."""
    C = as_tensor(cov, "cov")
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"cov must be a square matrix, got shape {tuple(C.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    lam, _ = spd_eigh(C, "cov")
    d = C.shape[0]
    return d / sigma**2 - (1 / (alpha**2 * lam + sigma**2)).sum()


def affine_losses_gaussian(mean, cov, alpha: float, sigma: float, A: torch.Tensor, b: torch.Tensor):
    r"""Exact ``(L_SM, L_CSM)`` for Gaussian data :math:`\mathcal N(\mu,\Sigma)` and the affine model
    :math:`s(x) = Ax + b`; differentiable in ``A`` and ``b``.

    With :math:`S = \alpha^2\Sigma + \sigma^2 I` and :math:`x_0 = \mu + \Sigma^{1/2}u`: the SM residual is
    :math:`(A+S^{-1})(x_t - \alpha\mu) + A\alpha\mu + b`, so
    :math:`L_{SM} = \|A\alpha\mu + b\|^2 + \mathrm{tr}\big((A+S^{-1})S(A+S^{-1})^\top\big)`; the CSM residual
    :math:`-\varepsilon/\sigma - A(\alpha x_0+\sigma\varepsilon) - b` is affine in the independent
    standard normals :math:`u,\varepsilon`, so
    :math:`L_{CSM} = \|A\alpha\mu+b\|^2 + \alpha^2\|A\Sigma^{1/2}\|_F^2 + \|I/\sigma + \sigma A\|_F^2`.
    """
    mu = as_tensor(mean, "mean")
    C = as_tensor(cov, "cov", dtype=mu.dtype)
    d = mu.shape[0]
    if tuple(C.shape) != (d, d) or tuple(A.shape) != (d, d) or tuple(b.shape) != (d,):
        raise ValueError("need mean (d,), cov (d, d), A (d, d), b (d,)")
    eye = torch.eye(d, dtype=mu.dtype, device=mu.device)
    S = alpha**2 * C + sigma**2 * eye
    Sinv = torch.linalg.inv(S)
    bias = A @ (alpha * mu) + b
    M = A + Sinv
    sm = bias @ bias + torch.trace(M @ S @ M.T)
    lam, U = torch.linalg.eigh(C)
    root = (U * lam.clamp_min(0).sqrt()) @ U.T
    csm = bias @ bias + alpha**2 * ((A @ root) ** 2).sum() + ((eye / sigma + sigma * A) ** 2).sum()
    return sm, csm


def plugin_score(xt: torch.Tensor, x0_samples: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    r"""The plug-in estimator of the score from article 18, eq. (3), with N draws of :math:`x_0`:

    .. math:: \hat s(x_t) = \frac{\sum_i \nabla_{x_t} p(x_t\mid x_0^{(i)})}{\sum_i p(x_t\mid x_0^{(i)})}
              = \sum_i \bar w_i\,\frac{\alpha x_0^{(i)} - x_t}{\sigma^2},\quad
              \bar w_i \propto \mathcal N(x_t;\alpha x_0^{(i)},\sigma^2 I).

    A ratio of two sample means: consistent, but biased at finite N (claim C18.5).
    ``xt`` (m, d); ``x0_samples`` (m, N, d) (one set per point) or (N, d) (shared).
    """
    if x0_samples.ndim == 2:
        x0_samples = x0_samples.expand(xt.shape[0], -1, -1)
    diff = alpha * x0_samples - xt[:, None, :]  # (m, N, d)
    w = torch.softmax(-(diff**2).sum(-1) / (2 * sigma**2), dim=1)  # (m, N)
    return (w[..., None] * diff).sum(1) / sigma**2


class AffineScore(torch.nn.Module):
    """The affine score model :math:`s(x) = Ax + b` (float64)."""

    def __init__(self, d: int, *, generator: torch.Generator | None = None, scale: float = 0.5):
        super().__init__()
        self.A = torch.nn.Parameter(scale * torch.randn(d, d, generator=generator, dtype=torch.float64))
        self.b = torch.nn.Parameter(scale * torch.randn(d, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A.T + self.b


def mlp_score(d: int, width: int = 16, *, seed: int = 0) -> torch.nn.Module:
    """A small tanh MLP score model :math:`\\mathbb R^d\\to\\mathbb R^d` (float64), seeded."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.Tanh(), torch.nn.Linear(width, d)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / max(1, p.shape[-1]) ** 0.5)
    return net
