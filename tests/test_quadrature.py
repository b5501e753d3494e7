"""diffmath.quadrature, the brute-force posterior oracle, against the mixture's closed forms in the cases where its
grid choices matter: a point far outside the prior (the likelihood window alone; the log-weights shifted by their
maximum, else every weight underflows), wide components (the prior's range in its standard deviations), and 2-D."""

from __future__ import annotations

import pytest
import torch

from diffmath import quadrature
from diffmath.mixture import GaussianMixture

F64 = torch.float64


def _identity(grid, x):
    return grid[None]


def test_far_point_posterior_mean_matches_closed_form():
    """x = 40 for a prior near 0 with sd 1: the prior's log-density at the posterior is about -670, so the weights
    exist only after subtracting their maximum, on the likelihood's own window."""
    gm = GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.0], [0.5]], dtype=F64), torch.tensor([[1.0], [0.8]], dtype=F64))
    x = torch.tensor([[40.0], [-35.0]], dtype=F64)
    got = quadrature.posterior_expectation(gm, x, 1.0, 0.3, _identity)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, gm.denoise(x, 1.0, 0.3), rtol=1e-9, atol=0)


@pytest.mark.parametrize("sd", [3.0, 0.05])
def test_prior_moments_with_wide_and_narrow_components(sd):
    """alpha = 0: the posterior is the prior, integrated over its whole range (means +- 14 sd)."""
    gm = GaussianMixture(torch.tensor([0.4, 0.6], dtype=F64), torch.tensor([[-2.0], [1.0]], dtype=F64), torch.tensor([[sd**2], [0.5 * sd**2]], dtype=F64))
    x = torch.zeros(1, 1, dtype=F64)
    second = quadrature.posterior_expectation(gm, x, 0.0, 1.0, lambda g, xx: (g**2)[None])
    exact = (gm.weights * (gm.means[:, 0] ** 2 + gm.eigenvalues[:, 0])).sum()
    assert second.item() == pytest.approx(exact.item(), rel=1e-10)


def test_two_dimensional_posterior_mean():
    gm = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[-1.0, 0.5], [1.5, -0.5]], dtype=F64),
                         torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.9]]], dtype=F64))
    x = torch.tensor([[0.3, -0.2], [4.0, 3.0]], dtype=F64)
    got = quadrature.posterior_expectation(gm, x, 0.8, 0.6, _identity)
    assert torch.allclose(got, gm.denoise(x, 0.8, 0.6), rtol=1e-8, atol=1e-10)


def test_bad_input():
    gm3 = GaussianMixture(torch.ones(1, dtype=F64), torch.zeros(1, 3, dtype=F64), torch.ones(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="d = 1 or 2"):
        quadrature.posterior_expectation(gm3, torch.zeros(1, 3, dtype=F64), 1.0, 1.0, _identity)
    gm = GaussianMixture(torch.ones(1, dtype=F64), torch.zeros(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64))
    with pytest.raises(ValueError, match="sigma"):
        quadrature.posterior_expectation(gm, torch.zeros(1, 1, dtype=F64), 1.0, 0.0, _identity)


@pytest.mark.parametrize("sigma", [2e-5, 1e-3, 0.05])
def test_narrow_likelihood_posterior_mean_and_variance(sigma):
    """A likelihood far narrower than the prior (down to 2e-5, a few hundred times finer than the scouting grid over
    the prior's range): the grid must find it and shrink to it, or the trapezoid sees a spike between two nodes."""
    gm = GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.0], [0.5]], dtype=F64), torch.tensor([[1.0], [0.8]], dtype=F64))
    x = torch.tensor([[0.3], [-2.0]], dtype=F64)
    got = quadrature.posterior_expectation(gm, x, 0.9, sigma, lambda g, xx: torch.stack([g[:, 0], g[:, 0] ** 2], -1)[None])
    r, m = gm.posterior(x, 0.9, sigma)
    v = gm.eigenvalues[:, 0]
    post_var = v * sigma**2 / (0.81 * v + sigma**2)  # each component's posterior variance
    assert torch.allclose(got[:, 0], (r * m[..., 0]).sum(-1), rtol=1e-9, atol=1e-12)
    assert torch.allclose(got[:, 1], (r * (m[..., 0] ** 2 + post_var)).sum(-1), rtol=1e-9, atol=1e-12)


def test_two_dimensional_narrow_and_far():
    gm = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([[-1.0, 0.5], [1.5, -0.5]], dtype=F64),
                         torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.9]]], dtype=F64))
    x = torch.tensor([[0.3, -0.2], [25.0, -18.0]], dtype=F64)
    for alpha, sigma in ((1.0, 1e-3), (0.7, 0.02), (1.0, 0.6), (0.3, 0.05)):
        got = quadrature.posterior_expectation(gm, x, alpha, sigma, _identity)
        assert torch.allclose(got, gm.denoise(x, alpha, sigma), rtol=1e-8, atol=1e-10), (alpha, sigma)


def test_narrow_likelihood_at_small_alpha():
    """x_t = 0.3 x0 + 1e-5 eps: the likelihood in x0 has width sigma/alpha = 3.3e-5, 180 times finer than the scouting
    grid over the prior; only a window of +-14 such widths around x/alpha finds the whole posterior."""
    gm = GaussianMixture(torch.tensor([0.3, 0.7], dtype=F64), torch.tensor([[-1.0], [0.5]], dtype=F64), torch.tensor([[1.0], [0.8]], dtype=F64))
    x = torch.tensor([[0.1], [-0.2]], dtype=F64)
    got = quadrature.posterior_expectation(gm, x, 0.3, 1e-5, _identity)
    assert torch.allclose(got, gm.denoise(x, 0.3, 1e-5), rtol=1e-10, atol=1e-14)


WINDOW_CASES = [
    (1.0, 0.5, 1.0, 0.3), (2.0, 0.5, 0.8, 0.5), (2.0, -3.0, 1.0, 0.05),
    (1.0, 2.0, 0.5, 1e-3),  # a narrow likelihood at alpha != 1: its window is centred on x / alpha
    (1.0, 40.0, 1.0, 0.3), (1.0, -40.0, 1.0, 0.3), (1.0, 60.0, 1.0, 0.3),  # far in the tail: the likelihood's window
    # and the gap between it and the prior's range
    (1.0, 40.0, 1.0, 3.0), (1.0, -40.0, 1.0, 3.0),  # a wide likelihood far out: the posterior (m = +-4, v = 0.95)
    # reaches past the prior's range (+-14) on the far side, which must be scouted further
    (1.0, 58.0, 1.0, 3.0), (1.0, -58.0, 1.0, 3.0),  # ... by 5.6, a hundred scouting steps: each growth must double the span
    (0.05, 0.3, 0.0, 1.0), (3.0, 0.3, 0.0, 1.0),  # alpha = 0: the posterior is the prior, its region the prior's range
]


@pytest.mark.parametrize("prior_sd, x, alpha, sigma", WINDOW_CASES)
def test_window_holds_the_posterior_and_little_else(prior_sd, x, alpha, sigma):
    """The integration box for a Gaussian prior, whose posterior is N(m, v^2) in closed form: the log posterior is
    within width^2/2 of its maximum exactly on m +- width v, so the box must hold that interval, and it spends at
    least 99% of its points on it: each side passes it by under 0.5% of its width (the scouting grids have n/4 = 500
    points per part, so one scouting step over the likelihood's window is 0.2% of the region)."""
    width, n = 14.0, 2001
    gm = GaussianMixture(torch.tensor([1.0], dtype=F64), torch.tensor([[0.0]], dtype=F64), torch.tensor([[prior_sd**2]], dtype=F64))
    precision = 1 / prior_sd**2 + alpha**2 / sigma**2
    v, m = precision**-0.5, (alpha * x / sigma**2) / precision
    (axis,) = quadrature._window(gm, torch.tensor([[x]], dtype=F64), alpha, sigma, n, width)
    lo, hi = axis[0].item(), axis[-1].item()
    region = 2 * width * v
    assert len(axis) == n and lo <= m - width * v and hi >= m + width * v, (lo, hi, m, v)
    assert (m - width * v) - lo <= 5e-3 * region and hi - (m + width * v) <= 5e-3 * region, (lo, hi, m, v)


@pytest.mark.parametrize("x, alpha, sigma", [((0.5, -1.0), 1.0, 0.3), ((30.0, -25.0), 1.0, 0.4), ((1.0, 2.0), 0.6, 2e-3),
                                             ((35.0, 0.0), 1.0, 3.0)])
def test_window_in_two_dimensions(x, alpha, sigma):
    """2-D, a Gaussian prior N(0, diag(1, 4)): the posterior is Gaussian with covariance P^-1, P = Sigma^-1 + alpha^2/sigma^2 I,
    and the region where its log density is within width^2/2 of the maximum is an ellipse whose shadow on axis j is
    m_j +- width sqrt((P^-1)_jj). The box holds that shadow and passes it by at most one scouting step per side: 101
    points per scouted part in 2-D, over the prior's range (means +- width times the largest sd, 2), the likelihood's
    window (x/alpha +- (width + 1) sigma/alpha) or the gap between them, the coarsest bounding the step."""
    width, n = 14.0, 401
    cov = torch.diag(torch.tensor([1.0, 4.0], dtype=F64))
    gm = GaussianMixture(torch.tensor([1.0], dtype=F64), torch.zeros(1, 2, dtype=F64), cov[None])
    xt = torch.tensor([x], dtype=F64)
    P = torch.linalg.inv(cov) + alpha**2 / sigma**2 * torch.eye(2, dtype=F64)
    C = torch.linalg.inv(P)
    m = C @ (alpha / sigma**2 * xt[0])
    axes = quadrature._window(gm, xt, alpha, sigma, n, width)
    for j, axis in enumerate(axes):
        half = width * C[j, j].sqrt().item()
        prior, window = 2 * width * 2.0, 2 * (width + 1) * sigma / alpha
        gap = max(abs(x[j] / alpha) - window / 2 - prior / 2, 0.0)
        step = max(prior, window, gap) / 100
        lo, hi = axis[0].item(), axis[-1].item()
        assert len(axis) == n and lo <= m[j] - half and hi >= m[j] + half, (j, lo, hi, m[j], half)
        assert (m[j] - half) - lo <= step and hi - (m[j] + half) <= step, (j, lo, hi, m[j], half, step)
