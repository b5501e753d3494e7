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


def test_step_is_gaussian_about_the_mean():
    """y - mean is N(0, scale^2): its mean is 0 and P(|y - mean| < scale) = erf(1/sqrt 2), both within 5 SE
    (a heavy-tailed or shifted noise fails one of them)."""
    ab, abp = 0.6, 0.7
    c = ddpm.coefficients(ab, abp)
    scale = (c["beta_bar_prev"] * c["beta"] / c["beta_bar"]).item()
    n = 200_000
    x, eps = torch.full((n,), 0.8, dtype=torch.float64), torch.full((n,), -0.3, dtype=torch.float64)
    y = ddpm.step(x, eps, ab, abp, generator=torch.Generator().manual_seed(1)) - ddpm.step_mean(x, eps, ab, abp)
    assert abs(y.mean().item()) <= 5 * y.std().item() / math.sqrt(n)
    inside = (y.abs() < scale).double()
    p = math.erf(1 / math.sqrt(2))
    assert abs(inside.mean().item() - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_coefficients_domain_edges():
    c = ddpm.coefficients(0.9, 1.0)  # the first step: alpha_bar_0 = 1
    assert c["beta_bar_prev"].item() == 0.0 and c["alpha"].item() == pytest.approx(0.9)
    with pytest.raises(ValueError, match="alpha_bar_t < alpha_bar_prev"):
        ddpm.coefficients(0.5, 0.5)
    with pytest.raises(ValueError, match="alpha_bar_prev <= 1"):
        ddpm.coefficients(0.5, 1.0 + 1e-12)
