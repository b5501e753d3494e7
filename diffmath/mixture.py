r"""Gaussian mixtures: the exact oracle of the toy lab.

.. math::

    p(x) = \sum_{k=1}^K \pi_k\,\mathcal N(x;\mu_k,\Sigma_k).

Diffused by :math:`x_t = \alpha x_0 + \sigma\varepsilon`, :math:`\varepsilon\sim\mathcal N(0,I)`
independent of :math:`x_0`, a mixture stays a mixture (claim C0.1):

.. math::

    p_t(x) = \sum_k \pi_k\,\mathcal N(x;\alpha\mu_k, S_k),\qquad S_k = \alpha^2\Sigma_k + \sigma^2 I.

Each :math:`\Sigma_k = U_k\,\mathrm{diag}(\lambda_k)\,U_k^\top` is stored by its eigendecomposition,
so :math:`S_k = U_k\,\mathrm{diag}(\alpha^2\lambda_k+\sigma^2)\,U_k^\top` costs nothing at any noise
level and per-point noise levels stay cheap. With responsibilities
:math:`r_k(x) = \pi_k\mathcal N(x;\alpha\mu_k,S_k)/p_t(x)` (computed by log-sum-exp):

* score (C0.2): :math:`\nabla\log p_t(x) = -\sum_k r_k(x) S_k^{-1}(x-\alpha\mu_k)`;
* exact denoiser (C0.3): :math:`\mathbb E[x_0\mid x_t = x] = \sum_k r_k(x)\big(\mu_k + \alpha\Sigma_k S_k^{-1}(x-\alpha\mu_k)\big)`,
  the responsibility-weighted posterior means of the components;
* Tweedie (C0.4): :math:`\nabla\log p_t(x) = (\alpha\,\mathbb E[x_0\mid x_t=x] - x)/\sigma^2`.

All computations are batched over leading axes and chunked so that memory stays bounded for
``d`` up to 1024 and ``K`` up to 64.

**Low-rank mixtures.** :meth:`GaussianMixture.low_rank` builds a mixture whose components live on affine
subspaces, :math:`\Sigma_k = A_kA_k^\top` of rank :math:`r_k<d` (data on a union of subspaces, a
manifold-like law). Its covariances have exact zero eigenvalues; everything above stays closed form for
:math:`\sigma>0` (:math:`S_k` is invertible, and the denoiser's :math:`\alpha\Sigma_kS_k^{-1}` is 0 across the
subspace), while the clean law has no density: :meth:`~GaussianMixture.log_prob`,
:meth:`~GaussianMixture.score`, :meth:`~GaussianMixture.responsibilities` and ``score_at`` at
:math:`\sigma = 0` raise (``singular`` is True).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from diffmath._validation import as_tensor, common_dtype_device, count, diffusion_levels, noise_level, points, spd_eigh

_CHUNK_ELEMENTS = 1 << 20  # elements of one (chunk, K, d) intermediate: small enough to stay in cache


_LOG_TINY = -700.0  # exp(-700) ~ 1e-304 is still a normal float64; anything below is set to 0


def _log_normalise(logc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Responsibilities ``softmax(logc, 1)`` and ``logsumexp(logc, 1)``, without subnormal numbers.

    Terms more than 700 nats below the largest are dropped (they change a responsibility by less
    than 1e-304). Keeping them would fill the arrays with subnormal floats, which slow every later
    operation on the CPU by one or two orders of magnitude.
    """
    top = logc.amax(1, keepdim=True)
    shifted = logc - top
    e = torch.exp(shifted.masked_fill(shifted < _LOG_TINY, -math.inf))
    total = e.sum(1, keepdim=True)
    return e / total, (top + torch.log(total)).squeeze(1)


class GaussianMixture:
    """A mixture of Gaussians with full, diagonal or isotropic covariances.

    Parameters
    ----------
    weights : (K,) nonnegative, summing to 1
    means : (K, d)
    covs : (K, d, d) symmetric positive-definite matrices, or (K, d) diagonal variances,
        or (K,) isotropic variances

    Inputs may be torch tensors, numpy arrays or nested lists. The mixture computes in float32 when
    all of its parameters were given in float32, in float64 otherwise, on the device of its
    parameters; every output is a tensor of that dtype on that device.
    """

    def __init__(self, weights, means, covs):
        dtype, device = common_dtype_device(weights, means, covs, names="weights, means and covs")
        w = as_tensor(weights, "weights", dtype=dtype, device=device)
        mu = as_tensor(means, "means", dtype=dtype, device=device)
        c = as_tensor(covs, "covs", dtype=dtype, device=device)

        if w.ndim != 1 or w.shape[0] == 0:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(w.shape)}")
        K = w.shape[0]
        if mu.ndim != 2 or mu.shape[0] != K or mu.shape[1] == 0:
            raise ValueError(f"means must have shape (K, d) = ({K}, d) to match weights, got {tuple(mu.shape)}")
        d = mu.shape[1]
        neg = (w < 0).nonzero()
        if len(neg):
            i = neg[0].item()
            raise ValueError(f"weights must be nonnegative: weights[{i}] = {w[i].item():.6g}")
        total = w.sum().item()
        tol = 1e-5 if dtype == torch.float32 else 1e-9
        if abs(total - 1.0) > tol:
            raise ValueError(f"weights must sum to 1 (within {tol:g}), got sum {total:.12g}")

        evecs: Optional[torch.Tensor]
        if c.ndim == 1:
            if c.shape[0] != K:
                raise ValueError(f"isotropic covs must have shape (K,) = ({K},), got {tuple(c.shape)}")
            self._check_positive(c, "covs (isotropic variances)")
            evals, evecs, kind = c[:, None].expand(K, d).clone(), None, "isotropic"
        elif c.ndim == 2:
            if tuple(c.shape) != (K, d):
                raise ValueError(f"diagonal covs must have shape (K, d) = ({K}, {d}), got {tuple(c.shape)}")
            self._check_positive(c, "covs (diagonal variances)")
            evals, evecs, kind = c.clone(), None, "diagonal"
        elif c.ndim == 3:
            if tuple(c.shape) != (K, d, d):
                raise ValueError(f"full covs must have shape (K, d, d) = ({K}, {d}, {d}), got {tuple(c.shape)}")
            evals, evecs = spd_eigh(c, "covs")
            kind = "full"
        else:
            raise ValueError(f"covs must have shape (K,), (K, d) or (K, d, d), got {tuple(c.shape)}")
        self._set(w, mu, evals, evecs, kind)

    # -- construction helpers ------------------------------------------------------------------
    @staticmethod
    def _check_positive(c: torch.Tensor, name: str) -> None:
        bad = (c <= 0).nonzero()
        if len(bad):
            idx = tuple(bad[0].tolist())
            raise ValueError(f"{name} must be > 0: entry {idx} = {c[idx].item():.6g}")

    def _set(self, w, mu, evals, evecs, kind) -> None:
        self.weights = w
        self.means = mu
        self.eigenvalues = evals  # (K, d): eigenvalues of each covariance
        self.eigenvectors = evecs  # (K, d, d) columns, or None for diagonal/isotropic (axes)
        self.cov_type = kind
        self.singular = bool((evals == 0).any())  # a low-rank mixture: no density at sigma = 0
        self._log_weights = torch.log(w)
        self._stack = None
        self._prec = None

    @classmethod
    def _from_parts(cls, w, mu, evals, evecs, kind) -> "GaussianMixture":
        gm = cls.__new__(cls)
        gm._set(w, mu, evals, evecs, kind)
        return gm

    @classmethod
    def low_rank(cls, weights, means, factors) -> "GaussianMixture":
        r"""A mixture of Gaussians on affine subspaces: component :math:`k` is :math:`\mu_k + A_kz`,
        :math:`z\sim\mathcal N(0, I_r)`, so :math:`\Sigma_k = A_kA_k^\top` (rank at most :math:`r`).

        ``factors`` (K, d, r) with r <= d. The eigenvalues of :math:`A_kA_k^\top` below
        :math:`d\,\epsilon_{\rm mach}\lambda_{\max}` are set to exactly 0, so the denoiser maps the directions across
        each subspace to the mean exactly. See the module docstring for what is defined at :math:`\sigma = 0`.
        """
        dtype, device = common_dtype_device(weights, means, factors, names="weights, means and factors")
        A = as_tensor(factors, "factors", dtype=dtype, device=device)
        mu = as_tensor(means, "means", dtype=dtype, device=device)
        if A.ndim != 3 or mu.ndim != 2 or A.shape[0] != mu.shape[0] or A.shape[1] != mu.shape[1] or A.shape[2] < 1:
            raise ValueError(f"factors must have shape (K, d, r) matching means (K, d), got {tuple(A.shape)} and {tuple(mu.shape)}")
        if A.shape[2] > A.shape[1]:
            raise ValueError(f"factors must have rank r <= d, got r = {A.shape[2]} > d = {A.shape[1]}")
        C = A @ A.transpose(-1, -2)
        evals, evecs = spd_eigh(C, "factors @ factors^T", allow_singular=True)
        floor = A.shape[1] * torch.finfo(dtype).eps * evals[:, -1:].abs()
        evals = torch.where(evals <= floor, torch.zeros_like(evals), evals)
        if (evals[:, -1] == 0).any():
            raise ValueError("a factor is zero: every component needs a covariance of rank >= 1")
        probe = cls(weights, mu, torch.ones(A.shape[0], dtype=dtype, device=device))  # validates the weights
        return cls._from_parts(probe.weights, mu, evals, evecs, "full")

    def _require_density(self, what: str) -> None:
        if self.singular:
            raise ValueError(f"{what} does not exist for a low-rank mixture at sigma = 0 (its components have no density); "
                             "use the diffused law (diffuse, score_at, denoise with sigma > 0)")

    # -- basic properties ------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(K={self.n_components}, d={self.dim}, covs={self.cov_type}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    def to(self, device) -> "GaussianMixture":
        """The same mixture on another device."""
        device = torch.device(device)
        ev = None if self.eigenvectors is None else self.eigenvectors.to(device)
        return self._from_parts(
            self.weights.to(device), self.means.to(device), self.eigenvalues.to(device), ev, self.cov_type
        )

    def covariances(self) -> torch.Tensor:
        """The component covariances as full (K, d, d) matrices."""
        if self.eigenvectors is None:
            return torch.diag_embed(self.eigenvalues)
        U = self.eigenvectors
        return (U * self.eigenvalues[:, None, :]) @ U.transpose(-1, -2)

    def mean(self) -> torch.Tensor:
        """The mixture's mean :math:`\\sum_k\\pi_k\\mu_k`."""
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """The mixture's covariance :math:`\\sum_k\\pi_k(\\Sigma_k+\\mu_k\\mu_k^\\top) - mm^\\top`."""
        m = self.mean()
        second = torch.einsum("k,kij->ij", self.weights, self.covariances())
        second = second + torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return second - torch.outer(m, m)

    # -- the diffused mixture --------------------------------------------------------------------
    def diffuse(self, alpha, sigma) -> "GaussianMixture":
        """The exact law of :math:`\\alpha x_0 + \\sigma\\varepsilon`: means :math:`\\alpha\\mu_k`,
        covariances :math:`\\alpha^2\\Sigma_k + \\sigma^2 I` (claim C0.1).

        ``alpha`` and ``sigma`` are numbers (or 0-d tensors), both >= 0 and not both 0.
        """
        a, s = diffusion_levels(alpha, sigma, dtype=self.dtype, device=self.device)
        return self._from_parts(
            self.weights, a * self.means, a**2 * self.eigenvalues + s**2, self.eigenvectors, self.cov_type
        )

    # -- per-point quadratic forms ---------------------------------------------------------------
    # Layout: points first, components second, (n, K, d). With the eigenvectors concatenated as
    # one (d, K*d) matrix, the K rotations U_k^T (x - alpha mu_k) are a single GEMM, and so is the
    # responsibility-weighted sum over k of U_k z_k (one (n, K*d) @ (K*d, d) product).
    def _chunk_size(self) -> int:
        return max(1, _CHUNK_ELEMENTS // (self.n_components * self.dim))

    def _stacked(self):
        if self._stack is None and self.eigenvectors is not None:
            K, d = self.n_components, self.dim
            U = self.eigenvectors
            self._stack = (
                U.permute(1, 0, 2).reshape(d, K * d),  # x @ this = [x U_1, ..., x U_K]
                U.transpose(-1, -2).reshape(K * d, d),  # z @ this = sum_k z_k U_k^T
                torch.einsum("ki,kij->kj", self.means - self.mean(), U),  # (mu_k - c)^T U_k, (K, d)
                self.mean(),  # c: subtracting it first keeps x U_k - mu_k U_k well conditioned
            )
        return self._stack

    def _components(self, x: torch.Tensor, alpha, sigma):
        r"""For points x (n, d) at levels alpha, sigma (0-d or (n, 1)):

        ``logc`` (n, K): :math:`\log\pi_k + \log\mathcal N(x;\alpha\mu_k,S_k)`;
        ``w`` (n, K, d): :math:`U_k^\top S_k^{-1}(x-\alpha\mu_k)`, in each component's eigenbasis
        (:math:`S_k` has eigenvalues :math:`\alpha^2\lambda_k+\sigma^2`).
        """
        n, K, d = x.shape[0], self.n_components, self.dim
        a = alpha if alpha.ndim == 0 else alpha[:, :, None]  # (n, 1, 1)
        s = sigma if sigma.ndim == 0 else sigma[:, :, None]
        if self.eigenvectors is None:
            y = x[:, None, :] - a * self.means[None]
        else:
            forward, _, off_rot, centre = self._stacked()
            y = ((x - alpha * centre) @ forward).view(n, K, d) - a * off_rot[None]
        ev = a**2 * self.eigenvalues[None] + s**2  # (1|n, K, d)
        w = y / ev  # S_k^{-1}(x - alpha mu_k) in the eigenbasis
        maha = torch.einsum("nkd,nkd->nk", y, w)
        logdet = torch.log(ev).sum(-1)
        logc = self._log_weights[None] - 0.5 * (d * math.log(2 * math.pi) + logdet + maha)
        return logc, w

    def _sum_rotated(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_k U_k z_k` for z (n, K, d)."""
        if self.eigenvectors is None:
            return z.sum(1)
        _, backward, _, _ = self._stacked()
        return z.reshape(z.shape[0], -1) @ backward

    # The mixture at its own parameters (log_prob, score, responsibilities) uses the precision
    # matrices P_k = Sigma_k^{-1}, stacked as one (d, K*d) matrix: a single GEMM gives every
    # P_k (x - c), and the Mahalanobis terms follow as (x - mu_k) . P_k (x - mu_k) without
    # expanding the square (c, the mixture's mean, keeps the subtractions well conditioned).
    # Built once per mixture object (K d^3 flops); diffuse() returns a new object with its own.
    def _precision_stack(self):
        if self._prec is None:
            K, d = self.n_components, self.dim
            centre = self.mean()
            offsets = self.means - centre  # mu_k - c
            U = self.eigenvectors  # full covariances only: _components_own handles the axis-aligned ones
            P = (U / self.eigenvalues[:, None, :]) @ U.transpose(-1, -2)
            b = torch.einsum("kij,kj->ki", P, offsets)  # P_k (mu_k - c)
            self._prec = (P.permute(1, 0, 2).reshape(d, K * d), b.reshape(1, K * d), offsets, centre)
        return self._prec

    def _components_own(self, x: torch.Tensor):
        r"""``logc`` (n, K) and ``z`` (n, K, d) = :math:`\Sigma_k^{-1}(x-\mu_k)` at the mixture's own parameters."""
        n, K, d = x.shape[0], self.n_components, self.dim
        if self.eigenvectors is None:  # no GEMM to save: the elementwise form is exact and cheap
            one = torch.ones((), dtype=self.dtype, device=self.device)
            logc, w = self._components(x, one, one * 0)
            return logc, w
        stacked, b, offsets, centre = self._precision_stack()
        xc = x - centre
        z = torch.addmm(b, xc, stacked, beta=-1).view(n, K, d)  # P_k (x - c) - P_k (mu_k - c)
        maha = torch.einsum("nkd,nd->nk", z, xc) - torch.einsum("nkd,kd->nk", z, offsets)
        logdet = torch.log(self.eigenvalues).sum(-1)
        logc = self._log_weights[None] - 0.5 * (d * math.log(2 * math.pi) + logdet[None] + maha)
        return logc, z

    def _map(self, fn, x, *levels):
        """Apply fn(x_chunk, *level_chunks) over chunks of flattened points; restore batch shape."""
        batch = x.shape[:-1]
        flat = x.reshape(-1, self.dim)
        flat_levels = [lv.reshape(-1, 1) if lv.ndim > 0 else lv for lv in levels]
        size = self._chunk_size()
        outs = []
        for start in range(0, flat.shape[0], size):
            sl = slice(start, start + size)
            outs.append(fn(flat[sl], *[lv[sl] if lv.ndim > 0 else lv for lv in flat_levels]))
        if not outs:
            outs = [fn(flat, *flat_levels)]
        out = torch.cat(outs, 0)
        return out.reshape(*batch, *out.shape[1:])

    def _levels(self, x, alpha, sigma, *, sigma_positive: bool):
        batch = x.shape[:-1]
        a = noise_level(alpha, "alpha", like=x, batch_shape=batch, positive=False)
        s = noise_level(sigma, "sigma", like=x, batch_shape=batch, positive=sigma_positive)
        if a.ndim == 0 and s.ndim > 0:
            a = a.expand_as(s)
        if s.ndim == 0 and a.ndim > 0:
            s = s.expand_as(a)
        if not sigma_positive and ((a == 0) & (s == 0)).any():
            raise ValueError("alpha and sigma cannot both be 0")
        return a, s

    def _x(self, x) -> torch.Tensor:
        return points(x, "x", d=self.dim, dtype=self.dtype, device=self.device)

    # -- density, score, responsibilities ----------------------------------------------------------
    def log_prob(self, x) -> torch.Tensor:
        """:math:`\\log p(x)` for x of shape (..., d); returns shape (...)."""
        self._require_density("log p(x)")
        return self._map(lambda xc: _log_normalise(self._components_own(xc)[0])[1], self._x(x))

    def responsibilities(self, x) -> torch.Tensor:
        """:math:`r_k(x) = \\pi_k\\mathcal N(x;\\mu_k,\\Sigma_k)/p(x)`; shape (..., K)."""
        self._require_density("the responsibilities r_k(x)")
        return self._map(lambda xc: _log_normalise(self._components_own(xc)[0])[0], self._x(x))

    def score(self, x) -> torch.Tensor:
        """:math:`\\nabla_x\\log p(x) = -\\sum_k r_k(x)\\Sigma_k^{-1}(x-\\mu_k)` (claim C0.2); shape (..., d)."""
        self._require_density("the score")

        def fn(xc):
            logc, z = self._components_own(xc)
            return -torch.einsum("nk,nkd->nd", _log_normalise(logc)[0], z)

        return self._map(fn, self._x(x))

    def _score_chunk(self, xc, a, s):
        logc, w = self._components(xc, a, s)
        r = _log_normalise(logc)[0]
        return -self._sum_rotated(w * r[..., None])

    def score_at(self, x, alpha, sigma) -> torch.Tensor:
        """Score of the diffused law, :math:`\\nabla\\log p_t(x)`, with per-point levels allowed.

        Equal to ``self.diffuse(alpha, sigma).score(x)``; computed in each component's eigenbasis,
        so no matrix is inverted per noise level (the tests compare the two routes).
        """
        x = self._x(x)
        a, s = self._levels(x, alpha, sigma, sigma_positive=False)
        if self.singular and (s == 0).any():
            self._require_density("the score")
        return self._map(self._score_chunk, x, a, s)

    # -- the exact denoiser ----------------------------------------------------------------------
    def denoise(self, x, alpha, sigma) -> torch.Tensor:
        """The exact denoiser :math:`\\mathbb E[x_0\\mid \\alpha x_0+\\sigma\\varepsilon = x]` (claim C0.3).

        ``alpha`` (>= 0) and ``sigma`` (> 0) are numbers or tensors of x's batch shape.
        Computed from the component posteriors, not from the score: Tweedie's formula (C0.4) is
        checked against it, not used by it.
        """
        x = self._x(x)
        a, s = self._levels(x, alpha, sigma, sigma_positive=True)
        return self._map(self._denoise_chunk, x, a, s)

    def _denoise_chunk(self, xc, a, s):
        logc, w = self._components(xc, a, s)
        r = _log_normalise(logc)[0]  # (n, K)
        a = a if a.ndim == 0 else a[:, :, None]
        # sum_k r_k alpha Sigma_k S_k^{-1} (x - alpha mu_k), in each component's eigenbasis
        shift = self._sum_rotated(w * (r[..., None] * a * self.eigenvalues[None]))
        return r @ self.means + shift

    def posterior(self, x, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior :math:`p(x_0\\mid x_t=x) = \\sum_k r_k\\,\\mathcal N(m_k, P_k)`: returns
        the responsibilities ``r`` (..., K) and the component posterior means ``m`` (..., K, d),
        :math:`m_k = \\mu_k + \\alpha\\Sigma_k S_k^{-1}(x-\\alpha\\mu_k)`.
        """
        x = self._x(x)
        a, s = self._levels(x, alpha, sigma, sigma_positive=True)

        def fn(xc, ac, sc):
            logc, w = self._components(xc, ac, sc)
            r = _log_normalise(logc)[0]
            z = (ac if ac.ndim == 0 else ac[:, :, None]) * self.eigenvalues[None] * w  # (n, K, d)
            if self.eigenvectors is not None:
                z = torch.einsum("kij,nkj->nki", self.eigenvectors, z)
            m = self.means[None] + z
            return torch.cat([r[..., None], m], -1)  # (n, K, 1 + d)

        out = self._map(fn, x, a, s)
        return out[..., 0], out[..., 1:]

    def posterior_covariance_trace(self, x, alpha, sigma) -> torch.Tensor:
        r""":math:`\mathrm{tr}\,\mathrm{Cov}(x_0\mid x_t=x) = \sum_k r_k\big(\mathrm{tr}P_k + \|m_k-\bar m\|^2\big)`,
        shape (...). :math:`P_k = (\Sigma_k^{-1}+\tfrac{\alpha^2}{\sigma^2}I)^{-1}` has eigenvalues
        :math:`\lambda\sigma^2/(\alpha^2\lambda+\sigma^2)`; :math:`\bar m = \mathbb E[x_0\mid x]`
        (the spread of the component means is taken about it, so nothing cancels).
        """
        r, m = self.posterior(x, alpha, sigma)
        a, s = self._levels(self._x(x), alpha, sigma, sigma_positive=True)
        a, s = (a[..., None], s[..., None]) if a.ndim > 0 else (a, s)
        lam = self.eigenvalues
        tr_p = (lam * s**2 / (a**2 * lam + s**2)).sum(-1)  # (..., K)
        mbar = (r[..., None] * m).sum(-2, keepdim=True)
        spread = ((m - mbar) ** 2).sum(-1)
        return (r * (tr_p + spread)).sum(-1)

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` independent draws, shape (n, d). ``generator`` must live on the mixture's device."""
        n = count(n)
        if generator is not None and torch.device(generator.device).type != self.device.type:
            raise ValueError(f"generator is on {generator.device}, the mixture on {self.device}")
        out = torch.empty(n, self.dim, dtype=self.dtype, device=self.device)
        if n == 0:
            return out
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=self.dtype, device=self.device, generator=generator)
        scaled = z * torch.sqrt(self.eigenvalues[comp])
        for k in range(self.n_components):
            idx = (comp == k).nonzero().squeeze(-1)
            if idx.numel() == 0:
                continue
            zk = scaled[idx]
            if self.eigenvectors is not None:
                zk = zk @ self.eigenvectors[k].T
            out[idx] = self.means[k] + zk
        return out
