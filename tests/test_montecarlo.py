"""Monte Carlo helpers: the standard errors are calibrated (z-scores behave like |N(0,1)|)."""

import pytest
import torch

from diffmath import montecarlo


def test_mean_se_calibrated():
    g = torch.Generator().manual_seed(0)
    zs = torch.stack([montecarlo.mean(2.0 + 3.0 * torch.randn(400, generator=g, dtype=torch.float64)).z(2.0) for _ in range(2000)])
    # |N(0,1)| has mean sqrt(2/pi) ~ 0.798 and P(> 5) ~ 6e-7; 2000 replicates pin the mean to ~0.013
    assert abs(zs.mean().item() - (2 / torch.pi) ** 0.5) < 0.05
    assert (zs > 5).sum().item() == 0


def test_self_normalised_matches_gaussian_posterior_mean():
    """Prior N(0,1), likelihood N(x; theta, s^2): the posterior mean is x/(1+s^2)."""
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(200_000, generator=g, dtype=torch.float64)
    x, s = 1.3, 0.8
    est = montecarlo.self_normalised(theta, -((x - theta) ** 2) / (2 * s**2))
    assert est.z(x / (1 + s**2)).item() <= montecarlo.Z_BOUND
    assert est.z(x / (1 + s**2) + 0.05).item() > montecarlo.Z_BOUND  # a wrong value is rejected


def test_mean_needs_two_samples():
    with pytest.raises(ValueError):
        montecarlo.mean(torch.zeros(1))


def test_constant_samples():
    est = montecarlo.mean(torch.zeros(10, dtype=torch.float64))
    assert est.z(0.0).item() == 0.0 and est.z(1.0).item() == float("inf")
