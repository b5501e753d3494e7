r"""Skip-Tuning (article 24; Ma et al., "The Surprising Effectiveness of Skip-Tuning in Diffusion Sampling",
ICML 2024, arXiv 2402.15170): scale the U-Net's long skip connections by :math:`\rho_i` at sampling time.

Convention (the paper's Definition 3.1 and Su's article): the :math:`k+1` skips are numbered from the
**bottom** (:math:`i=0`, the deepest, the first the decoder pops) to the **top** (:math:`i=k`, the skip
nearest the input and output, the last popped), and the ρ's form the arithmetic progression

.. math:: \Delta\rho=\frac{\rho_{top}-\rho_{bottom}}{k},\qquad \rho_i=\rho_{bottom}+i\,\Delta\rho,

so ρ's index is the decoder's pop index (:class:`diffmath.unet.UNet` takes them in that order). Su keeps
:math:`\rho_{top}=1` and tunes :math:`\rho_{bottom}<1`. A time-dependent variant (the paper's §5.2) makes
:math:`\rho_{bottom}` a function of σ.

This module also holds the two diagnostics of the paper: the skip/backbone norm ratio
:math:`\mathrm{prop}_i=\|d_i\|_2/\|u_i\|_2` (§2) and the complexity proxy
:math:`\mathbb E_x\|\nabla_xU(x)\|` (eq. 3), and the GroupNorm facts (App. C) that decide where a
scaled skip can act at all.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional, Union

import torch

from diffmath.unet import EDMDenoiser, UNet, edm_preconditioning

RhoBottom = Union[float, Callable[[torch.Tensor], torch.Tensor]]


def rho_schedule(k: int, rho_bottom: float, rho_top: float = 1.0) -> tuple[float, ...]:
    r"""The linear schedule :math:`\rho_i=\rho_{bottom}+i(\rho_{top}-\rho_{bottom})/k`, :math:`i=0..k`
    (bottom first: the decoder's pop order). ``k >= 1`` (k + 1 skips); ρ's finite and > 0."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1 (k + 1 skips), got {k!r}")
    for name, v in (("rho_bottom", rho_bottom), ("rho_top", rho_top)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    step = (rho_top - rho_bottom) / k
    rhos = [rho_bottom + i * step for i in range(k + 1)]
    rhos[-1] = float(rho_top)  # the endpoint exactly, not up to rounding
    return tuple(rhos)


class SkipTuned:
    r"""A Skip-Tuned EDM denoiser: :math:`D_\rho(x;\sigma)` with skip :math:`i` scaled by :math:`\rho_i`
    (:func:`rho_schedule` from ``rho_bottom`` to ``rho_top``), a drop-in ``D(x, sigma)`` for the samplers.

    ``rho_bottom`` is a number, or a function of the noise level ``sigma`` (a ``(batch,)`` tensor) returning
    ρ_bottom per image: the time-dependent Skip-Tuning of the paper's §5.2. ``nfe`` counts calls.
    """

    def __init__(self, denoiser: EDMDenoiser, rho_bottom: RhoBottom = 1.0, rho_top: float = 1.0):
        if not isinstance(denoiser, EDMDenoiser) or not isinstance(denoiser.net, UNet):
            raise ValueError("denoiser must be an EDMDenoiser around a diffmath.unet.UNet")
        self.denoiser, self.rho_top = denoiser, float(rho_top)
        self.k = denoiser.net.n_skips - 1
        if callable(rho_bottom):
            rho_schedule(self.k, 1.0, self.rho_top)  # validates rho_top
            self.rho_bottom = rho_bottom
        else:
            rho_schedule(self.k, rho_bottom, self.rho_top)  # validates both
            self.rho_bottom = float(rho_bottom)
        self.nfe = 0

    def scales(self, sigma: torch.Tensor) -> tuple:
        """The ρ's in pop order at noise level ``sigma`` ((batch,) tensor): numbers, or (batch,) tensors."""
        if not callable(self.rho_bottom):
            return rho_schedule(self.k, self.rho_bottom, self.rho_top)
        rb = torch.as_tensor(self.rho_bottom(sigma), dtype=torch.float32, device=sigma.device)
        if rb.shape != sigma.shape or not torch.isfinite(rb).all() or (rb <= 0).any():
            raise ValueError("rho_bottom(sigma) must return finite values > 0 of sigma's shape")
        return tuple(rb + i * (self.rho_top - rb) / self.k for i in range(self.k + 1))

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        s = sigma if isinstance(sigma, torch.Tensor) else torch.full((x.shape[0],), float(sigma))
        s = s.reshape(-1).to(device=x.device, dtype=torch.float32)
        if s.numel() == 1:
            s = s.expand(x.shape[0])
        with torch.no_grad():
            return self.denoiser(x, s, skip_scales=self.scales(s))


def window_rho(rho: float, sigma_lo: float, sigma_hi: float) -> Callable[[torch.Tensor], torch.Tensor]:
    r""":math:`\rho_{bottom}(\sigma)=\rho` for :math:`\sigma\in[\sigma_{lo},\sigma_{hi})`, 1 elsewhere: Skip-Tuning
    applied in one window of noise levels only (the paper's §5.2 window search)."""
    if not (0 < sigma_lo < sigma_hi):
        raise ValueError(f"need 0 < sigma_lo < sigma_hi, got {sigma_lo}, {sigma_hi}")
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")

    def rho_of(sigma: torch.Tensor) -> torch.Tensor:
        inside = (sigma >= sigma_lo) & (sigma < sigma_hi)
        return torch.where(inside, torch.full_like(sigma, rho), torch.ones_like(sigma))

    return rho_of


def absorbed_denoiser(denoiser: EDMDenoiser, rho_bottom: float, rho_top: float = 1.0) -> EDMDenoiser:
    r"""Skip-Tuning's effect through the decoder blocks' 1×1 residual convolutions, absorbed into weights: a copy
    of ``denoiser`` whose decoder block :math:`j` (pop order) has the columns of its 1×1 skip convolution that read
    the popped skip multiplied by :math:`\rho_j`, and no skip scaled (claim C24.3). It equals the Skip-Tuned
    denoiser except through the GroupNorm groups that straddle the boundary between u and d (and GroupNorm's
    eps): aligned groups do not see ρ at all (App. C of Ma et al. 2024)."""
    net = copy.deepcopy(denoiser.net)
    rhos = rho_schedule(net.n_skips - 1, rho_bottom, rho_top)
    popped = list(reversed(net.skip_channels))
    with torch.no_grad():
        for j, block in enumerate(net.dec):
            if block.skip is None:
                raise ValueError(f"decoder block {j} has no 1x1 skip convolution to absorb rho into")
            block.skip.weight[:, -popped[j]:] *= rhos[j]
    return EDMDenoiser(net, denoiser.sigma_data)


def ramp_rho(rho_high: float, rho_low: float, sigma_min: float, sigma_max: float) -> Callable[[torch.Tensor], torch.Tensor]:
    r""":math:`\rho_{bottom}(\sigma)` linear in :math:`\log\sigma` from ``rho_low`` at ``sigma_min`` to ``rho_high`` at
    ``sigma_max`` (clamped outside): a time-dependent Skip-Tuning strongest at high noise (``rho_high < rho_low = 1``:
    ρ decreasing in diffusion time, the paper's §5.2 preference for EDM) or at low noise (the reverse)."""
    if not (0 < sigma_min < sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    for name, v in (("rho_high", rho_high), ("rho_low", rho_low)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    lo, hi = math.log(sigma_min), math.log(sigma_max)

    def rho_of(sigma: torch.Tensor) -> torch.Tensor:
        u = ((sigma.log() - lo) / (hi - lo)).clamp(0, 1)
        return rho_low + (rho_high - rho_low) * u

    return rho_of


# --- diagnostics ----------------------------------------------------------------------------------
def _device(denoiser: EDMDenoiser) -> torch.device:
    """The device of the denoiser's network (its first parameter's)."""
    return next(denoiser.net.parameters()).device


def norm_ratios(denoiser: EDMDenoiser, x: torch.Tensor, sigma: float) -> list[tuple[str, float]]:
    r""":math:`\mathrm{prop}_i=\|d_i\|_2/\|u_i\|_2` per skip in pop order (bottom first), averaged over the batch
    (the paper's §2 diagnostic), at noise level ``sigma``: ``[(skip name, ratio), ...]``."""
    record: list = []
    dev = _device(denoiser)
    s = torch.full((x.shape[0],), float(sigma), device=dev)
    _, _, c_in, c_noise = edm_preconditioning(s, denoiser.sigma_data)
    with torch.no_grad():
        denoiser.net(c_in.reshape(-1, 1, 1, 1) * x.to(device=dev, dtype=torch.float32), c_noise, record=record)
    return [(name, ((d.flatten(1).norm(dim=1)) / u.flatten(1).norm(dim=1)).mean().item()) for name, u, d in record]


def gradient_norms(denoiser: EDMDenoiser, x: torch.Tensor, sigma: float, rho_bottom: float, *, probes: int = 4,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""The complexity proxy of the paper's eq. (3) per image, :math:`\|\nabla_xU(x)\|`, for the network
    :math:`U=F(\cdot;c_{noise})` (the U-Net without preconditioning) under Skip-Tuning at ``rho_bottom``:
    the Frobenius norm of the input-output Jacobian, estimated by ``probes`` Gaussian vector-Jacobian
    products (:math:`\mathbb E_v\|J^\top v\|^2=\|J\|_F^2`); ``x`` (batch, ...) should be inputs
    :math:`c_{in}x_\sigma` the network sees at ``sigma``. Returns a (batch,) tensor."""
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    net = denoiser.net
    scales = rho_schedule(net.n_skips - 1, rho_bottom)
    dev = _device(denoiser)
    c_noise = torch.log(torch.full((x.shape[0],), float(sigma), device=dev)) / 4
    xi = x.detach().to(device=dev, dtype=torch.float32).requires_grad_(True)
    out = net(xi, c_noise, scales)
    total = torch.zeros(x.shape[0])
    for p in range(probes):
        v = torch.randn(out.shape, generator=generator).to(dev)  # drawn on the CPU: the same probes on every device
        (g,) = torch.autograd.grad(out, xi, v, retain_graph=p < probes - 1)
        total += g.flatten(1).pow(2).sum(1).cpu()
    return (total / probes).sqrt()


def gradient_norm(denoiser: EDMDenoiser, x: torch.Tensor, sigma: float, rho_bottom: float, *, probes: int = 4,
                  generator: Optional[torch.Generator] = None) -> float:
    r""":math:`\mathbb E_x\|\nabla_xU(x)\|` (the paper's eq. 3): :func:`gradient_norms` averaged over the batch."""
    return gradient_norms(denoiser, x, sigma, rho_bottom, probes=probes, generator=generator).mean().item()


# --- GroupNorm facts (the paper's App. C) -----------------------------------------------------------
def group_boundaries(channels: int, groups: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` channel ranges of GroupNorm's groups."""
    if channels % groups:
        raise ValueError(f"channels = {channels} is not divisible by groups = {groups}")
    size = channels // groups
    return [(g * size, (g + 1) * size) for g in range(groups)]


def straddling_groups(u_channels: int, d_channels: int, groups: int) -> list[int]:
    r"""Groups of a GroupNorm on ``cat([u, d])`` that hold channels of **both** u and d: the only groups in
    which scaling d changes the normalised output. At most one (the group that holds the boundary)."""
    b = u_channels
    return [g for g, (lo, hi) in enumerate(group_boundaries(u_channels + d_channels, groups)) if lo < b < hi]

