"""The public hypothesis strategies produce valid objects."""

import pytest
import torch
from hypothesis import given

from diffmath import strategies as dst


@given(gm=dst.mixtures())
def test_mixtures_are_valid(gm):
    assert torch.allclose(gm.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (gm.eigenvalues >= 0.1 - 1e-12).all()
    assert gm.cov_type in ("full", "diagonal", "isotropic")


@given(pair=dst.continuous_schedules().flatmap(lambda s: dst.times(s).map(lambda t: (s, t))))
def test_times_inside_schedule(pair):
    schedule, t = pair
    assert schedule.t_min < t < schedule.t_max
    assert torch.isfinite(schedule.alpha(t)) and schedule.sigma(t) > 0


@given(level=dst.noise_levels())
def test_noise_levels(level):
    alpha, sigma = level
    assert 0 <= alpha <= 1 and 1e-3 <= sigma <= 1e3 * (1 + 1e-12)


def test_unknown_profile():
    with pytest.raises(ValueError, match="profile"):
        dst.load_profile("nope")


@given(law=dst.gaussian_images(pinched=True))
def test_gaussian_images_are_valid(law):
    assert (law.eigenvalues > 0).all() and law.mean.ndim == 3
    assert law.sample(1).shape == (1, *law.shape)


@given(mix=dst.image_mixtures())
def test_image_mixtures_are_valid(mix):
    assert abs(mix.weights.sum().item() - 1) < 1e-12 and mix.n_components >= 1
