"""diffmath.empirical: the empirical law's denoiser, score and density against the Gaussian-mixture code path (a
mixture with vanishing covariances), autograd (Tweedie), the sigma -> 0 limit (memorisation) and Monte Carlo."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import montecarlo
from diffmath.empirical import EmpiricalLaw
from diffmath.mixture import GaussianMixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_law(seed, n=5, d=3):
    return EmpiricalLaw(torch.randn(n, d, generator=gen(seed), dtype=torch.float64))


@given(st.integers(1, 6), st.integers(1, 4), st.floats(0.0, 2.0), st.floats(0.05, 5.0), st.integers(0, 10**6))
def test_denoiser_is_the_limit_of_a_mixture_property(n, d, alpha, sigma, seed):
    """A Gaussian mixture on the same points with covariance tau^2 I (tau = 1e-7) has the denoiser
    sum_i w_i (p_i + alpha tau^2/(alpha^2 tau^2 + sigma^2) (x - alpha p_i)): the empirical law's up to O(tau^2/sigma^2).
    The mixture's code path is independent of this module's."""
    law = random_law(seed, n, d)
    x = 2 * torch.randn(7, d, generator=gen(seed + 1), dtype=torch.float64)
    tau = 1e-7
    gm = GaussianMixture(torch.full((n,), 1 / n, dtype=torch.float64), law.points, torch.full((n,), tau * tau, dtype=torch.float64))
    want = gm.denoise(x, alpha, sigma)
    assert torch.allclose(law.denoise(x, alpha, sigma), want, rtol=1e-9, atol=1e-9)
    # the score and the density of the noisy law, against the diffused mixture (exactly the same law)
    mix = law.diffuse(alpha, sigma)
    assert torch.allclose(law.score_at(x, alpha, sigma), mix.score(x), rtol=1e-9, atol=1e-9 / sigma**2)
    assert torch.allclose(law.log_prob_at(x, alpha, sigma), mix.log_prob(x), rtol=1e-12, atol=1e-10)


def test_score_is_the_gradient_of_the_log_density():
    law = random_law(1)
    x = torch.randn(4, 3, generator=gen(2), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(law.log_prob_at(x, 0.8, 0.3).sum(), x)
    assert torch.allclose(law.score_at(x.detach(), 0.8, 0.3), g, rtol=1e-11, atol=1e-11)


def test_per_point_levels_match_one_level_at_a_time():
    law = random_law(3)
    x = torch.randn(3, 3, generator=gen(4), dtype=torch.float64)
    a, s = torch.tensor([0.5, 1.0, 0.9], dtype=torch.float64), torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    got = law.denoise(x, a, s)
    for i in range(3):
        assert torch.allclose(got[i], law.denoise(x[i], a[i].item(), s[i].item()), rtol=1e-14, atol=0)


def test_small_noise_memorises_the_nearest_point():
    """As sigma -> 0 the weights concentrate on the nearest training point: with a gap g between the nearest and the
    next squared distances, the denoiser is within (n - 1) exp(-g / (2 sigma^2)) max|p| of that point."""
    law = EmpiricalLaw(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64))
    x = torch.tensor([[0.3, 0.1], [0.6, 0.2], [0.1, 1.2]], dtype=torch.float64)
    near = law.nearest(x)
    assert torch.equal(near, law.points[[0, 1, 2]])
    d2 = ((x[:, None] - law.points) ** 2).sum(-1).sort(-1).values
    for sigma in (0.3, 0.1, 0.05):
        bound = (law.n - 1) * torch.exp(-(d2[:, 1] - d2[:, 0]) / (2 * sigma**2)) * law.points.abs().max()
        err = (law.denoise(x, 1.0, sigma) - near).abs().max(-1).values
        assert (err <= 2 * bound + 1e-15).all()
    assert (law.denoise(x, 1.0, 0.3) - near).abs().max() > 1e-4  # not yet memorised at larger noise


def test_denoiser_is_the_posterior_mean_by_monte_carlo():
    """Self-normalised importance sampling: E[x0 | x] = E[x0 L(x | x0)] / E[L(x | x0)] with x0 drawn from the law and
    L the Gaussian likelihood of the fixed x; within 5 standard errors of the denoiser."""
    law = random_law(5, n=4, d=2)
    x = torch.tensor([[0.2, -0.4]], dtype=torch.float64)
    draws = law.sample(200000, generator=gen(6))
    lw = -((x - 0.9 * draws) ** 2).sum(-1) / (2 * 0.7**2)
    est = montecarlo.self_normalised(draws, lw)
    assert (est.z(law.denoise(x, 0.9, 0.7)[0]) <= montecarlo.Z_BOUND).all()


def test_sampling_draws_the_training_points_uniformly():
    law = random_law(7, n=3, d=2)
    draws = law.sample(30000, generator=gen(8))
    hits = torch.stack([(draws == p).all(-1) for p in law.points], -1).to(torch.float64)
    assert torch.equal(hits.sum(-1), torch.ones(30000, dtype=torch.float64))
    assert (montecarlo.mean(hits).z(torch.full((3,), 1 / 3, dtype=torch.float64)) <= montecarlo.Z_BOUND).all()


def test_bad_input():
    law = random_law(9)
    x = torch.zeros(2, 3, dtype=torch.float64)
    for bad, match in ((torch.zeros(3), "points"), (torch.zeros(0, 2), "points"), ([[math.nan, 0.0]], "NaN")):
        with pytest.raises(ValueError, match=match):
            EmpiricalLaw(bad)
    with pytest.raises(ValueError, match="sigma"):
        law.denoise(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        law.denoise(x, -1.0, 1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        law.denoise(torch.zeros(2, 2, dtype=torch.float64), 1.0, 1.0)
    with pytest.raises(ValueError, match="batch shape"):
        law.denoise(x, 1.0, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma > 0"):
        law.diffuse(1.0, 0.0)
    assert repr(law) == "EmpiricalLaw(n=5, d=3, dtype=torch.float64)" and law.to("cpu").n == 5


def test_the_exact_flow_reproduces_the_training_set():
    """Memorisation: Heun on EDM's grid with the exact denoiser of the empirical law ends on training points (the last
    step's weights are one-hot to rounding at sigma_min = 0.002 for points a unit apart), and reaches every one of them."""
    from diffmath import samplers
    from diffmath.schedules import edm_rho_grid

    law = EmpiricalLaw(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64))
    sig = torch.cat([edm_rho_grid(20, 0.002, 80.0, 7.0), torch.zeros(1, dtype=torch.float64)])
    x = samplers.sample_heun(lambda z, s: law.denoise(z, 1.0, s), 80 * torch.randn(64, 2, generator=gen(10), dtype=torch.float64), sig)
    assert (x - law.nearest(x)).abs().max() <= 1e-12
    assert len({tuple(p.tolist()) for p in law.nearest(x)}) == law.n
