r"""SNR and resolution (article 22, kexue.fm 10047; Hoogeboom, Heek & Salimans 2023, *simple diffusion*).

Average pooling by :math:`s\times s` (:func:`diffmath.resolution.pool`) divides the variance of i.i.d.
noise by :math:`s^2` (eq. 3) while keeping the mean, so the *schedule* SNR
:math:`\alpha_t^2/\sigma_t^2` seen by the pooled image is :math:`s^2` times larger (eq. 4). To make a
high-resolution schedule look, after pooling, like a schedule tuned at the low resolution, its SNR
must be :math:`s^2` times smaller: the alignment (5), solved under VP by a log-SNR shift of
:math:`-2\log s` (:class:`diffmath.schedules.ShiftedSchedule`, :func:`aligned_alpha`).

How much the *signal* gains is another matter: the pooled signal power is between 0 and the
original (:func:`diffmath.resolution.pooling_gain`), so the signal-to-noise *power* ratio grows by
a factor between 0 and :math:`s^2` — :math:`s^2` only for block-constant images, 1 for white ones
(:func:`expected_pooling_gain` for a Gaussian image law).

Also here: the multiscale loss (7) (:func:`multiscale_loss`), the patchify/latent arithmetic of the
article's LDM paragraph (:func:`patchify`), and the end-to-end experiment of chapter 22: sampling
a Gaussian-image law at several resolutions with and without the shift (:func:`shift_experiment`).
Convention: the library's :math:`x_t=\alpha_tx_0+\sigma_t\varepsilon` (Su's :math:`\bar\alpha_t,\bar\beta_t`).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from diffmath._validation import as_tensor
from diffmath.images import GaussianImage
from diffmath.resolution import check_factor, pool


def aligned_alpha(alpha_low, s) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The VP coefficients :math:`(\alpha_{\rm hi}, \sigma_{\rm hi})` solving article 22's alignment (5),
    :math:`s^2\alpha_{\rm hi}^2/\sigma_{\rm hi}^2 = \alpha_{\rm lo}^2/\sigma_{\rm lo}^2` with
    :math:`\alpha^2+\sigma^2 = 1` on both sides: :math:`\alpha_{\rm hi}^2 = \alpha_{\rm lo}^2/(\alpha_{\rm lo}^2 + s^2\sigma_{\rm lo}^2)`
    (claim C22.3). ``alpha_low`` in [0, 1], ``s > 0``."""
    a = as_tensor(alpha_low, "alpha_low")
    if (a < 0).any() or (a > 1).any():
        raise ValueError("alpha_low must lie in [0, 1]")
    if not (isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s > 0):
        raise ValueError(f"s must be a number > 0, got {s!r}")
    from diffmath.schedules import family_normaliser  # the one place of the shift (ShiftedSchedule uses it too)

    b = s * torch.sqrt(1 - a * a)
    n = family_normaliser("vp", a, b)[0]
    return a / n, b / n


def expected_pooling_gain(law: GaussianImage, s: int) -> float:
    r""":math:`g = s^2\,\frac{\mathbb E\|\mathcal D(x_0-\mu)\|^2/(hw)}{\mathbb E\|x_0-\mu\|^2/(HW)}` for a Gaussian image law:
    the factor by which pooling raises the signal-to-noise power ratio (signal measured about the
    law's mean). 1 for white images, :math:`s^2` for block-constant ones (claim C22.2)."""
    s = check_factor(s, *law.shape[-2:])
    pooled = law.pool(s)
    per_pixel = law.eigenvalues.sum() / law.basis.H / law.basis.W
    per_pixel_low = pooled.eigenvalues.sum() / pooled.basis.H / pooled.basis.W
    return (s * s * per_pixel_low / per_pixel).item()


def full_loss(eps, eps_hat) -> torch.Tensor:
    r"""Article 22's loss (6) per image: :math:`\frac1{HW}\|\varepsilon-\hat\varepsilon\|^2` (mean over the last two axes)."""
    eps, eps_hat = as_tensor(eps, "eps"), as_tensor(eps_hat, "eps_hat")
    if eps.shape != eps_hat.shape:
        raise ValueError(f"eps and eps_hat must have one shape, got {tuple(eps.shape)}, {tuple(eps_hat.shape)}")
    return ((eps - eps_hat) ** 2).mean(dim=(-2, -1))


def multiscale_loss(eps, eps_hat, s) -> torch.Tensor:
    r"""Article 22's multiscale loss (7) per image: :math:`\frac1{(H/s)(W/s)}\|\mathcal D\varepsilon-\mathcal D\hat\varepsilon\|^2`.

    At most :func:`full_loss` (Jensen on each block), with equality exactly when the error
    :math:`\varepsilon-\hat\varepsilon` is block-constant; for white errors its expectation is
    :math:`1/s^2` of the full loss's (claim C22.4). simple diffusion combines several ``s``,
    weighting lower resolutions more (see the chapter)."""
    eps, eps_hat = as_tensor(eps, "eps"), as_tensor(eps_hat, "eps_hat")
    if eps.shape != eps_hat.shape:
        raise ValueError(f"eps and eps_hat must have one shape, got {tuple(eps.shape)}, {tuple(eps_hat.shape)}")
    return full_loss(pool(eps, s), pool(eps_hat, s))


def patchify(x, p: int) -> torch.Tensor:
    r"""Non-overlapping :math:`p\times p` patches stacked on the channel axis: ``(C, H, W) -> (H/p, W/p, C p^2)``
    (the "patchify" of article 22's LDM paragraph; claim C22.5)."""
    x = as_tensor(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (C, H, W), got {tuple(x.shape)}")
    C, H, W = x.shape
    p = check_factor(p, H, W, name="p")
    return x.reshape(C, H // p, p, W // p, p).permute(1, 3, 0, 2, 4).reshape(H // p, W // p, C * p * p)


# ------------------------------------------------------------------------------------------------
# the end-to-end experiment of chapter 22
# ------------------------------------------------------------------------------------------------

SHIFT_EXPERIMENT = {
    "alpha": 2.0,  # power-law exponent of the image law (natural images: about 2)
    "base": 16,  # the resolution the schedule is tuned for
    "resolutions": [16, 32, 64],
    "samplers": ["euler", "dpmpp_2m"],
    "nfe": [10, 25],
    "logsnr": [-15.0, 15.0],  # simple diffusion's clipped cosine schedule
}


def shift_experiment(config: Optional[dict] = None) -> dict:
    r"""Does the log-SNR shift keep sample quality constant across resolutions? (claim C22.8)

    For each resolution :math:`R`, the image law is the same continuum power-law field seen at
    :math:`R\times R` (:func:`~diffmath.images.power_law_spectrum` with ``reference=(base, base)``), and
    the schedule is simple diffusion's cosine tuned at ``base``, either as it is or shifted by
    :math:`s = R/\text{base}`. Each sampler runs the exact denoiser at each NFE; the output law is
    exact (:func:`diffmath.output_law.sampler_law`). Reported per setting: the per-pixel :math:`W_2` to the true law and
    the RMS log power-spectrum error, at the full resolution and after pooling to ``base``.
    Returns a JSON-able dict (``config`` and ``rows``).
    """
    from diffmath.output_law import log_spectrum_error, sampler_law, w2_per_pixel
    from diffmath.schedules import LogSNRCosine, ShiftedSchedule

    cfg = dict(SHIFT_EXPERIMENT, **(config or {}))
    base = int(cfg["base"])
    rows = []
    for R in cfg["resolutions"]:
        law = GaussianImage.power_law(R, R, float(cfg["alpha"]), reference=(base, base))
        q = R // base
        truth_low = law.pool(q)
        for shifted in (False, True) if R != base else (False,):
            schedule = LogSNRCosine(*cfg["logsnr"])
            if shifted:
                schedule = ShiftedSchedule(schedule, R / base)
            for sampler in cfg["samplers"]:
                for n in cfg["nfe"]:
                    out = sampler_law(law, schedule, sampler, int(n))
                    out_low = out.pool(q)
                    rows.append(
                        {
                            "resolution": R,
                            "shift": R / base if shifted else 1.0,
                            "shifted": shifted,
                            "sampler": sampler,
                            "nfe": int(n),
                            "w2": w2_per_pixel(out, law),
                            "log_spectrum": log_spectrum_error(out, law),
                            "w2_base": w2_per_pixel(out_low, truth_low),
                            "log_spectrum_base": log_spectrum_error(out_low, truth_low),
                        }
                    )
    return {"config": cfg, "rows": rows}
