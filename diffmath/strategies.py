"""Hypothesis strategies for diffusion toys, for the suite's tests and for users testing their own code.

>>> from hypothesis import given
>>> from diffmath import strategies as dst
>>> @given(dst.mixtures(), dst.noise_levels())
... def test_my_denoiser(gm, level): ...

Profiles (:func:`load_profile`): ``ci`` (derandomised, 25 examples, no deadline; the default for the
suite's tests), ``thorough`` (500 examples), ``dev`` (100 examples). ``HYPOTHESIS_PROFILE`` picks one.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from diffmath import schedules as sch
from diffmath.images import GaussianImage, ImageMixture
from diffmath.mixture import GaussianMixture
from diffmath.toys import COV_TYPES

PROFILES = ("ci", "thorough", "dev", "fresh")

settings.register_profile(
    "ci", derandomize=True, max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
# the ci profile's size with new examples each run (pass --hypothesis-seed to choose them): the flake check
# of benchmarks/flakes.py runs the quick tier under it with many seeds
settings.register_profile(
    "fresh", derandomize=False, database=None, max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def load_profile(name: Optional[str] = None) -> str:
    """Load a settings profile: ``name``, else ``$HYPOTHESIS_PROFILE``, else ``ci``."""
    name = name or os.environ.get("HYPOTHESIS_PROFILE") or "ci"
    if name not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {name!r}; choose one of {PROFILES}")
    settings.load_profile(name)
    return name


def _floats(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def spd_matrices(draw, d: int, *, floor: float = 0.1, scale: float = 1.0) -> torch.Tensor:
    """Symmetric positive-definite (d, d) matrices :math:`\\text{scale}\\,AA^\\top/d + \\text{floor}\\,I`."""
    entries = draw(st.lists(_floats(-1, 1), min_size=d * d, max_size=d * d))
    A = torch.tensor(entries, dtype=torch.float64).reshape(d, d)
    return scale * A @ A.T / d + floor * torch.eye(d, dtype=torch.float64)


@st.composite
def mixtures(
    draw,
    *,
    dims=st.integers(1, 4),
    components=st.integers(1, 4),
    cov_types=st.sampled_from(COV_TYPES),
    mean_scale: float = 3.0,
    device: Optional[torch.device] = None,
) -> GaussianMixture:
    """Random Gaussian mixtures (float64) with well-conditioned covariances (eigenvalues >= 0.1)."""
    d, K, kind = draw(dims), draw(components), draw(cov_types)
    raw = draw(st.lists(_floats(0.05, 1.0), min_size=K, max_size=K))
    w = torch.tensor(raw, dtype=torch.float64)
    w = w / w.sum()
    mu = torch.tensor(draw(st.lists(_floats(-mean_scale, mean_scale), min_size=K * d, max_size=K * d)), dtype=torch.float64)
    mu = mu.reshape(K, d)
    if kind == "full":
        covs = torch.stack([draw(spd_matrices(d)) for _ in range(K)])
    elif kind == "diagonal":
        covs = torch.tensor(draw(st.lists(_floats(0.1, 2.0), min_size=K * d, max_size=K * d)), dtype=torch.float64).reshape(K, d)
    else:
        covs = torch.tensor(draw(st.lists(_floats(0.1, 2.0), min_size=K, max_size=K)), dtype=torch.float64)
    gm = GaussianMixture(w, mu, covs)
    return gm if device is None else gm.to(device)


def continuous_schedules():
    """The library's continuous schedules, with their parameters drawn."""
    return st.one_of(
        st.builds(sch.VPLinear, beta_min=_floats(0.01, 1.0), beta_max=_floats(5.0, 30.0)),
        st.builds(sch.VPCosine, s=_floats(0.0, 0.05)),
        st.just(sch.RectifiedFlow()),
        st.builds(sch.EDM, sigma_min=_floats(1e-3, 1e-2), sigma_max=_floats(10.0, 100.0)),
    )


def times(schedule: sch.Schedule, *, margin: float = 0.02, upper: float = 80.0):
    """Times strictly inside the schedule's range (``margin`` away from its ends; ``upper`` caps EDM's)."""
    hi = min(schedule.t_max, upper)
    return _floats(schedule.t_min + margin, hi - margin)


@st.composite
def noise_levels(draw, *, log10_sigma=(-3.0, 3.0)) -> tuple[float, float]:
    """``(alpha, sigma)`` pairs with :math:`\\sigma` log-uniform in ``10**log10_sigma`` and
    :math:`\\alpha\\in[0, 1]` (alpha = 0 and alpha = 1 included)."""
    sigma = 10 ** draw(_floats(*log10_sigma))
    alpha = draw(st.one_of(st.just(1.0), st.just(0.0), _floats(0.0, 1.0)))
    return alpha, sigma


def matrices(d: int, lo: float = -2.0, hi: float = 2.0):
    """Real (d, d) float64 matrices with entries in [lo, hi] (e.g. drifts of linear flows)."""
    return st.lists(_floats(lo, hi), min_size=d * d, max_size=d * d).map(
        lambda v: torch.tensor(v, dtype=torch.float64).reshape(d, d)
    )


def vectors(d: int, lo: float = -2.0, hi: float = 2.0):
    """Real (d,) float64 vectors with entries in [lo, hi]."""
    return st.lists(_floats(lo, hi), min_size=d, max_size=d).map(lambda v: torch.tensor(v, dtype=torch.float64))


@st.composite
def image_sizes(draw, *, factors=(1, 2, 4), low=st.integers(2, 6)) -> tuple[int, int, int]:
    """``(H, W, s)`` with ``s`` drawn from ``factors`` dividing both sides (``H = s * h``)."""
    s = draw(st.sampled_from(factors))
    return s * draw(low), s * draw(low), s


@st.composite
def gaussian_images(draw, *, sizes=image_sizes(), alphas=_floats(0.0, 3.5), channels=st.integers(1, 2),
                    pinched: bool = False) -> GaussianImage:
    """Random Gaussian image laws (float64): power-law fields with a random exponent, variance and
    mean; with ``pinched=True``, their block-structured version at a drawn factor (``P Sigma (I - P) = 0``)."""
    H, W, s = draw(sizes)
    law = GaussianImage.power_law(
        H, W, draw(alphas), variance=draw(_floats(0.2, 3.0)), f0=draw(_floats(0.5, 2.0)),
        mean=draw(_floats(-1.0, 1.0)), channels=draw(channels),
    )
    if pinched and s > 1:
        law = law.pinched(s, draw(_floats(0.0, 1.0)))
    return law


@st.composite
def image_mixtures(draw, *, components=st.integers(1, 3), sizes=image_sizes(factors=(1, 2))) -> ImageMixture:
    """Random mixtures of Gaussian image laws of one shape (different exponents and means)."""
    size = draw(sizes)
    K = draw(components)
    laws = [draw(gaussian_images(sizes=st.just(size), channels=st.just(1))) for _ in range(K)]
    raw = torch.tensor(draw(st.lists(_floats(0.1, 1.0), min_size=K, max_size=K)), dtype=torch.float64)
    return ImageMixture(raw / raw.sum(), laws)
