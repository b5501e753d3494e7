r"""Denoisers in the k-diffusion/EDM convention, and the exact mixture as a DDPM ε-model.

Convention (Karras et al. 2022, EDM; article 21): a *denoiser* is a callable ``D(x, sigma)``
returning :math:`\mathbb E[x_0\mid x_0 + \sigma\varepsilon = x]` in VE/EDM coordinates, with
``sigma`` a tensor of shape ``(batch,)`` (or a number). A library state :math:`x_t = \alpha_t x_0 +
\sigma_t\varepsilon` maps to EDM coordinates by :math:`\tilde x = x_t/\alpha_t`,
:math:`\tilde\sigma = \sigma_t/\alpha_t` (:func:`vp_to_edm`, :func:`edm_to_vp`); the PF-ODE is
:math:`d\tilde x/d\tilde\sigma = (\tilde x - D(\tilde x,\tilde\sigma))/\tilde\sigma` in those
coordinates for every schedule (claim C0.9).

:func:`ddpm_eps_model` wraps the exact mixture as DDPM's :math:`\varepsilon_\theta(x_t, n)` with
``alphas_cumprod[n]`` :math:`=\alpha_n^2` (Ho et al. 2020), so a diffusers-style loop can drive it;
:func:`exact_eps_model` does the same for any schedule, and :func:`eps_to_denoiser` turns any
:math:`\varepsilon`-model ``model(x_t, t)`` of a schedule into an EDM denoiser for the samplers.

Every *exact law* of the library works here: :class:`~diffmath.mixture.GaussianMixture` and
:class:`~diffmath.empirical.EmpiricalLaw` (points ``(batch, d)``) and the image laws
:class:`~diffmath.images.GaussianImage` and :class:`~diffmath.images.ImageMixture` (images ``(batch, C, H, W)``).
"""

from __future__ import annotations

from typing import Callable

import torch

from diffmath._validation import as_tensor
from diffmath.empirical import EmpiricalLaw
from diffmath.images import GaussianImage, ImageMixture
from diffmath.mixture import GaussianMixture
from diffmath.schedules import DDPMDiscrete, Schedule

EXACT_LAWS = (GaussianMixture, GaussianImage, ImageMixture, EmpiricalLaw)


def _check_law(law, name: str = "law") -> None:
    if not isinstance(law, EXACT_LAWS):
        raise ValueError(
            f"{name} must be one of {', '.join(c.__name__ for c in EXACT_LAWS)}, got {type(law).__name__}"
        )


def _per_point(level: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (batch,) level broadcast against x (batch, ...); a 0-d level unchanged."""
    return level.reshape(*level.shape, *([1] * (x.ndim - level.ndim))) if level.ndim else level


class CountingDenoiser:
    """Wrap ``D(x, sigma)`` and count its calls: ``.nfe`` is the number of function evaluations.

    One call on a batch counts once (as a network forward pass would). ``reset()`` sets it to 0.
    """

    def __init__(self, fn: Callable[[torch.Tensor, object], torch.Tensor]):
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.nfe = 0

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        return self.fn(x, sigma)

    def reset(self) -> None:
        self.nfe = 0


def edm_denoiser(gm) -> CountingDenoiser:
    r"""The exact EDM denoiser of a law: :math:`D(x,\sigma) = \mathbb E[x_0\mid x_0+\sigma\varepsilon = x]`.

    ``gm.denoise(x, 1, sigma)`` (claim C0.3) with ``sigma`` a number or a tensor of shape (batch,),
    wrapped in a :class:`CountingDenoiser` (attribute ``nfe``). ``gm``: any exact law (:data:`EXACT_LAWS`).
    """
    _check_law(gm, "gm")
    return CountingDenoiser(lambda x, sigma: gm.denoise(x, 1.0, sigma))


def vp_to_edm(schedule: Schedule, x, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A state of ``schedule`` at time ``t`` (a number) in EDM coordinates: :math:`(x_t/\alpha_t,\ \sigma_t/\alpha_t)`."""
    x = as_tensor(x, "x")
    t = schedule.times(t)
    if t.ndim != 0:
        raise ValueError("t must be a single time (a number)")
    a = schedule.alpha(t)
    if a.item() <= 0:
        raise ValueError(f"alpha(t) must be > 0 to map to EDM coordinates, got {a.item():.6g}")
    return x / a.to(x.dtype), schedule.edm_sigma(t).to(x.dtype)


def edm_to_vp(schedule: Schedule, x_edm, sigma_edm) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The inverse of :func:`vp_to_edm`: :math:`t = t(\tilde\sigma)` and :math:`x_t = \alpha_t\tilde x`."""
    x = as_tensor(x_edm, "x_edm")
    t = schedule.t_of_edm_sigma(sigma_edm)
    if t.ndim != 0:
        raise ValueError("sigma_edm must be a single noise level (a number)")
    return schedule.alpha(t).to(x.dtype) * x, t


def exact_eps_model(law, schedule: Schedule) -> Callable[[torch.Tensor, object], torch.Tensor]:
    r"""The exact :math:`\varepsilon`-prediction ``model(x_t, t)`` of ``law`` under ``schedule``.

    :math:`\varepsilon(x_t, t) = \mathbb E[\varepsilon\mid x_t] = (x_t - \alpha_t D(x_t;\alpha_t,\sigma_t))/\sigma_t`
    with :math:`D` the law's exact denoiser; ``t`` a time of the schedule (a number, or a tensor of the
    batch shape), :math:`\sigma_t > 0`.
    """
    _check_law(law)
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")

    event = tuple(law.shape) if hasattr(law, "shape") else (law.dim,)

    def model(x_t, t) -> torch.Tensor:
        x_t = as_tensor(x_t, "x_t", dtype=law.dtype, device=law.device)
        if x_t.ndim <= len(event) or tuple(x_t.shape[-len(event):]) != tuple(event):
            raise ValueError(f"x_t must have shape (batch, {', '.join(map(str, event))}), got {tuple(x_t.shape)}")
        t = schedule.times(t)
        a, s = schedule.alpha(t).to(x_t), schedule.sigma(t).to(x_t)
        if (s <= 0).any():
            raise ValueError("t must be a time with sigma(t) > 0 (at sigma = 0 the noise is not defined)")
        D = law.denoise(x_t, a, s)
        return (x_t - _per_point(a, x_t) * D) / _per_point(s, x_t)

    return model


def ddpm_eps_model(gm, schedule: DDPMDiscrete) -> Callable[[torch.Tensor, object], torch.Tensor]:
    r"""The exact law as DDPM's ε-prediction model ``model(x_t, timestep)`` (Ho et al. 2020).

    With :math:`\alpha_n^2 =` ``schedule.alphas_cumprod[n]`` and :math:`\sigma_n^2 = 1-\alpha_n^2`,
    :math:`\varepsilon(x_t, n) = \mathbb E[\varepsilon\mid x_t] = (x_t - \alpha_n D(x_t;\alpha_n,\sigma_n))/\sigma_n`
    (:func:`exact_eps_model` on the discrete schedule). ``timestep`` is an integer step (a number,
    or a tensor of shape (batch,)).
    """
    _check_law(gm, "gm")
    if not isinstance(schedule, DDPMDiscrete):
        raise ValueError(f"schedule must be a DDPMDiscrete, got {type(schedule).__name__}")
    return exact_eps_model(gm, schedule)


def eps_to_denoiser(model: Callable, schedule: Schedule) -> CountingDenoiser:
    r"""An :math:`\varepsilon`-model ``model(x_t, t)`` of ``schedule`` as an EDM denoiser ``D(x, sigma)``.

    In EDM coordinates :math:`x = x_t/\alpha_t`, :math:`\sigma = \sigma_t/\alpha_t`, so
    :math:`t = t(\sigma)` (:meth:`~diffmath.schedules.Schedule.t_of_edm_sigma`) and
    :math:`D(x,\sigma) = x - \sigma\,\varepsilon(\alpha_t x, t)` — the same prediction, in the
    coordinates every sampler of :mod:`diffmath.samplers` uses. Counts its calls (``.nfe``).
    """
    if not callable(model):
        raise ValueError(f"model must be callable model(x_t, t), got {type(model).__name__}")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")

    def D(x, sigma) -> torch.Tensor:
        sig = torch.as_tensor(sigma, dtype=torch.float64)
        t = schedule.t_of_edm_sigma(sig)
        a = schedule.alpha(t).to(x)
        eps = model(_per_point(a, x) * x, t)
        return x - _per_point(sig.to(x), x) * eps

    return CountingDenoiser(D)
