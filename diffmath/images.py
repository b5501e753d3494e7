r"""Gaussian images: image laws whose score, denoiser and ε-prediction are exact at every noise level.

The toy of chapters 22 and 23 (and the samplers' image oracle). An image is a tensor of shape
``(C, H, W)`` on the torus (periodic boundaries); a batch is ``(..., C, H, W)``. Channels are
independent copies of one covariance (each channel may have its own mean image).

**Gaussian images** (:class:`GaussianImage`): :math:`x_0\sim\mathcal N(\mu,\Sigma)` with
:math:`\Sigma = Q\,\mathrm{diag}(\lambda)\,Q^{*}` for a fast unitary transform :math:`Q` (a *basis*):

* :class:`FourierBasis` — stationary laws (circulant :math:`\Sigma`): :math:`Q^*` is the orthonormal
  2-D DFT and :math:`\lambda(f)` the power spectrum. :func:`power_law_spectrum` gives the
  :math:`1/|f|^\alpha` spectra of natural-image statistics.
* :class:`PolyphaseBasis` — laws invariant under shifts by multiples of ``s`` (periodically
  stationary). In polyphase coordinates :math:`y_r[m] = x[sm + r]` (:math:`r` the position inside an
  :math:`s\times s` block, :math:`m` the block) followed by the low-resolution DFT, :math:`\Sigma` is
  block diagonal: one Hermitian :math:`s^2\times s^2` matrix :math:`M(k)` per low-resolution
  frequency :math:`k`. This covers every stationary law (:meth:`GaussianImage.to_polyphase`) and the
  *block-structured* laws whose block means and within-block details are uncorrelated,
  :math:`P\Sigma(I-P) = 0` with :math:`P` the projector of :mod:`diffmath.resolution`
  (:meth:`GaussianImage.pinched`).

Diffusing by :math:`x_t = \alpha x_0 + \sigma\varepsilon` keeps the basis and maps
:math:`\lambda\mapsto\alpha^2\lambda + \sigma^2`, so with :math:`c = Q^*(x - \alpha\mu)`:

* :math:`\log p_t(x) = -\tfrac12\sum|c|^2/(\alpha^2\lambda+\sigma^2) - \tfrac12\sum\log(2\pi(\alpha^2\lambda+\sigma^2))`;
* score :math:`\nabla\log p_t(x) = -Q\big(c/(\alpha^2\lambda+\sigma^2)\big)`;
* denoiser :math:`\mathbb E[x_0\mid x_t = x] = \mu + Q\big(\alpha\lambda c/(\alpha^2\lambda+\sigma^2)\big)`;

each for the cost of one transform pair (an FFT), with no dense :math:`(HW)\times(HW)` matrix. A
**mixture** of such laws (:class:`ImageMixture`) is a non-Gaussian image law with exact scores and
denoisers (responsibility-weighted, as in :class:`diffmath.mixture.GaussianMixture`).

**Pooling** is linear, so the law of :math:`\mathcal D x_0` is exact (:meth:`GaussianImage.pool`,
:meth:`ImageMixture.pool`): "the exact low-resolution model" of any law in the kit.

Every law has the interface of :class:`~diffmath.mixture.GaussianMixture` (``log_prob``,
``score_at``, ``denoise``, ``sample``, ``diffuse``), with points of shape ``(..., C, H, W)`` and
per-image noise levels of shape ``(...)``, so :func:`diffmath.denoisers.edm_denoiser` and every
sampler run on it unchanged.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from diffmath._validation import as_tensor, count, diffusion_levels, noise_level, symmetric_tolerance
from diffmath.resolution import check_factor
from diffmath.resolution import pool as _pool


def _positive_int(n, name: str) -> int:
    """``n`` as an int, checked to be a positive integer (an image size)."""
    try:
        ok = not isinstance(n, bool) and int(n) == n and n >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def frequencies(H: int, W: int, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed integer frequencies (cycles per image) of the ``H x W`` DFT grid, as ``(H, W)`` tensors."""
    f1 = torch.fft.fftfreq(H, d=1.0 / H, dtype=dtype, device=device)
    f2 = torch.fft.fftfreq(W, d=1.0 / W, dtype=dtype, device=device)
    return torch.meshgrid(f1, f2, indexing="ij")


def power_law_spectrum(
    H: int, W: int, alpha: float, *, f0: float = 1.0, variance: float = 1.0, reference: Optional[tuple[int, int]] = None
) -> torch.Tensor:
    r"""The power spectrum :math:`S(f) = A\,(|f|^2 + f_0^2)^{-\alpha/2}` on the ``H x W`` DFT grid.

    :math:`f` in cycles per image (signed integers), :math:`f_0 > 0` the low-frequency roll-off
    (so :math:`S(0)` is finite). ``alpha = 0`` is white noise, ``alpha ≈ 2`` natural images.
    :math:`A` makes the pixel variance :math:`\frac1{HW}\sum_f S(f)` equal to ``variance``.

    With ``reference=(H0, W0)`` the spectrum is instead that of the *same* band-limited continuum
    field seen at ``H x W``: :math:`S_{HW}(f) = HW\,c\,(|f|^2+f_0^2)^{-\alpha/2}` with :math:`c` fixed
    by the pixel variance at the reference resolution; low frequencies then carry :math:`HW/H_0W_0`
    times more power per DFT coefficient at the higher resolution, as article 22's SNR argument says.
    """
    H, W = _positive_int(H, "H"), _positive_int(W, "W")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if not (f0 > 0 and math.isfinite(f0)):
        raise ValueError(f"f0 must be > 0, got {f0!r}")
    if not (variance > 0 and math.isfinite(variance)):
        raise ValueError(f"variance must be > 0, got {variance!r}")
    if reference is not None:
        if not isinstance(reference, (tuple, list)) or len(reference) != 2:
            raise ValueError(f"reference must be a pair (H0, W0) of positive integers, got {reference!r}")
        reference = (_positive_int(reference[0], "reference[0]"), _positive_int(reference[1], "reference[1]"))

    def shape(h, w):
        f1, f2 = frequencies(h, w)
        return (f1**2 + f2**2 + f0**2) ** (-alpha / 2)

    if reference is None:
        S = shape(H, W)
        return S * (variance / S.mean())
    H0, W0 = reference
    c = variance / shape(H0, W0).sum()
    return shape(H, W) * (H * W * c)


# ------------------------------------------------------------------------------------------------
# bases
# ------------------------------------------------------------------------------------------------


class FourierBasis:
    r"""The orthonormal 2-D DFT: the eigenbasis of every circulant (stationary) covariance.

    ``coeffs(x)`` = :math:`Q^*x` = ``fft2(x, norm="ortho")``, spectral shape ``(H, W)``;
    ``image(c)`` = :math:`Qc` (real part of ``ifft2(c, norm="ortho")``; exact for the operators
    applied here, whose spectra are symmetric, :math:`\lambda(f) = \lambda(-f)`).
    """

    def __init__(self, H: int, W: int):
        self.H, self.W = _positive_int(H, "H"), _positive_int(W, "W")
        self.spec_shape = (self.H, self.W)
        self.s = 1

    def coeffs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft2(x, norm="ortho")

    def image(self, c: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(c, norm="ortho").real

    def to(self, device) -> "FourierBasis":
        return self

    def __repr__(self) -> str:
        return f"FourierBasis({self.H}x{self.W})"


def polyphase(x: torch.Tensor, s: int) -> torch.Tensor:
    r"""Polyphase components :math:`y_r[m] = x[sm + r]`: ``(..., H, W) -> (..., s*s, H/s, W/s)``.

    ``r = (u, v)`` is flattened as ``u * s + v`` (row-major inside the block)."""
    H, W = x.shape[-2:]
    h, w = H // s, W // s
    y = x.reshape(*x.shape[:-2], h, s, w, s).movedim(-3, -2)  # (..., h, w, s_u, s_v)
    return y.reshape(*x.shape[:-2], h, w, s * s).movedim(-1, -3)


def unpolyphase(y: torch.Tensor, s: int) -> torch.Tensor:
    """The inverse of :func:`polyphase`: ``(..., s*s, h, w) -> (..., s*h, s*w)``."""
    h, w = y.shape[-2:]
    z = y.movedim(-3, -1).reshape(*y.shape[:-3], h, w, s, s).movedim(-2, -3)  # (..., h, s_u, w, s_v)
    return z.reshape(*y.shape[:-3], h * s, w * s)


class PolyphaseBasis:
    r"""Eigenbasis of a covariance invariant under shifts by multiples of ``s``.

    :math:`Q^*x`: polyphase components (:func:`polyphase`), the low-resolution orthonormal DFT over
    the block index, then :math:`V(k)^*` at each low-resolution frequency :math:`k`, where the columns
    of :math:`V(k)` (``(h, w, s², s²)``, unitary) are the eigenvectors of the block :math:`M(k)`.
    Spectral shape ``(s², h, w)``.
    """

    def __init__(self, H: int, W: int, s: int, V: torch.Tensor):
        self.H, self.W = _positive_int(H, "H"), _positive_int(W, "W")
        self.s = check_factor(s, H, W)
        h, w = H // s, W // s
        n = s * s
        if tuple(V.shape) != (h, w, n, n) or not V.is_complex():
            raise ValueError(f"V must be a complex tensor of shape {(h, w, n, n)}, got {tuple(V.shape)} {V.dtype}")
        if V.is_meta:
            raise ValueError("V is on the meta device: it holds no values")
        if not torch.isfinite(V).all():
            raise ValueError("V contains NaN or Inf")
        self.V = V
        self.spec_shape = (n, h, w)

    def coeffs(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.fft.fft2(polyphase(x, self.s), norm="ortho")  # (..., n, h, w) complex
        return torch.einsum("hwri,...rhw->...ihw", self.V.conj(), y)

    def image(self, c: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("hwri,...ihw->...rhw", self.V, c.to(self.V.dtype))
        return unpolyphase(torch.fft.ifft2(y, norm="ortho").real, self.s)

    def to(self, device) -> "PolyphaseBasis":
        return PolyphaseBasis(self.H, self.W, self.s, self.V.to(device))

    def __repr__(self) -> str:
        return f"PolyphaseBasis({self.H}x{self.W}, s={self.s})"


def fourier_modes_in_blocks(H: int, W: int, s: int, dtype=torch.float64, device=None) -> torch.Tensor:
    r"""The high-resolution Fourier modes in polyphase coordinates.

    The mode :math:`e_f(n) = e^{2\pi i f\cdot n/N}/\sqrt{HW}` with :math:`f = k + (j_1h, j_2w)` is, in
    the coordinates of :class:`PolyphaseBasis` before :math:`V^*`, the vector
    :math:`u_f(r) = e^{2\pi i f\cdot r/N}/s` at low-resolution frequency :math:`k`. Returns ``u`` of
    shape ``(h, w, s², s²)`` indexed ``[k1, k2, j, r]`` with ``j = j1 * s + j2`` the alias.
    """
    s = check_factor(s, H, W)
    h, w = H // s, W // s
    k1, k2 = frequencies(h, w, dtype=dtype, device=device)  # signed low-resolution frequencies
    j = torch.arange(s, dtype=dtype, device=device)
    f1 = k1[:, :, None] + h * j[None, None, :]  # (h, w, s): the aliases of k1 on the fine grid
    f2 = k2[:, :, None] + w * j[None, None, :]
    r = torch.arange(s, dtype=dtype, device=device)
    ph1 = f1[..., None] * r / H  # (h, w, s_j1, s_u)
    ph2 = f2[..., None] * r / W  # (h, w, s_j2, s_v)
    phase = ph1[:, :, :, None, :, None] + ph2[:, :, None, :, None, :]  # (h, w, j1, j2, u, v)
    u = torch.exp(2j * math.pi * phase.to(_complex(dtype))) / s
    return u.reshape(h, w, s * s, s * s)


def fine_frequencies_of_blocks(H: int, W: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each (low frequency k, alias j) of :func:`fourier_modes_in_blocks`, the high-resolution DFT
    bin it is: two ``(h, w, s²)`` integer tensors (row and column on the H x W grid), with the same
    signed :math:`k` and alias order as there."""
    h, w = H // s, W // s
    k1, k2 = frequencies(h, w, dtype=torch.float64)
    j = torch.arange(s, dtype=torch.float64)
    row = (k1[:, :, None, None] + h * j[None, None, :, None]).expand(h, w, s, s)
    col = (k2[:, :, None, None] + w * j[None, None, None, :]).expand(h, w, s, s)
    return row.long().remainder(H).reshape(h, w, s * s), col.long().remainder(W).reshape(h, w, s * s)


def multiplier_blocks(g: torch.Tensor, s: int) -> torch.Tensor:
    r"""A Fourier multiplier :math:`g(f)` (``(H, W)``, e.g. a power spectrum) as polyphase blocks
    :math:`G(k) = \sum_j g(f_j)\,u_{f_j}u_{f_j}^*` (``(h, w, s², s²)``): the same operator in the
    coordinates of :class:`PolyphaseBasis`."""
    H, W = g.shape[-2:]
    u = fourier_modes_in_blocks(H, W, s, dtype=g.dtype, device=g.device)
    row, col = fine_frequencies_of_blocks(H, W, s)
    gj = g[row.to(g.device), col.to(g.device)].to(u.dtype)  # (h, w, s²): g at the aliases
    return torch.einsum("hwjr,hwj,hwjq->hwrq", u, gj, u.conj())


# ------------------------------------------------------------------------------------------------
# Gaussian images
# ------------------------------------------------------------------------------------------------


class GaussianImage:
    r"""A Gaussian image law :math:`\mathcal N(\mu, \Sigma)` on ``(C, H, W)`` with :math:`\Sigma` diagonal
    in a fast basis (see the module docstring). Build one with :meth:`stationary`,
    :meth:`power_law` or :meth:`from_blocks`.

    ``mean`` is ``(C, H, W)``; ``eigenvalues`` has the basis's spectral shape and is > 0. The law
    computes in the dtype of ``eigenvalues`` (float64 by default) on its device.
    """

    def __init__(self, mean: torch.Tensor, basis, eigenvalues: torch.Tensor, *, allow_singular: bool = False):
        if not isinstance(basis, (FourierBasis, PolyphaseBasis)):
            raise ValueError(f"basis must be a FourierBasis or a PolyphaseBasis, got {type(basis).__name__}")
        lam = as_tensor(eigenvalues, "eigenvalues")
        if tuple(lam.shape) != tuple(basis.spec_shape):
            raise ValueError(f"eigenvalues must have shape {basis.spec_shape}, got {tuple(lam.shape)}")
        if allow_singular:
            floor = -symmetric_tolerance(lam.dtype) * lam.abs().max().item()
            if (lam < floor).any():
                raise ValueError(f"eigenvalues must be >= 0, got min {lam.min().item():.6g}")
            lam = lam.clamp_min(0)
        elif (lam <= 0).any():
            raise ValueError(f"eigenvalues must be > 0, got min {lam.min().item():.6g}")
        mu = as_tensor(mean, "mean", dtype=lam.dtype, device=lam.device)
        if mu.ndim != 3 or tuple(mu.shape[-2:]) != (basis.H, basis.W) or mu.shape[0] < 1:
            raise ValueError(f"mean must have shape (C, {basis.H}, {basis.W}), got {tuple(mu.shape)}")
        self.mean, self.basis, self.eigenvalues = mu, basis, lam
        self._mean_rfft = None  # rfft2 of the mean, cached by ImageMixture for components on one Fourier grid

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def stationary(cls, spectrum, *, mean=0.0, channels: int = 1) -> "GaussianImage":
        r"""The stationary law with power spectrum ``spectrum`` (``(H, W)``, > 0, :math:`S(f)=S(-f)`).

        ``mean``: a number (a constant image), or a ``(C, H, W)`` / ``(H, W)`` image."""
        S = as_tensor(spectrum, "spectrum")
        if S.ndim != 2:
            raise ValueError(f"spectrum must have shape (H, W), got {tuple(S.shape)}")
        H, W = S.shape
        flipped = torch.roll(torch.flip(S, (0, 1)), shifts=(1, 1), dims=(0, 1))  # S(-f)
        tol = symmetric_tolerance(S.dtype) * S.abs().max().item()
        if (S - flipped).abs().max().item() > tol:
            raise ValueError("spectrum must be symmetric, S(f) = S(-f), for a real-valued law")
        return cls(_mean_image(mean, channels, H, W, S), FourierBasis(H, W), S)

    @classmethod
    def power_law(cls, H: int, W: int, alpha: float, *, mean=0.0, channels: int = 1, **kw) -> "GaussianImage":
        """:meth:`stationary` with :func:`power_law_spectrum` (``f0``, ``variance``, ``reference`` pass through)."""
        return cls.stationary(power_law_spectrum(H, W, alpha, **kw), mean=mean, channels=channels)

    @classmethod
    def from_blocks(cls, M, s: int, *, mean=0.0, channels: int = 1, allow_singular: bool = False) -> "GaussianImage":
        r"""The law whose covariance has polyphase blocks ``M`` (``(h, w, s², s²)`` complex, Hermitian,
        positive definite — semi-definite with ``allow_singular`` — with :math:`M(-k) = \overline{M(k)}`
        so that the law is real). A singular law has no density: only its sampling, moments, pooling
        and distances are available."""
        if not isinstance(M, torch.Tensor) or not M.is_complex() or M.ndim != 4 or M.shape[-1] != M.shape[-2]:
            raise ValueError("M must be a complex tensor of shape (h, w, s², s²)")
        s = check_factor(s)
        h, w, n, _ = M.shape
        if n != s * s:
            raise ValueError(f"M's blocks must be {s * s} x {s * s} for s = {s}, got {n} x {n}")
        scale = M.abs().max().item()
        tol = symmetric_tolerance(M.real.dtype) * max(scale, 1e-300)
        if (M - M.conj().transpose(-1, -2)).abs().max().item() > tol:
            raise ValueError("M must be Hermitian in each block")
        neg = torch.roll(torch.flip(M, (0, 1)), shifts=(1, 1), dims=(0, 1))  # M(-k)
        if (neg - M.conj()).abs().max().item() > tol:
            raise ValueError("M must satisfy M(-k) = conj(M(k)) for a real-valued law")
        H, W = s * h, s * w
        if s == 1:  # a 1 x 1 block per frequency: the law is stationary, M is its spectrum
            S = M[..., 0, 0].real.contiguous()
            return cls(_mean_image(mean, channels, H, W, S), FourierBasis(H, W), S, allow_singular=allow_singular)
        lam, V = torch.linalg.eigh(0.5 * (M + M.conj().transpose(-1, -2)))
        if not allow_singular and (lam <= 0).any():
            raise ValueError(f"M must be positive definite: smallest eigenvalue {lam.min().item():.6g}")
        real = lam.real if lam.is_complex() else lam
        return cls(
            _mean_image(mean, channels, H, W, real),
            PolyphaseBasis(H, W, s, V),
            real.movedim(-1, 0).contiguous(),
            allow_singular=allow_singular,
        )

    # -- basic properties ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mean.shape)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    @property
    def dtype(self) -> torch.dtype:
        return self.eigenvalues.dtype

    @property
    def device(self) -> torch.device:
        return self.eigenvalues.device

    @property
    def is_stationary(self) -> bool:
        """Whether the covariance is circulant (a :class:`FourierBasis` law)."""
        return isinstance(self.basis, FourierBasis)

    def __repr__(self) -> str:
        return f"GaussianImage(shape={self.shape}, basis={self.basis!r}, dtype={self.dtype})"

    def to(self, device) -> "GaussianImage":
        device = torch.device(device)
        return GaussianImage(self.mean.to(device), self.basis.to(device), self.eigenvalues.to(device), allow_singular=True)

    def blocks(self, s: Optional[int] = None) -> torch.Tensor:
        r"""The covariance's polyphase blocks :math:`M(k)` at factor ``s`` (default: the basis's)."""
        if isinstance(self.basis, PolyphaseBasis):
            if s not in (None, self.basis.s):
                raise ValueError(f"this law is periodic with period {self.basis.s}; its blocks exist only at that s")
            V, lam = self.basis.V, self.eigenvalues.movedim(0, -1).to(self.basis.V.dtype)
            return torch.einsum("hwri,hwi,hwqi->hwrq", V, lam, V.conj())
        if s is None:
            raise ValueError("a stationary law needs the factor s of its polyphase blocks")
        return multiplier_blocks(self.eigenvalues, s)

    def to_polyphase(self, s: int) -> "GaussianImage":
        """The same law in a :class:`PolyphaseBasis` of factor ``s`` (exact; for checks and :meth:`pinched`)."""
        return GaussianImage.from_blocks(self.blocks(s), s, mean=self.mean, allow_singular=bool((self.eigenvalues == 0).any()))

    def pinched(self, s: int, c: float = 0.0) -> "GaussianImage":
        r"""The law with covariance :math:`(1-c)\,\mathrm{pinch}(\Sigma) + c\,\Sigma`, where
        :math:`\mathrm{pinch}(\Sigma) = P\Sigma P + (I-P)\Sigma(I-P)` drops the correlation between
        block means and within-block details. :math:`P\Sigma_c(I-P) = c\,P\Sigma(I-P)`: ``c = 0`` is
        exactly block-structured, ``c = 1`` the law itself. Positive definite for ``c`` in [0, 1]."""
        if not (0.0 <= c <= 1.0):
            raise ValueError(f"c must lie in [0, 1], got {c!r}")
        M = self.blocks(s)
        n = s * s
        Pi = torch.full((n, n), 1.0 / n, dtype=M.dtype, device=M.device)
        I = torch.eye(n, dtype=M.dtype, device=M.device)
        pinch = Pi @ M @ Pi + (I - Pi) @ M @ (I - Pi)
        return GaussianImage.from_blocks(pinch + c * (M - pinch), s, mean=self.mean)

    def covariance_dense(self) -> torch.Tensor:
        """The ``(HW, HW)`` covariance of one channel as a dense matrix (row-major pixels; small grids only)."""
        H, W = self.basis.H, self.basis.W
        eye = torch.eye(H * W, dtype=self.dtype, device=self.device).reshape(H * W, H, W)
        return self.basis.image(self.eigenvalues * self.basis.coeffs(eye)).reshape(H * W, H * W)

    def power_spectrum(self) -> torch.Tensor:
        r""":math:`\mathbb E|\hat x(f)|^2` of the centred law per high-resolution DFT bin (orthonormal DFT),
        ``(H, W)``: the spectrum itself for a stationary law, :math:`u_f^*M(k)u_f` otherwise."""
        if self.is_stationary:
            return self.eigenvalues.clone()
        H, W, s = self.basis.H, self.basis.W, self.basis.s
        u = fourier_modes_in_blocks(H, W, s, dtype=self.dtype, device=self.device)
        M = self.blocks()
        p = torch.einsum("hwjr,hwrq,hwjq->hwj", u.conj(), M, u).real
        row, col = fine_frequencies_of_blocks(H, W, s)
        out = torch.empty(H, W, dtype=self.dtype, device=self.device)
        out[row.to(self.device), col.to(self.device)] = p
        return out

    # -- the diffused law ----------------------------------------------------------------------------
    def diffuse(self, alpha, sigma) -> "GaussianImage":
        r"""The law of :math:`\alpha x_0 + \sigma\varepsilon`: mean :math:`\alpha\mu`, eigenvalues
        :math:`\alpha^2\lambda + \sigma^2` (numbers, :math:`\alpha\ge0`, :math:`\sigma\ge0`, not both 0)."""
        a, s = (v.item() for v in diffusion_levels(alpha, sigma, dtype=self.dtype))
        return GaussianImage(a * self.mean, self.basis, a * a * self.eigenvalues + s * s, allow_singular=s == 0)

    def pool(self, s: int) -> "GaussianImage":
        r"""The exact law of :math:`\mathcal D x_0` (``s x s`` average pooling), a stationary law at ``(H/s, W/s)``.

        Stationary law: the autocovariance :math:`c` is smoothed by the box's autocorrelation and
        subsampled, :math:`c_{\rm low}(\Delta) = \sum_\delta T(\delta)\,c(s\Delta+\delta)`. Periodic law
        of period ``s``: :math:`S_{\rm low}(k) = \mathbf 1^\top M(k)\mathbf 1/s^4`."""
        H, W = self.basis.H, self.basis.W
        s = check_factor(s, H, W)
        mean = _pool(self.mean, s)
        if self.is_stationary:
            f1, f2 = frequencies(H, W, dtype=self.dtype, device=self.device)
            box = _box_response(f1, H, s) * _box_response(f2, W, s)  # DFT of the s x s box of weight 1/s^2
            c = torch.fft.ifft2(self.eigenvalues * (box.abs() ** 2)).real
            low = torch.fft.fft2(c[::s, ::s]).real
            return GaussianImage(mean, FourierBasis(H // s, W // s), low, allow_singular=True)
        p = self.basis.s
        if s % p:
            raise ValueError(f"a law of period {p} pools exactly to a stationary law only for multiples of {p}, got s = {s}")
        low = self.blocks().sum(dim=(-1, -2)).real / p**4  # pooling by the period: the block means
        stationary = GaussianImage(_pool(self.mean, p), FourierBasis(H // p, W // p), low, allow_singular=True)
        return stationary if s == p else stationary.pool(s // p)  # D_s = D_(s/p) D_p

    # -- density, score, denoiser ------------------------------------------------------------------
    def _x(self, x) -> torch.Tensor:
        x = as_tensor(x, "x", dtype=self.dtype, device=self.device)
        if x.ndim < 3 or tuple(x.shape[-3:]) != self.shape:
            raise ValueError(f"x must have shape (..., {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x

    def _levels(self, x, alpha, sigma, positive_sigma: bool):
        """Validated levels: broadcastable over the image axes, and over the spectral axes."""
        batch = x.shape[:-3]
        a = noise_level(alpha, "alpha", like=x, batch_shape=batch, positive=False, trailing=3)
        s = noise_level(sigma, "sigma", like=x, batch_shape=batch, positive=positive_sigma, trailing=3)
        if not positive_sigma and bool(((a == 0) & (s == 0)).any()):
            raise ValueError("alpha and sigma cannot both be 0")
        extra = len(self.basis.spec_shape) - 2  # spectral axes beyond the image's two
        a_s = a.reshape(*a.shape, *([1] * extra)) if a.ndim else a
        s_s = s.reshape(*s.shape, *([1] * extra)) if s.ndim else s
        return a, a_s, s_s

    def _eigen_levels(self, a_s, s_s, positive_sigma: bool) -> torch.Tensor:
        if not positive_sigma and bool((s_s == 0).any()) and bool((self.eigenvalues == 0).any()):
            raise ValueError("this law is singular: it has no density or score at sigma = 0")
        return a_s**2 * self.eigenvalues + s_s**2

    def _prepare(self, x, alpha, sigma, positive_sigma: bool):
        x = self._x(x)
        a, a_s, s_s = self._levels(x, alpha, sigma, positive_sigma)
        ev = self._eigen_levels(a_s, s_s, positive_sigma)
        c = self.basis.coeffs(x - a * self.mean)  # (..., C, *spec)
        return x, a, c, a_s, ev

    def _log_density(self, c: torch.Tensor, ev: torch.Tensor, mult: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log N from coefficients; ``mult`` weighs a half spectrum (rfft) by each bin's multiplicity."""
        spec_axes = tuple(range(-1 - len(self.basis.spec_shape), 0))
        power = torch.view_as_real(c).square().sum(-1) if c.is_complex() else c.square()  # |c|^2 without a sqrt
        logev = torch.log(ev)
        if mult is not None:
            power, logev = power * mult, logev * mult
        maha = (power / ev).sum(dim=spec_axes)
        logdet = logev.sum(dim=spec_axes[1:])  # () or (..., 1): per-image levels keep a channel axis
        logdet = self.shape[0] * (logdet.squeeze(-1) if logdet.ndim else logdet)
        return -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))

    def log_prob_at(self, x, alpha, sigma) -> torch.Tensor:
        r""":math:`\log p_t(x)` of the diffused law (per-image levels allowed); shape ``x.shape[:-3]``."""
        _, _, c, _, ev = self._prepare(x, alpha, sigma, positive_sigma=False)
        return self._log_density(c, ev)

    def log_prob(self, x) -> torch.Tensor:
        """:math:`\\log p(x)` of the law itself; shape ``x.shape[:-3]``."""
        return self.log_prob_at(x, 1.0, 0.0)

    def score_at(self, x, alpha, sigma) -> torch.Tensor:
        r"""Score of the diffused law, :math:`-Q\big(Q^*(x-\alpha\mu)/(\alpha^2\lambda+\sigma^2)\big)`."""
        _, _, c, _, ev = self._prepare(x, alpha, sigma, positive_sigma=False)
        return -self.basis.image(c / ev)

    def score(self, x) -> torch.Tensor:
        return self.score_at(x, 1.0, 0.0)

    def denoise(self, x, alpha, sigma) -> torch.Tensor:
        r"""The exact denoiser :math:`\mathbb E[x_0\mid\alpha x_0+\sigma\varepsilon = x] =
        \mu + Q\big(\alpha\lambda\,Q^*(x-\alpha\mu)/(\alpha^2\lambda+\sigma^2)\big)` (:math:`\sigma>0`)."""
        _, _, c, a_s, ev = self._prepare(x, alpha, sigma, positive_sigma=True)
        return self.mean + self.basis.image(a_s * self.eigenvalues * c / ev)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        r"""``n`` draws :math:`\mu + \Sigma^{1/2}z`, shape ``(n, C, H, W)``."""
        n = count(n)
        z = torch.randn(n, *self.shape, dtype=self.dtype, device=self.device, generator=generator)
        return self.mean + self.basis.image(self.eigenvalues.sqrt() * self.basis.coeffs(z))


def _box_response(f: torch.Tensor, N: int, s: int) -> torch.Tensor:
    """DFT of the length-s box of weight 1/s at signed frequency f on a length-N grid."""
    u = torch.arange(s, dtype=f.dtype, device=f.device)
    return torch.exp(-2j * math.pi * f[..., None].to(_complex(f.dtype)) * u / N).mean(-1)


def _mean_image(mean, channels: int, H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(channels, bool) or int(channels) != channels or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    m = as_tensor(mean, "mean", dtype=like.dtype, device=like.device)
    if m.ndim == 0:
        return m.expand(int(channels), H, W).clone()
    if m.ndim == 2 and tuple(m.shape) == (H, W):
        return m.expand(int(channels), H, W).clone()
    if m.ndim == 3 and tuple(m.shape[-2:]) == (H, W):
        return m.clone()
    raise ValueError(f"mean must be a number, an (H, W) or a (C, H, W) image with H, W = {H}, {W}; got {tuple(m.shape)}")


# ------------------------------------------------------------------------------------------------
# mixtures
# ------------------------------------------------------------------------------------------------


class ImageMixture:
    r"""A mixture :math:`\sum_k\pi_k\,\mathcal N(\mu_k,\Sigma_k)` of :class:`GaussianImage` laws of one shape.

    Responsibilities :math:`r_k(x)\propto\pi_k p_{k,t}(x)` by log-sum-exp; the score and the denoiser
    are the responsibility-weighted component scores and posterior means (exact), as for
    :class:`~diffmath.mixture.GaussianMixture`.
    """

    def __init__(self, weights, components: Sequence[GaussianImage]):
        components = list(components)
        if not components or not all(isinstance(c, GaussianImage) for c in components):
            raise ValueError("components must be a non-empty list of GaussianImage laws")
        shapes = {c.shape for c in components}
        if len(shapes) != 1:
            raise ValueError(f"components must share one image shape, got {sorted(shapes)}")
        dtypes, devices = {c.dtype for c in components}, {str(c.device) for c in components}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(f"components must share dtype and device, got {dtypes}, {devices}")
        w = as_tensor(weights, "weights", dtype=components[0].dtype, device=components[0].device)
        if w.ndim != 1 or w.shape[0] != len(components):
            raise ValueError(f"weights must have shape ({len(components)},), got {tuple(w.shape)}")
        if (w < 0).any():
            raise ValueError(f"weights must be nonnegative, got min {w.min().item():.6g}")
        tol = 1e-5 if w.dtype == torch.float32 else 1e-9
        if abs(w.sum().item() - 1.0) > tol:
            raise ValueError(f"weights must sum to 1 (within {tol:g}), got sum {w.sum().item():.12g}")
        self.weights, self.components = w, components

    @property
    def shape(self):
        return self.components[0].shape

    @property
    def dim(self) -> int:
        return self.components[0].dim

    @property
    def dtype(self):
        return self.components[0].dtype

    @property
    def device(self):
        return self.components[0].device

    @property
    def n_components(self) -> int:
        return len(self.components)

    def __repr__(self) -> str:
        return f"ImageMixture(K={self.n_components}, shape={self.shape}, dtype={self.dtype})"

    def to(self, device) -> "ImageMixture":
        return ImageMixture(self.weights.to(device), [c.to(device) for c in self.components])

    def diffuse(self, alpha, sigma) -> "ImageMixture":
        return ImageMixture(self.weights, [c.diffuse(alpha, sigma) for c in self.components])

    def pool(self, s: int) -> "ImageMixture":
        """The exact law of the pooled image: the same weights, each component pooled."""
        return ImageMixture(self.weights, [c.pool(s) for c in self.components])

    def _terms(self, x, alpha, sigma, positive_sigma: bool):
        """Per component: log(pi_k p_k,t(x)), the coefficients c_k = Q_k^*(x - alpha mu_k), eigenvalues, levels.

        Stationary components share one real FFT of x (half spectrum; bins weighted by multiplicity):
        c_k = rfft(x) - alpha rfft(mu_k), with rfft(mu_k) computed once per component."""
        first = self.components[0]
        x = first._x(x)
        shared = all(c.is_stationary for c in self.components)
        W = first.shape[-1]
        half = W // 2 + 1
        if shared:
            cx = torch.fft.rfft2(x, norm="ortho")
            mult = torch.full((half,), 2.0, dtype=x.dtype, device=x.device)
            mult[0] = 1.0
            if W % 2 == 0:
                mult[-1] = 1.0
        out = []
        for w, comp in zip(self.weights, self.components):
            a, a_s, s_s = comp._levels(x, alpha, sigma, positive_sigma)  # broadcast over this basis's axes
            ev = comp._eigen_levels(a_s, s_s, positive_sigma)
            if shared:
                if comp._mean_rfft is None:
                    comp._mean_rfft = torch.fft.rfft2(comp.mean, norm="ortho")
                ev = ev[..., :half]
                c = cx - a_s.to(cx.dtype) * comp._mean_rfft if a_s.ndim else cx - a_s * comp._mean_rfft
                logp = comp._log_density(c, ev, mult)
            else:
                c = comp.basis.coeffs(x - a * comp.mean)
                logp = comp._log_density(c, ev)
            out.append((torch.log(w) + logp, c, ev, a_s))
        return shared, out

    def _responsibilities(self, terms) -> torch.Tensor:
        return torch.softmax(torch.stack([t[0] for t in terms], -1), -1)

    def log_prob_at(self, x, alpha, sigma) -> torch.Tensor:
        _, terms = self._terms(x, alpha, sigma, positive_sigma=False)
        return torch.logsumexp(torch.stack([t[0] for t in terms], -1), -1)

    def log_prob(self, x) -> torch.Tensor:
        return self.log_prob_at(x, 1.0, 0.0)

    def responsibilities(self, x, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """:math:`r_k` of the diffused law at ``x``; shape ``(..., K)``."""
        _, terms = self._terms(x, alpha, sigma, positive_sigma=False)
        return self._responsibilities(terms)

    def _combine(self, r, parts, shared: bool) -> torch.Tensor:
        """sum_k r_k Q_k(parts_k): one inverse transform when the components share a Fourier grid."""
        rk = lambda k, like: r[..., k].reshape(*r.shape[:-1], *([1] * (like.ndim - r.ndim + 1)))  # noqa: E731
        if shared:
            total = sum(rk(k, p).to(p.dtype) * p for k, p in enumerate(parts))
            return torch.fft.irfft2(total, s=self.shape[-2:], norm="ortho")
        return sum(r[..., k, None, None, None] * comp.basis.image(p) for k, (p, comp) in enumerate(zip(parts, self.components)))

    def score_at(self, x, alpha, sigma) -> torch.Tensor:
        shared, terms = self._terms(x, alpha, sigma, positive_sigma=False)
        r = self._responsibilities(terms)
        return -self._combine(r, [c / ev for _, c, ev, _ in terms], shared)

    def score(self, x) -> torch.Tensor:
        return self.score_at(x, 1.0, 0.0)

    def denoise(self, x, alpha, sigma) -> torch.Tensor:
        shared, terms = self._terms(x, alpha, sigma, positive_sigma=True)
        r = self._responsibilities(terms)
        half = lambda lam, ev: lam[..., : ev.shape[-1]] if shared else lam  # noqa: E731  (rfft: half spectrum)
        parts = [a_s * half(comp.eigenvalues, ev) * c / ev for comp, (_, c, ev, a_s) in zip(self.components, terms)]
        means = sum(r[..., k, None, None, None] * comp.mean for k, comp in enumerate(self.components))
        return means + self._combine(r, parts, shared)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        n = count(n)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.long)
        out = torch.empty(n, *self.shape, dtype=self.dtype, device=self.device)
        for k, c in enumerate(self.components):
            idx = (comp == k).nonzero().squeeze(-1)
            if idx.numel():
                out[idx] = c.sample(idx.numel(), generator=generator)
        return out
