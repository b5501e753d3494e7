"""GaussianMixture against independent computations: scipy, autograd, Monte Carlo (5 SE)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import diffmath as dm
from diffmath import montecarlo, quadrature
from diffmath import strategies as dst
from diffmath.claims.toy_lab import scipy_stats_logpdf
from diffmath.toys import COV_TYPES, random_mixture

Z = montecarlo.Z_BOUND


def gen(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_log_prob_matches_scipy(device, cov_type):
    gm = random_mixture(4, 3, cov_type=cov_type, seed=1, device=device)
    x = torch.cat([gm.sample(100, generator=gen(device, 0)), torch.full((1, 3), 40.0, dtype=torch.float64, device=device)])
    ref = scipy_stats_logpdf(x.cpu().numpy(), gm.weights.cpu().numpy(), gm.means.cpu().numpy(), gm.covariances().cpu().numpy())
    assert np.allclose(gm.log_prob(x).cpu().numpy(), ref, rtol=1e-10, atol=0)


@given(gm=dst.mixtures(), seed=st.integers(0, 2**16))
def test_score_matches_autograd(gm, seed):
    x = 3 * torch.randn(20, gm.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(gm.log_prob(xg).sum(), xg)
    assert torch.allclose(gm.score(x), auto, rtol=1e-9, atol=1e-10)
    assert torch.allclose(gm.score_at(x, 1.0, 0.0), auto, rtol=1e-9, atol=1e-10)


def test_batch_shapes_and_input_kinds():
    gm = dm.GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0])
    x = np.zeros((3, 4, 2))
    assert gm.log_prob(x).shape == (3, 4)
    assert gm.score(x.tolist()).shape == (3, 4, 2)
    assert gm.denoise(x, 0.5, torch.full((3, 4), 0.3)).shape == (3, 4, 2)
    assert gm.log_prob(x).dtype == torch.float64


def test_float32_parameters_give_float32():
    w = np.array([0.25, 0.75], dtype=np.float32)
    gm = dm.GaussianMixture(w, np.zeros((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32))
    x = torch.randn(5, 3)
    assert gm.score(x).dtype == torch.float32 and gm.denoise(x, 0.9, 0.1).dtype == torch.float32
    gm64 = dm.GaussianMixture(w.astype(np.float64), np.zeros((2, 3)), np.ones((2, 3)))
    assert torch.allclose(gm.log_prob(x).double(), gm64.log_prob(x), rtol=1e-5)


def test_diffuse_matches_monte_carlo(device):
    gm = random_mixture(2, 3, seed=2, device=device)
    alpha, sigma, n = 0.5, 1.2, 100_000
    g = gen(device, 1)
    x0 = gm.sample(n, generator=g)
    xt = alpha * x0 + sigma * torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=device)
    gt = gm.diffuse(alpha, sigma)
    assert montecarlo.mean(xt).z(gt.mean()).max() <= Z
    centred = xt - gt.mean()
    outer = (centred[:, :, None] * centred[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(outer).z(gt.covariance().reshape(-1)).max() <= Z
    # beyond two moments: E[log p_t(x_t)] over the diffused samples against the same expectation
    # over independent draws from the claimed law (two independent estimates, SEs combined)
    lp_model = gt.log_prob(xt)
    lp_exact = gt.log_prob(gt.sample(n, generator=g))
    diff = montecarlo.mean(torch.stack([lp_model, lp_exact], 1))
    se = (diff.se[0] ** 2 + diff.se[1] ** 2).sqrt()
    assert (diff.value[0] - diff.value[1]).abs() <= Z * se


@given(gm=dst.mixtures(), level=dst.noise_levels())
def test_diffuse_parameters_property(gm, level):
    alpha, sigma = level
    gt = gm.diffuse(alpha, sigma)
    eye = torch.eye(gm.dim, dtype=torch.float64)
    assert torch.allclose(gt.means, alpha * gm.means, rtol=1e-12, atol=0)
    expected = alpha**2 * gm.covariances() + sigma**2 * eye
    assert torch.allclose(gt.covariances(), expected, rtol=1e-10, atol=1e-12 * expected.abs().max().item())
    assert torch.equal(gt.weights, gm.weights)


def test_denoise_matches_importance_sampling(device):
    gm = random_mixture(3, 2, seed=3, device=device)
    alpha, sigma, n = 0.9, 0.7, 200_000
    g = gen(device, 2)
    prior = gm.sample(n, generator=g)
    x = gm.diffuse(alpha, sigma).sample(3, generator=g)
    exact = gm.denoise(x, alpha, sigma)
    for i in range(3):
        logw = -((x[i] - alpha * prior) ** 2).sum(-1) / (2 * sigma**2)
        assert montecarlo.self_normalised(prior, logw).z(exact[i]).max() <= Z


@given(gm=dst.mixtures(), level=dst.noise_levels(), seed=st.integers(0, 2**16))
def test_tweedie_property(gm, level, seed):
    alpha, sigma = level
    x = gm.diffuse(alpha, sigma).sample(16, generator=torch.Generator().manual_seed(seed))
    lhs = alpha * gm.denoise(x, alpha, sigma) - x
    rhs = sigma**2 * gm.score_at(x, alpha, sigma)
    assert ((lhs - rhs).abs().max() <= 1e-10 * max(1.0, x.abs().max().item())).item()


def test_per_point_levels_match_scalar(device):
    gm = random_mixture(3, 4, seed=4, device=device)
    x = torch.randn(6, 4, dtype=torch.float64, device=device)
    a = torch.linspace(0.1, 1.0, 6, dtype=torch.float64, device=device)
    s = torch.linspace(2.0, 0.05, 6, dtype=torch.float64, device=device)
    batched = gm.denoise(x, a, s)
    one_by_one = torch.stack([gm.denoise(x[i], a[i].item(), s[i].item()) for i in range(6)])
    assert torch.allclose(batched, one_by_one, rtol=1e-12, atol=1e-14)
    scores = gm.score_at(x, a, s)
    ref = torch.stack([gm.diffuse(a[i].item(), s[i].item()).score(x[i]) for i in range(6)])
    assert torch.allclose(scores, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "K,d,cov_type",
    [(64, 1024, "isotropic"), (64, 1024, "diagonal"), (2, 1024, "full"), (64, 16, "full")],
)
def test_denoise_finite_over_noise_range(K, d, cov_type):
    gm = random_mixture(K, d, cov_type=cov_type, seed=5)
    g = torch.Generator().manual_seed(0)
    x = torch.cat([gm.sample(8, generator=g), 1e3 * torch.randn(2, d, generator=g, dtype=torch.float64)])
    for sigma in (1e-3, 1e-1, 1e1, 1e3):
        D = gm.denoise(x, 1.0, sigma)
        sc = gm.score_at(x, 1.0, sigma)
        lp = gm.diffuse(1.0, sigma).log_prob(x)
        assert torch.isfinite(D).all() and torch.isfinite(sc).all() and torch.isfinite(lp).all()
        # Tweedie holds across the range, measured against the size of x
        assert (D - x - sigma**2 * sc).abs().max() <= 1e-9 * x.abs().max()


def test_conditional_score_residual_orthogonal(device):
    gm = random_mixture(2, 2, seed=6, device=device)
    alpha, sigma, n = 0.6, 0.9, 100_000
    g = gen(device, 3)
    x0 = gm.sample(n, generator=g)
    e = torch.randn(x0.shape, generator=g, dtype=x0.dtype, device=device)
    xt = alpha * x0 + sigma * e
    resid = -e / sigma - gm.score_at(xt, alpha, sigma)
    h = torch.cat([torch.ones(n, 1, dtype=xt.dtype, device=device), xt, xt**2], 1)
    prods = (resid[:, :, None] * h[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(prods).z(0.0).max() <= Z
    # and the same products against the conditional score alone are far from zero (the test can fail)
    bad = ((-e / sigma)[:, :, None] * h[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(bad).z(0.0).max() > 10 * Z


def test_sample_moments(device):
    gm = random_mixture(3, 2, seed=7, device=device)
    n = 100_000
    x = gm.sample(n, generator=gen(device, 4))
    assert montecarlo.mean(x).z(gm.mean()).max() <= Z
    c = x - gm.mean()
    outer = (c[:, :, None] * c[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(outer).z(gm.covariance().reshape(-1)).max() <= Z


def test_responsibilities_and_posterior():
    gm = random_mixture(3, 2, seed=8)
    x = torch.randn(10, 2, dtype=torch.float64)
    r = gm.responsibilities(x)
    assert torch.allclose(r.sum(-1), torch.ones(10, dtype=torch.float64), atol=1e-14)
    rt, means = gm.posterior(x, 0.7, 0.4)
    assert torch.allclose(rt, gm.diffuse(0.7, 0.4).responsibilities(x), rtol=1e-12, atol=1e-15)
    assert torch.allclose((rt[..., None] * means).sum(-2), gm.denoise(x, 0.7, 0.4), rtol=1e-12, atol=1e-14)


def test_alpha_zero_denoiser_is_prior_mean():
    gm = random_mixture(3, 2, seed=9)
    x = torch.randn(4, 2, dtype=torch.float64)
    assert torch.allclose(gm.denoise(x, 0.0, 1.0), gm.mean().expand(4, 2), rtol=1e-12)


GOOD = dict(weights=[0.5, 0.5], means=[[0.0, 0.0], [1.0, 1.0]], covs=[[[1.0, 0.0], [0.0, 1.0]]] * 2)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(weights=[1.2, -0.2]), r"weights\[1\] = -0.2"),
        (dict(weights=[0.5, 0.6]), "sum to 1"),
        (dict(weights=[float("nan"), 0.5]), "weights contains NaN"),
        (dict(means=[[0.0, 0.0]]), "means must have shape"),
        (dict(covs=[[[1.0, 0.5], [0.0, 1.0]]] * 2), r"covs\[0\] is not symmetric"),
        (dict(covs=[[[1.0, 2.0], [2.0, 1.0]]] * 2), r"covs\[0\] is not positive definite"),
        (dict(covs=[[1.0, -1.0], [1.0, 1.0]]), "diagonal variances"),
        (dict(covs=[1.0, 0.0]), "isotropic variances"),
        (dict(covs=[[[1.0]]] * 2), "full covs must have shape"),
    ],
)
def test_bad_parameters_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        dm.GaussianMixture(**{**GOOD, **change})


def test_bad_calls_rejected():
    gm = dm.GaussianMixture(**GOOD)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        gm.score(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gm.denoise(torch.zeros(3, 2), 1.0, 0.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        gm.denoise(torch.zeros(3, 2), -1.0, 1.0)
    with pytest.raises(ValueError, match="batch shape"):
        gm.denoise(torch.zeros(3, 2), torch.ones(4), 1.0)
    with pytest.raises(ValueError, match="x contains NaN"):
        gm.log_prob([[float("inf"), 0.0]])
    with pytest.raises(ValueError, match="both be 0"):
        gm.diffuse(0.0, 0.0)
    with pytest.raises(ValueError, match="n must be"):
        gm.sample(-1)


@given(
    gm=dst.mixtures(dims=st.just(1)),
    alpha=st.floats(0.0, 1.0),
    sigma=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**16),
)
def test_denoise_matches_quadrature_property(gm, alpha, sigma, seed):
    """C0.3 on random 1-D mixtures: the closed-form denoiser against direct integration."""
    x = gm.diffuse(alpha, sigma).sample(6, generator=torch.Generator().manual_seed(seed))[:, 0]
    quad = quadrature.posterior_expectation(gm, x[:, None], alpha, sigma, lambda g, xx: g[None].expand(len(xx), -1, -1))[:, 0]
    scale = 1.0 + gm.means.abs().max().item()
    assert (gm.denoise(x[:, None], alpha, sigma)[:, 0] - quad).abs().max() <= 1e-9 * scale


@given(
    gm=dst.mixtures(dims=st.just(1)),
    alpha=st.floats(0.05, 1.0),
    sigma=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**16),
)
def test_conditional_score_posterior_average_property(gm, alpha, sigma, seed):
    """C0.5 on random 1-D mixtures: E[-(x - alpha x0)/sigma^2 | x] by quadrature is the score."""
    x = gm.diffuse(alpha, sigma).sample(6, generator=torch.Generator().manual_seed(seed))[:, 0]
    cond = quadrature.posterior_expectation(gm, x[:, None], alpha, sigma, lambda g, xx: g[None].expand(len(xx), -1, -1))[:, 0]
    avg = -(x - alpha * cond) / sigma**2  # the conditional score is affine in x0
    score = gm.score_at(x[:, None], alpha, sigma)[:, 0]
    assert (avg - score).abs().max() <= 1e-9 * (1.0 + gm.means.abs().max().item()) / sigma**2


@given(gm=dst.mixtures(dims=st.integers(1, 2), components=st.integers(1, 3)), level=dst.noise_levels(log10_sigma=(-1.0, 0.5)))
def test_posterior_covariance_trace_matches_quadrature(gm, level):
    alpha, sigma = level
    x = gm.diffuse(alpha, sigma).sample(3, generator=torch.Generator().manual_seed(0))
    mean = gm.denoise(x, alpha, sigma)
    quad = torch.cat(
        [
            quadrature.posterior_expectation(gm, x[i : i + 1], alpha, sigma, lambda g, xx, m=mean[i]: ((g - m) ** 2).sum(-1)[None, :, None])[:, 0]
            for i in range(3)
        ]
    )
    assert torch.allclose(gm.posterior_covariance_trace(x, alpha, sigma), quad, rtol=1e-8, atol=1e-12)


# --- what the mutation run of issue 11 found untested ------------------------------------------------------------


def test_weights_rules():
    """Weights: a 2-D array is refused by its shape, a zero weight is allowed (the component never contributes),
    and the sum-to-one tolerance is tight in float64 and loose only in float32."""
    with pytest.raises(ValueError, match=r"weights must have shape \(K,\)"):
        dm.GaussianMixture([[0.5, 0.5]], [[0.0], [1.0]], [1.0, 1.0])
    x = torch.tensor([[0.3], [2.0]], dtype=torch.float64)
    with_zero = dm.GaussianMixture([0.0, 1.0], [[5.0], [1.0]], [1.0, 2.0])
    alone = dm.GaussianMixture([1.0], [[1.0]], [2.0])
    assert torch.allclose(with_zero.log_prob(x), alone.log_prob(x), rtol=1e-14, atol=0)
    assert torch.allclose(with_zero.score(x), alone.score(x), rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="sum to 1"):
        dm.GaussianMixture([0.5, 0.5 + 1e-7], [[0.0], [1.0]], [1.0, 1.0])  # float64: 1e-9
    f32 = lambda w: dm.GaussianMixture(torch.tensor(w, dtype=torch.float32), torch.zeros(2, 1), torch.ones(2))
    assert f32([0.5, 0.5 + 1e-6]).dtype == torch.float32  # float32: 1e-5
    with pytest.raises(ValueError, match="sum to 1"):
        f32([0.75, 0.75])


def test_both_levels_zero_is_refused_and_posteriors_need_noise():
    gm = random_mixture(2, 2, seed=3)
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="cannot both be 0"):
        gm.score_at(x, 0.0, 0.0)
    for method in (gm.posterior, gm.posterior_covariance_trace, gm.denoise):
        with pytest.raises(ValueError, match="sigma must be > 0"):
            method(x, 1.0, 0.0)


def test_empty_batches_and_batch_shapes_of_every_method():
    """An empty batch gives an empty result; a (2, 3, d) batch gives what the same 6 points give one by one, for
    every method, with levels shared or given per point."""
    gm = random_mixture(3, 2, seed=4)
    assert gm.score(torch.zeros(0, 2, dtype=torch.float64)).shape == (0, 2)
    assert gm.log_prob(torch.zeros(0, 2, dtype=torch.float64)).shape == (0,)
    x = 2 * torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = 0.5 + torch.rand(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s = 0.2 + torch.rand(2, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    flat = x.reshape(6, 2)
    for alpha, sigma in ((a, s), (0.7, s), (a, 0.4)):
        def one(method, i):
            ai = alpha.reshape(6)[i].item() if torch.is_tensor(alpha) else alpha
            si = sigma.reshape(6)[i].item() if torch.is_tensor(sigma) else sigma
            return method(flat[i : i + 1], ai, si)[0]

        for method in (gm.denoise, gm.score_at, gm.posterior_covariance_trace):
            batched = method(x, alpha, sigma)
            assert batched.shape[:2] == (2, 3)
            each = torch.stack([one(method, i) for i in range(6)]).reshape(batched.shape)
            assert torch.allclose(batched, each, rtol=1e-12, atol=1e-14), method.__name__


def test_samples_have_the_mixture_moments_and_every_row_is_drawn():
    """sample(): the sample mean and covariance are within 5 SE of the mixture's (SE from the same samples), each
    component's share within 5 SE of its weight; and every row is a draw, even when a component gets exactly one
    (means far from 0, so that an unfilled row would stand out)."""
    gm = random_mixture(3, 2, seed=11, spread=3.0)
    x = gm.sample(40_000, generator=torch.Generator().manual_seed(11))
    z_mean = montecarlo.mean(x).z(gm.mean())
    assert (z_mean <= Z).all(), z_mean
    centred = x - gm.mean()
    outer = (centred[:, :, None] * centred[:, None, :]).reshape(len(x), -1)
    z_cov = montecarlo.mean(outer).z(gm.covariance().reshape(-1))
    assert (z_cov <= Z).all(), z_cov
    # E_x[p(k | x)] = w_k exactly: the mean responsibility of the draws estimates the weights
    assert (montecarlo.mean(gm.responsibilities(x)).z(gm.weights) <= Z).all()
    far = dm.GaussianMixture([0.3, 0.3, 0.4], [[100.0], [200.0], [300.0]], [1.0, 1.0, 1.0])
    assert far.sample(0).shape == (0, 1)
    singles = 0
    for seed in range(40):
        y = far.sample(4, generator=torch.Generator().manual_seed(seed))[:, 0]
        nearest = torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64)[((y[:, None] - torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64)).abs()).argmin(-1)]
        assert ((y - nearest).abs() < 8).all(), (seed, y)
        singles += any(int(((y - c).abs() < 8).sum()) == 1 for c in (100.0, 200.0, 300.0))
    assert singles > 0  # the case of a component with exactly one draw did occur
