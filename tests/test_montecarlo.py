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


def test_mean_of_two_samples_and_the_unbiased_standard_error():
    e = montecarlo.mean(torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert e.value.item() == 2.5 and e.se.item() == pytest.approx(1.5, rel=1e-15)  # s = 3/sqrt(2), se = s/sqrt(2)
    x = torch.tensor([0.0, 1.0, 5.0, -2.0], dtype=torch.float64)
    s2 = sum((v - 1.0) ** 2 for v in x.tolist()) / 3
    assert montecarlo.mean(x).se.item() == pytest.approx((s2 / 4) ** 0.5, rel=1e-15)


def test_self_normalised_standard_error_by_hand():
    v = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    lw = torch.log(torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64))
    e = montecarlo.self_normalised(v, lw)
    w = [0.25, 0.5, 0.25]
    mu = 0.25 * 1 + 0.5 * 2 + 0.25 * 4
    se = sum(wi**2 * (vi - mu) ** 2 for wi, vi in zip(w, v.tolist())) ** 0.5
    assert e.value.item() == pytest.approx(mu, rel=1e-15) and e.se.item() == pytest.approx(se, rel=1e-14)
    with pytest.raises(ValueError, match="log_weights"):
        montecarlo.self_normalised(v, torch.tensor([True, False, True]))
