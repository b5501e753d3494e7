"""Score matching vs conditional score matching (article 18), against independent computations."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import diffmath as dm
from diffmath import montecarlo, quadrature
from diffmath import score_matching as smod
from diffmath import strategies as dst
from diffmath.toys import random_mixture

Z = montecarlo.Z_BOUND


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _affine(d, seed, scale=0.7):
    g = gen(seed)
    return scale * torch.randn(d, d, generator=g, dtype=torch.float64), scale * torch.randn(d, generator=g, dtype=torch.float64)


@given(gm=dst.mixtures(dims=st.just(1)), alpha=st.floats(0.05, 1.0), sigma=st.floats(0.05, 3.0), seed=st.integers(0, 2**16))
def test_ratio_identity_quadrature_property(gm, alpha, sigma, seed):
    """C18.1: E[grad k] / E[k] over the prior, by quadrature, is the closed-form score."""
    x = gm.diffuse(alpha, sigma).sample(4, generator=gen(seed))
    ratio = quadrature.posterior_expectation(gm, x, alpha, sigma, lambda g, xx: (alpha * g[None] - xx[:, None, :]) / sigma**2)
    exact = gm.score_at(x, alpha, sigma)
    assert (ratio - exact).abs().max() <= 1e-9 * (1 + gm.means.abs().max().item()) / sigma**2


def test_posterior_average_quadrature_2d(device):
    """C18.2 in two dimensions."""
    gm = random_mixture(2, 2, seed=3, device=device)
    alpha, sigma = 0.5, 0.9
    x = gm.diffuse(alpha, sigma).sample(3, generator=gen(0, device))
    avg = quadrature.posterior_expectation(gm, x, alpha, sigma, lambda g, xx: -(xx[:, None, :] - alpha * g[None]) / sigma**2, n=501)
    assert torch.allclose(avg, gm.score_at(x, alpha, sigma), rtol=1e-9, atol=1e-12)


def test_plugin_estimator_consistent():
    """The plug-in (3) converges to the score as N grows, and is visibly biased at N = 2."""
    gm = random_mixture(2, 2, seed=4)
    alpha, sigma = 0.9, 0.8
    x = gm.diffuse(alpha, sigma).sample(1, generator=gen(1))
    truth = gm.score_at(x, alpha, sigma)[0]
    big = smod.plugin_score(x, gm.sample(400_000, generator=gen(2))[None], alpha, sigma)[0]
    assert (big - truth).abs().max() < 0.02 * (1 + truth.abs().max())
    reps = 40_000
    small = smod.plugin_score(x.expand(reps, 2), gm.sample(reps * 2, generator=gen(3)).reshape(reps, 2, 2), alpha, sigma)
    assert montecarlo.mean(small).z(truth).max() > Z


@given(gm=dst.mixtures(dims=st.integers(1, 2), components=st.integers(1, 3)), level=dst.noise_levels(log10_sigma=(-1.0, 0.3)), seed=st.integers(0, 2**16))
def test_sm_le_csm_property(gm, level, seed):
    """C18.3 on random mixtures and random affine models (paired samples)."""
    alpha, sigma = level
    model = smod.AffineScore(gm.dim, generator=gen(seed))
    x0, eps, _ = smod.sample_pairs(gm, alpha, sigma, 20_000, gen(seed + 1))
    with torch.no_grad():
        sm, csm = smod.per_sample_losses(model, gm, alpha, sigma, x0, eps)
    est = montecarlo.mean(csm - sm)
    assert est.value >= -Z * est.se - 1e-12 * csm.abs().mean()  # 5 SE, plus float64 rounding (alpha = 0: equal)


@given(
    cov=st.integers(1, 3).flatmap(lambda d: dst.spd_matrices(d)),
    level=dst.noise_levels(log10_sigma=(-2.0, 1.0)),
    seed=st.integers(0, 2**16),
)
def test_affine_gap_is_constant_property(cov, level, seed):
    """C18.4 exactly: for Gaussian data and any affine model, L_CSM - L_SM = d/sigma^2 - tr S^-1."""
    alpha, sigma = level
    d = cov.shape[0]
    mu = torch.randn(d, generator=gen(seed), dtype=torch.float64)
    gap = smod.gap_gaussian(cov, alpha, sigma)
    for k in range(3):
        A, b = _affine(d, seed + k, scale=3.0 * k)
        sm, csm = smod.affine_losses_gaussian(mu, cov, alpha, sigma, A, b)
        assert abs((csm - sm - gap).item()) <= 1e-10 * (abs(csm.item()) + 1)


def test_affine_losses_match_monte_carlo(device):
    mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
    cov = torch.tensor([[0.8, 0.2], [0.2, 0.4]], dtype=torch.float64)
    gauss = dm.GaussianMixture([1.0], mu[None], cov[None]).to(device)
    A, b = (t.to(device) for t in _affine(2, 5))
    alpha, sigma = 0.7, 0.4
    sm_exact, csm_exact = smod.affine_losses_gaussian(mu.to(device), cov.to(device), alpha, sigma, A, b)
    x0, eps, _ = smod.sample_pairs(gauss, alpha, sigma, 200_000, gen(6, device))
    sm, csm = smod.per_sample_losses(lambda x: x @ A.T + b, gauss, alpha, sigma, x0, eps)
    assert montecarlo.mean(sm).z(sm_exact) <= Z and montecarlo.mean(csm).z(csm_exact) <= Z


@given(gm=dst.mixtures(dims=st.integers(1, 2), components=st.integers(1, 3)), level=dst.noise_levels(log10_sigma=(-1.0, 0.3)), seed=st.integers(0, 2**16))
def test_mixture_gap_property(gm, level, seed):
    """C18.4 on mixtures: the paired difference minus the conditional-variance form has mean 0."""
    alpha, sigma = level
    model = smod.mlp_score(gm.dim, width=8, seed=seed)
    x0, eps, xt = smod.sample_pairs(gm, alpha, sigma, 20_000, gen(seed + 2))
    with torch.no_grad():
        sm, csm = smod.per_sample_losses(model, gm, alpha, sigma, x0, eps)
    est = montecarlo.mean(csm - sm - smod.gap_per_sample(gm, alpha, sigma, xt))
    # 5 SE, plus float64 rounding of the per-sample terms (at alpha = 0 both losses coincide exactly
    # in exact arithmetic and the SE is itself rounding noise)
    assert est.value.abs() <= Z * est.se + 1e-12 * csm.abs().mean()


def test_gradients_agree(device):
    """C18.4: the two losses have the same parameter gradients (batch means, 5 SE per parameter),
    while the gradients themselves are far from zero."""
    gm = random_mixture(2, 2, seed=7, device=device)
    alpha, sigma = 0.7, 0.6
    net = smod.mlp_score(2, width=8, seed=7).to(device)
    x0, eps, _ = smod.sample_pairs(gm, alpha, sigma, 40_000, gen(8, device))
    diffs, grads = [], []
    for xb, eb in zip(x0.chunk(40), eps.chunk(40)):
        sm, csm = smod.per_sample_losses(net, gm, alpha, sigma, xb, eb)
        g_sm = torch.cat([g.reshape(-1) for g in torch.autograd.grad(sm.mean(), list(net.parameters()), retain_graph=True)])
        g_csm = torch.cat([g.reshape(-1) for g in torch.autograd.grad(csm.mean(), list(net.parameters()))])
        diffs.append(g_csm - g_sm)
        grads.append(g_sm)
    assert montecarlo.mean(torch.stack(diffs)).z(0.0).max() <= Z
    assert montecarlo.mean(torch.stack(grads)).z(0.0).max() > 10 * Z


def test_csm_gradient_unbiased_batch_one():
    """C18.5 (iii): single-sample CSM gradients average to the exact grad L_SM."""
    mu = torch.tensor([0.2, 0.4], dtype=torch.float64)
    cov = torch.tensor([[0.6, -0.1], [-0.1, 0.9]], dtype=torch.float64)
    gauss = dm.GaussianMixture([1.0], mu[None], cov[None])
    alpha, sigma = 0.9, 0.3
    A, b = (t.requires_grad_(True) for t in _affine(2, 9))
    sm_exact, _ = smod.affine_losses_gaussian(mu, cov, alpha, sigma, A, b)
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(sm_exact, (A, b))])
    n = 20_000
    x0, eps, _ = smod.sample_pairs(gauss, alpha, sigma, n, gen(10))
    rows = []
    for i in range(0, n, 1000):  # per-sample gradients through autograd, 1000 at a time (vectorised sum)
        xb, eb = x0[i : i + 1000], eps[i : i + 1000]
        for j in range(0, 1000, 250):
            _, csm = smod.per_sample_losses(lambda x: x @ A.T + b, gauss, alpha, sigma, xb[j : j + 250], eb[j : j + 250])
            jac = [torch.autograd.grad(csm[k], (A, b), retain_graph=True) for k in range(0, 250, 25)]
            rows.extend(torch.cat([g.reshape(-1) for g in gk]) for gk in jac)
    assert montecarlo.mean(torch.stack(rows)).z(exact).max() <= Z


@given(cov=st.integers(1, 4).flatmap(lambda d: dst.spd_matrices(d)), alpha=st.floats(0.1, 1.0), log_sigma=st.floats(-3, 2))
def test_gap_floor_property(cov, alpha, log_sigma):
    """C18.6: 0 <= sigma^2 C_t <= d and d - sigma^2 C_t <= sum_i sigma^2 / (alpha^2 lambda_i)."""
    sigma = 10**log_sigma
    d = cov.shape[0]
    floor = sigma**2 * smod.gap_gaussian(cov, alpha, sigma).item()
    lam = torch.linalg.eigvalsh(cov)
    assert -1e-12 <= floor <= d * (1 + 1e-12)
    assert d - floor <= (sigma**2 / (alpha**2 * lam)).sum().item() * (1 + 1e-9) + 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        smod.gap_gaussian(torch.eye(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="square"):
        smod.gap_gaussian(torch.ones(2, 3), 1.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        smod.sample_pairs(random_mixture(1, 1), 1.0, 0.0, 3, gen(0))


def test_affine_score_is_its_formula_and_plugin_with_shared_samples():
    model = smod.AffineScore(3, generator=gen(4))
    x = torch.randn(5, 3, generator=gen(5), dtype=torch.float64)
    assert torch.allclose(model(x), torch.einsum("ij,nj->ni", model.A, x) + model.b, rtol=1e-15, atol=1e-15)
    # plug-in estimator with one shared set of draws, against the weights written out
    x0 = torch.randn(7, 3, generator=gen(6), dtype=torch.float64)
    alpha, sigma = 0.8, 0.6
    got = smod.plugin_score(x, x0, alpha, sigma)
    for i in range(5):
        logw = [-((x[i] - alpha * x0[j]) ** 2).sum().item() / (2 * sigma**2) for j in range(7)]
        top = max(logw)
        w = [math.exp(v - top) for v in logw]
        num = sum(wj * (alpha * x0[j] - x[i]) for j, wj in enumerate(w)) / sum(w)
        assert torch.allclose(got[i], num / sigma**2, rtol=1e-12, atol=1e-12)


def test_affine_losses_refuse_mismatched_shapes():
    mu, C = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    A, b = torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for args in ((mu, torch.eye(3, dtype=torch.float64), A, b), (mu, C, torch.eye(3, dtype=torch.float64), b), (mu, C, A, torch.zeros(3, dtype=torch.float64))):
        m, c, a, bb = args
        with pytest.raises(ValueError, match="need mean"):
            smod.affine_losses_gaussian(m, c, 0.5, 0.5, a, bb)
