"""diffmath.mean_value at the edges of its domains (the chapter's claims are tested in tests/test_part21.py):
each function accepts the smallest valid input and refuses the first invalid one, with values from closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from diffmath import mean_value as mv


def test_geometric_grid_with_two_nodes_is_its_ends():
    assert mv.edm_rho_limit(2, 0.002, 80.0).tolist() == [80.0, 0.002]
    g = mv.edm_rho_limit(5, 0.01, 100.0)
    assert torch.allclose(g, torch.tensor([100.0, 10.0, 1.0, 0.1, 0.01], dtype=torch.float64), rtol=1e-14)


def test_exact_gain_at_sigma_zero():
    """Down to sigma = 0 the factor is s / sqrt(s^2 + t_from^2)."""
    assert mv.exact_gain(0.0, 1.0, 1.0) == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert mv.exact_gain(0.0, 0.0, 2.0) == 1.0
    with pytest.raises(ValueError, match="t_to"):
        mv.exact_gain(-1e-300, 1.0, 1.0)


def test_mean_value_time_edges():
    s1 = mv.mean_value_time(0.5, 1.0, 0.7, iterations=1)
    above = mv.amed_gain(0.75, 0.5, 1.0, 0.7) >= mv.exact_gain(0.5, 1.0, 0.7)  # one halving of [0.5, 1], then the midpoint
    assert s1 == (0.875 if above else 0.625)
    s = mv.mean_value_time(0.5, 1.0, 0.7)
    assert mv.amed_gain(s, 0.5, 1.0, 0.7) == pytest.approx(mv.exact_gain(0.5, 1.0, 0.7), rel=1e-14)
    with pytest.raises(ValueError, match="t_to < t_from"):
        mv.mean_value_time(0.5, 0.5, 0.7)
    with pytest.raises(ValueError, match="iterations"):
        mv.mean_value_time(0.5, 1.0, 0.7, iterations=0)


def test_euler_step_refuses_infinite_and_accepts_zero_sigma_next():
    x, D = torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    assert mv.euler_step(x, D, 1.0, 0.0).item() == 0.5  # to sigma = 0: the denoised value
    for bad in (math.inf, math.nan, -0.1):
        with pytest.raises(ValueError, match="sigma_next"):
            mv.euler_step(x, D, 1.0, bad)


def test_pca_of_two_points_is_a_line():
    res, explained = mv.pca_residuals(torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64), ks=(0, 1))
    assert res[1].item() == pytest.approx(0.0, abs=1e-15) and res[0].item() == pytest.approx(1.0)
    assert explained[1].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="m >= 2"):
        mv.pca_residuals(torch.zeros(1, 2, dtype=torch.float64))
