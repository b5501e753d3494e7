r"""Information budgets: how many bits an image carries, and how many a sequence of tokens can hold.

The arithmetic of the multimodal essay (kexue.fm 9984, section "compression loss", eq. 2) and its
counterpart on the exact toy images of :mod:`diffmath.images`. Every entropy here is in **bits**.

**Tokens.** A categorical law :math:`p` on :math:`V` symbols has entropy
:math:`H(p)=-\sum_i p_i\log_2p_i\le\log_2V`, with equality exactly for the uniform law
(:func:`entropy_bits`). A sequence of :math:`L` tokens therefore holds at most :math:`L\log_2V` bits
(:func:`token_capacity_bits`), and a lossless code of a source of :math:`B` bits in :math:`L` tokens needs

.. math:: L\log_2V\ \ge\ B \qquad\text{(the essay's eq. 2)},

i.e. :math:`V\ge2^{B/L}` (:func:`min_vocabulary_log2`; :func:`min_vocabulary` and
:func:`budget_satisfied` decide it in exact integer arithmetic).

**Quantised continuous laws.** For :math:`x` with a density :math:`p` on :math:`\mathbb R^d` and a
quantiser :math:`Q_\Delta` onto a grid of cubes of side :math:`\Delta` (8-bit pixels: :math:`\Delta = 1`
grey level), let :math:`\bar p_\Delta` be the density that is constant on each cube with the cube's mass.
Then, exactly,

.. math:: H(Q_\Delta(x)) = h(x) - d\log_2\Delta + D(p\,\|\,\bar p_\Delta)\ \ge\ h(x) - d\log_2\Delta,

since :math:`-\int p\log\bar p_\Delta = H(Q_\Delta(x)) + d\log\Delta` (Cover and Thomas, *Elements of
Information Theory*, 2nd ed., section 8.3, whose theorem 8.3.1 is the limit :math:`\Delta\to0`). For a
Gaussian :math:`\mathcal N(\mu,\Sigma)` with eigenvalues :math:`\lambda_i`,
:math:`h=\tfrac12\sum_i\log_2(2\pi e\lambda_i)` (:func:`gaussian_entropy_bits`), and the gap
:math:`D` is, to leading order, :math:`\frac{\Delta^2}{24\ln2}\operatorname{tr}\Sigma^{-1}` bits: the
quantised entropy is close to that of a Gaussian whose covariance is widened by the cube's,
:math:`\tfrac12\sum_i\log_2\big(2\pi e(\lambda_i+\Delta^2/12)\big)-d\log_2\Delta`
(:func:`quantised_entropy_bits` returns both numbers). The approximation needs the density to vary
little across one cube: :math:`\Delta` small against each pixel's standard deviation *given the other
pixels*, :math:`(\Sigma^{-1})_{ii}^{-1/2}` (:func:`conditional_std`), which for a correlated law is
much smaller than the pixel's own standard deviation. :func:`quantised_normal_entropy_bits` computes
the one-dimensional case exactly from the normal CDF, for checking all of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

import torch

from diffmath._validation import as_tensor
from diffmath.images import FourierBasis, GaussianImage

LOG2_2PIE = math.log2(2 * math.pi * math.e)
"""log2(2 pi e): twice the differential entropy in bits of a standard normal."""

MAX_BINS = 10_000_000
"""The most bins :func:`quantised_normal_entropy_bits` sums (a bin width this small is a mistake)."""


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


def _positive_integer(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float, Rational)) or n != int(n) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _nonnegative_rational(x, name: str) -> Fraction:
    """``x`` as an exact fraction: ints and fractions as they are, floats as the decimal they print as
    (``3.44`` is 344/100, not the binary double nearest to it)."""
    if isinstance(x, bool):
        raise ValueError(f"{name} must be a number, got {x!r}")
    if isinstance(x, Rational):
        value = Fraction(x)
    elif isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{name} must be finite, got {x!r}")
        value = Fraction(repr(x))
    else:
        raise ValueError(f"{name} must be an int, a Fraction or a float, got {type(x).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")
    return value


def _positive_float(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, Rational)):
        raise ValueError(f"{name} must be a number, got {x!r}")
    x = float(x)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
    return x


def _law(law) -> GaussianImage:
    if not isinstance(law, GaussianImage):
        raise ValueError(f"law must be a diffmath.images.GaussianImage, got {type(law).__name__}")
    if bool((law.eigenvalues <= 0).any()):
        raise ValueError("law must have a density: its covariance has a zero eigenvalue (a singular law)")
    return law


# ------------------------------------------------------------------------------------------------
# tokens
# ------------------------------------------------------------------------------------------------


def entropy_bits(probs, dim: int = -1) -> torch.Tensor:
    r"""Entropy :math:`H(p)=-\sum_ip_i\log_2p_i` in bits of categorical laws along ``dim`` (:math:`0\log0=0`).

    ``probs`` must be nonnegative and sum to 1 along ``dim`` (to 1e-9 in float64, 1e-5 in float32).
    """
    p = as_tensor(probs, "probs")
    if p.ndim == 0:
        raise ValueError("probs must have at least one axis (the symbols)")
    if (p < 0).any():
        raise ValueError(f"probs must be >= 0, got min {p.min().item():.6g}")
    tol = 1e-5 if p.dtype == torch.float32 else 1e-9
    total = p.sum(dim)
    if ((total - 1).abs() > tol).any():
        raise ValueError(f"probs must sum to 1 along dim {dim}, got sums in [{total.min().item():.6g}, {total.max().item():.6g}]")
    terms = torch.where(p > 0, -p * torch.log2(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    return terms.sum(dim)


def token_capacity_bits(L, V) -> float:
    r""":math:`L\log_2V`: the most bits a sequence of ``L`` tokens from a vocabulary of ``V`` can carry
    (reached by i.i.d. uniform tokens). ``L`` and ``V`` are positive integers (``V`` may be huge)."""
    L, V = _positive_integer(L, "L"), _positive_integer(V, "V")
    return L * math.log2(V)


def min_vocabulary_log2(bits, L) -> float:
    r""":math:`B/L`: the base-2 logarithm of the smallest vocabulary with which ``L`` tokens can carry
    ``bits`` bits (eq. 2 solved for :math:`V`); ``bits >= 0``."""
    return float(_nonnegative_rational(bits, "bits") / _positive_integer(L, "L"))


def budget_satisfied(L, V, bits) -> bool:
    r"""Whether :math:`L\log_2V\ge B` (eq. 2), decided exactly: with :math:`B/L=p/q` in lowest terms it
    is :math:`V^{q}\ge2^{p}`, a comparison of integers. ``bits`` as in :func:`min_vocabulary`."""
    L, V = _positive_integer(L, "L"), _positive_integer(V, "V")
    r = _nonnegative_rational(bits, "bits") / L
    return V**r.denominator >= 2**r.numerator


def min_vocabulary(bits, L) -> int:
    r"""The smallest integer :math:`V\ge1` with :math:`L\log_2V\ge B`, i.e. :math:`\lceil2^{B/L}\rceil`,
    in exact integer arithmetic (an integer root, no floating point).

    ``bits`` is an int, a :class:`fractions.Fraction` or a float read as the decimal it prints as
    (``3.44 * 12288`` bits is fine; so is ``Fraction(344, 100) * 12288``).
    """
    L = _positive_integer(L, "L")
    r = _nonnegative_rational(bits, "bits") / L
    p, q = r.numerator, r.denominator
    target = 1 << p  # 2^p: find the smallest V with V^q >= 2^p
    lo, hi = 1 << (p // q), 1 << (-(-p // q))  # 2^floor(p/q) <= V* <= 2^ceil(p/q)
    if lo**q >= target:
        return lo
    while hi - lo > 1:  # invariant: lo^q < 2^p <= hi^q
        mid = (lo + hi) // 2
        if mid**q >= target:
            hi = mid
        else:
            lo = mid
    return hi


# ------------------------------------------------------------------------------------------------
# continuous laws, quantised
# ------------------------------------------------------------------------------------------------


def gaussian_entropy_bits(law) -> float:
    r"""Differential entropy :math:`h=\tfrac12\sum_i\log_2(2\pi e\lambda_i)` in bits of a
    :class:`~diffmath.images.GaussianImage` (every channel counted: :math:`C` copies of the spectrum)."""
    law = _law(law)
    return _entropy_of_spectrum(law.eigenvalues, law.shape[0])


def _entropy_of_spectrum(lam: torch.Tensor, channels: int) -> float:
    r""":math:`C\cdot\tfrac12\sum_i\log_2(2\pi e\lambda_i)`: the one place of the Gaussian entropy formula."""
    return channels * 0.5 * (lam.numel() * LOG2_2PIE + torch.log2(lam).sum().item())


def conditional_std(law) -> float:
    r"""The smallest, over pixels, standard deviation of a pixel given all the others,
    :math:`\min_i(\Sigma^{-1})_{ii}^{-1/2}`: the scale a quantiser's bin must be small against.

    A stationary law has the same value at every pixel, :math:`\big(\tfrac1{HW}\sum_f1/S(f)\big)^{-1/2}`
    (the harmonic mean of the spectrum); a law of period :math:`s` has one per position in the block,
    :math:`\tfrac1{hw}\sum_k\sum_i|V_{k,ri}|^2/\lambda_i(k)` for :math:`(\Sigma^{-1})_{rr}`.
    """
    law = _law(law)
    inv = 1.0 / law.eigenvalues
    if isinstance(law.basis, FourierBasis):
        precision = inv.mean()
    else:
        V = law.basis.V  # (h, w, r, i)
        h, w = V.shape[:2]
        precision = torch.einsum("hwri,ihw->r", V.abs() ** 2, inv.to(V.real.dtype)).max() / (h * w)
    return precision.rsqrt().item()


@dataclass(frozen=True)
class QuantisedEntropy:
    r"""The entropy in bits of a Gaussian image law quantised to bins of width ``delta``.

    ``lower`` :math:`=h-d\log_2\Delta` holds for every bin width and every placement of the grid (a
    theorem). ``upper`` :math:`=\tfrac12\sum_i\log_2(2\pi e(\lambda_i+\Delta^2/12))-d\log_2\Delta`: a cube's
    mass is :math:`\Delta^d` times the density of :math:`x+u` at its corner (:math:`u` uniform on the cube),
    so the quantised entropy is a lattice sum for :math:`h(x+u)-d\log_2\Delta`, and
    :math:`h(x+u)` is at most the entropy of the Gaussian with the covariance :math:`\Sigma+\Delta^2I/12`.
    ``upper`` is thus an upper bound up to the lattice sum's (aliasing) error, which is negligible when
    ``resolved`` (:math:`\Delta\le` ``conditional_std``); beyond that neither the bound nor the leading-order
    gap below can be trusted (a one-dimensional Gaussian already exceeds ``upper`` at :math:`\Delta=1.5\sigma`). The gap ``upper - lower`` is
    about :math:`\frac{\Delta^2}{24\ln2}\operatorname{tr}\Sigma^{-1}`. ``dim`` counts every channel.
    """

    lower: float
    upper: float
    dim: int
    delta: float
    conditional_std: float

    @property
    def resolved(self) -> bool:
        """Whether the bin is no wider than the narrowest conditional standard deviation of a pixel."""
        return self.delta <= self.conditional_std

    @property
    def lower_per_dim(self) -> float:
        return self.lower / self.dim

    @property
    def upper_per_dim(self) -> float:
        return self.upper / self.dim


def quantised_entropy_bits(law, delta: float = 1.0) -> QuantisedEntropy:
    r"""The bits a :class:`~diffmath.images.GaussianImage` law carries once quantised to bins of width
    ``delta`` (8-bit pixels in grey levels: ``delta = 1``). See :class:`QuantisedEntropy` and the module
    docstring for the two numbers and when they agree. Clipping to a finite range is not modelled (it can
    only lower the entropy)."""
    law = _law(law)
    delta = _positive_float(delta, "delta")
    d = law.dim
    log_delta = d * math.log2(delta)
    lower = gaussian_entropy_bits(law) - log_delta
    upper = _entropy_of_spectrum(law.eigenvalues + delta**2 / 12, law.shape[0]) - log_delta  # covariance widened by the cube's
    return QuantisedEntropy(lower=lower, upper=upper, dim=d, delta=delta, conditional_std=conditional_std(law))


def quantised_normal_entropy_bits(sigma: float, delta: float, offset: float = 0.0) -> float:
    r"""Exact entropy in bits of :math:`x\sim\mathcal N(0,\sigma^2)` quantised to the bins
    :math:`[\text{offset}+k\Delta,\ \text{offset}+(k+1)\Delta)`, :math:`k\in\mathbb Z`, by summing
    :math:`-P_k\log_2P_k` over the bins within :math:`40\sigma` of the mean (the mass beyond underflows
    float64), each :math:`P_k` a difference of normal CDFs taken on the side of the mean where it keeps its
    relative precision."""
    sigma, delta = _positive_float(sigma, "sigma"), _positive_float(delta, "delta")
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
        raise ValueError(f"offset must be a finite number, got {offset!r}")
    reach = 40.0 * sigma
    k0, k1 = math.floor((-reach - offset) / delta), math.ceil((reach - offset) / delta)
    if k1 - k0 > MAX_BINS:
        raise ValueError(f"delta must be at least 80 sigma / {MAX_BINS} (got delta/sigma = {delta / sigma:.3g}): too many bins")
    edges = (offset + delta * torch.arange(k0, k1 + 1, dtype=torch.float64)) / sigma
    a, b = edges[:-1], edges[1:]
    left = torch.special.ndtr(b) - torch.special.ndtr(a)  # accurate where the bin lies below the mean
    right = torch.special.ndtr(-a) - torch.special.ndtr(-b)  # ... and above it
    P = torch.where(a >= 0, right, left)
    P = P[P > 0]
    return -(P * torch.log2(P)).sum().item()


def normal_entropy_bits(sigma: float) -> float:
    r""":math:`\tfrac12\log_2(2\pi e\sigma^2)`: the differential entropy in bits of :math:`\mathcal N(\cdot,\sigma^2)`."""
    sigma = _positive_float(sigma, "sigma")
    return 0.5 * LOG2_2PIE + math.log2(sigma)
