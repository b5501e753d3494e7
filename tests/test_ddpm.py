"""diffmath.ddpm: the ancestral step in Su's notation."""

import math

import pytest
import torch

from diffmath import ddpm


def test_step_noise_scale():
    """The step's noise has the posterior scale (or beta_t), measured on many draws (5 SE)."""
    ab, abp = 0.6, 0.7
    c = ddpm.coefficients(ab, abp)
    x = torch.zeros(200_000, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for noise, scale in (("posterior", c["beta_bar_prev"] * c["beta"] / c["beta_bar"]), ("beta", c["beta"])):
        y = ddpm.step(x, torch.zeros_like(x), ab, abp, noise=noise, generator=g)
        var = (y**2).mean()
        se = (y**2).std() / math.sqrt(len(y))
        assert abs(var - scale**2) < 5 * se
    assert c["beta_bar_prev"] * c["beta"] / c["beta_bar"] < c["beta"]


def test_coefficients_compose():
    c = ddpm.coefficients(0.5, 0.8)
    assert abs(c["beta"] ** 2 + c["alpha"] ** 2 * c["beta_bar_prev"] ** 2 - c["beta_bar"] ** 2) < 1e-15


def test_bad_input():
    with pytest.raises(ValueError, match="decays"):
        ddpm.coefficients(0.8, 0.5)
    with pytest.raises(ValueError, match="noise"):
        ddpm.step(torch.zeros(2), torch.zeros(2), 0.5, 0.8, noise="other")
