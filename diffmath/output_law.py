r"""The exact law of a sampler's output on Gaussian images, and distances between Gaussian image laws.

For Gaussian data the exact denoiser is affine, and so is every Wiener-type model built from it
(the convolutional low-resolution model of article 23, upsample guidance). A deterministic sampler
(Euler/DDIM, Heun, DPM-Solver, iPNDM) combines states and denoiser outputs linearly, so the map
from its starting noise :math:`x_T` to its output is affine, :math:`y = A(x_T - m) + b`. When it also
commutes with shifts by multiples of ``s`` (stationary models: ``s = 1``; upsample guidance at
factor ``s``: that ``s``), :math:`A` is block diagonal in the polyphase Fourier coordinates of
:class:`~diffmath.images.PolyphaseBasis`, and :math:`s^2` impulse responses determine it
(:func:`affine_output_law`). With :math:`x_T\sim\mathcal N(m, \Sigma_T)` the output is exactly
:math:`\mathcal N(b, A\Sigma_TA^*)`: no Monte Carlo error in the chapters' sample-quality numbers.
:func:`sampler_law` does this for a sampler of :mod:`diffmath.samplers` on a schedule's time grid.

Distances (for laws of one shape, single channel or channel by channel):

* :func:`w2` — the 2-Wasserstein (Fréchet) distance between two Gaussian image laws,
  :math:`W_2^2 = \|m_1-m_2\|^2 + \sum_k\mathrm{tr}\big(M_1 + M_2 - 2(M_1^{1/2}M_2M_1^{1/2})^{1/2}\big)`
  over the polyphase blocks (a unitary change of basis leaves every term unchanged);
* :func:`log_spectrum_error` — the RMS over radii of :math:`\log(\bar P_1/\bar P_2)`, the radially
  averaged power spectra :math:`\mathbb E|\hat x(f)|^2` of the centred laws.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from diffmath.images import GaussianImage, polyphase
from diffmath.resolution import check_factor
from diffmath.wasserstein import sqrtm_psd


def affine_output_law(run: Callable[[torch.Tensor], torch.Tensor], law_T: GaussianImage, s: int = 1) -> GaussianImage:
    r"""The law of ``run(x_T)`` for :math:`x_T\sim` ``law_T``, when ``run`` is affine and commutes with
    shifts by multiples of ``s`` (and acts on each channel alike, without mixing them).

    ``run`` maps a batch ``(B, C, H, W)`` to a batch of the same shape. Its offset is
    :math:`b=` ``run(mean)``; the responses to unit impulses at the :math:`s^2` positions of block 0
    (channel 0) give the blocks :math:`A(k)`; the output covariance has blocks
    :math:`A(k)M_T(k)A(k)^*`. The result may be singular (e.g. an upsampled low-resolution law).
    """
    C, H, W = law_T.shape
    s = check_factor(s, H, W)
    n = s * s
    base = law_T.mean[None]
    x = base.expand(n + 1, C, H, W).clone()
    r = torch.arange(n)
    x[1 + r, 0, r // s, r % s] += 1.0
    out = run(x)
    if out.shape != x.shape:
        raise ValueError(f"run must return the input's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    b, resp = out[0], out[1:, 0] - out[0, 0]  # resp[r] = A e_r (channel 0)
    a = polyphase(resp, s)  # (r, r', h, w): a[r, r'][m] = (A e_r)[s m + r']
    A = torch.fft.fft2(a.to(torch.complex128 if a.dtype == torch.float64 else torch.complex64))
    A = A.permute(2, 3, 1, 0)  # (h, w, r', r)
    M = law_T.blocks(s)
    M_out = A @ M @ A.conj().transpose(-1, -2)
    M_out = 0.5 * (M_out + M_out.conj().transpose(-1, -2))
    return GaussianImage.from_blocks(M_out, s, mean=b, allow_singular=True)


def time_grid_sigmas(schedule, n: int) -> torch.Tensor:
    """EDM noise levels of ``n`` times uniform in ``t`` from ``t_max`` to ``t_min``, then 0 (``n`` steps)."""
    from diffmath.schedules import Schedule

    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    if not (math.isfinite(schedule.t_min) and math.isfinite(schedule.t_max)):
        raise ValueError(f"schedule must have a finite time range, got [{schedule.t_min}, {schedule.t_max}]")
    if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n = int(n)
    t = torch.linspace(schedule.t_max, schedule.t_min, n, dtype=torch.float64)
    return torch.cat([schedule.edm_sigma(t), torch.zeros(1, dtype=torch.float64)])


def sampler_law(law: GaussianImage, schedule, sampler: str, n: int, s: int = 1, model=None) -> GaussianImage:
    r"""The exact law of ``sampler``'s output at ``n`` evaluations on the time grid of ``schedule``
    (:func:`time_grid_sigmas`), started from the exact marginal at the first level.

    ``model``: an :math:`\varepsilon`-model of ``schedule`` (default: ``law``'s exact one); the map
    from the start to the output must be affine and commute with shifts by ``s``
    (:func:`diffmath.output_law.affine_output_law`)."""
    from diffmath import samplers
    from diffmath.denoisers import eps_to_denoiser, exact_eps_model

    _check_law(law, "law")
    try:
        spec = samplers.get_spec(sampler)
    except ValueError:
        raise ValueError(f"sampler must be one of {tuple(samplers.SPECS)}, got {sampler!r}") from None
    if spec.evaluations != 1:
        raise ValueError(f"use a one-evaluation sampler (n steps = n evaluations), got {sampler!r}")
    sigmas = time_grid_sigmas(schedule, n)
    D = eps_to_denoiser(model if model is not None else exact_eps_model(law, schedule), schedule)
    run = lambda x: samplers.get_sampler(sampler)(D, x, sigmas)  # noqa: E731
    return affine_output_law(run, law.diffuse(1.0, sigmas[0].item()), s)


def _check_law(law, name: str) -> None:
    if not isinstance(law, GaussianImage):
        raise ValueError(f"{name} must be a GaussianImage, got {type(law).__name__}")


def _check_pair(p, q) -> None:
    _check_law(p, "p")
    _check_law(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have one shape, got {p.shape} and {q.shape}")


def _common_factor(p: GaussianImage, q: GaussianImage) -> int:
    sp, sq = p.basis.s, q.basis.s
    return sp * sq // math.gcd(sp, sq)


def w2(p: GaussianImage, q: GaussianImage) -> float:
    r"""The 2-Wasserstein distance between two Gaussian image laws of one shape (exact; see module docstring)."""
    _check_pair(p, q)
    s = _common_factor(p, q)
    M1, M2 = p.blocks(s), q.blocks(s)
    r1 = sqrtm_psd(M1)  # the Bures formula of diffmath.wasserstein, block by block
    cross = torch.linalg.eigvalsh(r1 @ M2 @ r1).clamp_min(0).sqrt().sum()
    tr = torch.diagonal(M1, dim1=-2, dim2=-1).real.sum() + torch.diagonal(M2, dim1=-2, dim2=-1).real.sum()
    channels = p.shape[0]
    cov_term = channels * (tr - 2 * cross).clamp_min(0)
    mean_term = ((p.mean - q.mean) ** 2).sum()
    return math.sqrt((mean_term + cov_term).item())


def w2_per_pixel(p: GaussianImage, q: GaussianImage) -> float:
    """:func:`w2` divided by the square root of the number of pixels (an RMS per pixel, comparable across resolutions)."""
    return w2(p, q) / math.sqrt(p.dim)


def log_spectrum_error(p: GaussianImage, q: GaussianImage) -> float:
    r"""RMS over integer radii :math:`r = |f|` of :math:`\log\big(\bar P_p(r)/\bar P_q(r)\big)`, with
    :math:`\bar P` the radially averaged power spectra of the centred laws (:func:`radial_profile`)."""
    _check_pair(p, q)
    (_, P), (_, Q) = radial_profile(p.power_spectrum()), radial_profile(q.power_spectrum())
    if (P <= 0).any() or (Q <= 0).any():
        raise ValueError("a radially averaged power spectrum is zero at some radius: the log error is infinite")
    return torch.sqrt(torch.log(P / Q).pow(2).mean()).item()


def radial_profile(P: torch.Tensor, bins: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The radial average of an ``(H, W)`` power spectrum: (bin centres of ``|f|``, mean power), integer-radius bins."""
    from diffmath.images import frequencies

    f1, f2 = frequencies(*P.shape, dtype=P.dtype, device=P.device)
    radius = torch.sqrt(f1**2 + f2**2).round().long().reshape(-1)
    n = bins or int(radius.max().item()) + 1
    radius = radius.clamp_max(n - 1)
    total = torch.zeros(n, dtype=P.dtype, device=P.device).index_add_(0, radius, P.reshape(-1))
    count = torch.zeros(n, dtype=P.dtype, device=P.device).index_add_(0, radius, torch.ones_like(P.reshape(-1)))
    keep = count > 0
    return torch.arange(n, dtype=P.dtype, device=P.device)[keep], total[keep] / count[keep]
