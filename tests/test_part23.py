"""Part 23 (upsample guidance): property tests of the claims' identities, against independent computations."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import ddpm
from diffmath import resolution as res
from diffmath import strategies as dst
from diffmath import upsample_guidance as ug
from diffmath.denoisers import exact_eps_model
from diffmath.images import GaussianImage
from diffmath.schedules import LogSNRCosine, VPCosine, VPLinear


def gen(seed):
    return torch.Generator().manual_seed(seed)


@given(ab=st.floats(0.01, 0.98), ratio=st.floats(0.5, 0.999), seed=st.integers(0, 2**16))
def test_ddpm_step_mean_is_posterior_mean_property(ab, ratio, seed):
    """C23.1: eq. (1)'s mean with the true noise equals the posterior mean; the posterior variance
    equals the Gaussian conditional variance of x_{t-1} given x_t (computed from the joint covariance)."""
    abp = ab + ratio * (1 - ab)  # alpha_bar_{t-1} in (alpha_bar_t, 1)
    x0 = torch.randn(5, dtype=torch.float64, generator=gen(seed))
    eps = torch.randn(5, dtype=torch.float64, generator=gen(seed + 1))
    xt = ab * x0 + math.sqrt(1 - ab * ab) * eps
    mean, std = ddpm.posterior(x0, xt, ab, abp)
    assert torch.allclose(ddpm.step_mean(xt, eps, ab, abp), mean, rtol=1e-10, atol=1e-10)
    a = ab / abp
    vp = 1 - abp * abp
    cond_var = vp - (a * vp) ** 2 / (a * a * vp + 1 - a * a)
    assert abs(std.item() ** 2 - cond_var) <= 1e-12 + 1e-10 * cond_var


@given(law=dst.gaussian_images(sizes=dst.image_sizes(factors=(2, 4))), a=st.floats(0.05, 1.0), sg=st.floats(0.05, 2.0))
def test_pooled_diffused_law_property(law, a, sg):
    """C23.2: D x_t has the pooled law diffused at (alpha, sigma/s)."""
    s = 2
    lhs, rhs = law.diffuse(a, sg).pool(s), law.pool(s).diffuse(a, sg / s)
    assert torch.allclose(lhs.eigenvalues, rhs.eigenvalues, rtol=1e-12, atol=1e-14)
    assert torch.allclose(lhs.mean, rhs.mean, rtol=1e-13, atol=1e-15)


@given(t=st.floats(0.01, 0.99), s=st.floats(1.0, 8.0), linear=st.booleans())
def test_low_resolution_time_property(t, s, linear):
    """C23.3: (alpha_t/rho, sigma_t/(s rho)) = (alpha_tau, sigma_tau); tau <= t; tau = t at s = 1."""
    sch = VPLinear() if linear else VPCosine()
    tau, rho = ug.low_resolution_time(sch, t, s)
    a, sg = sch.alpha(t).item(), sch.sigma(t).item()
    assert abs(a / rho.item() - sch.alpha(tau).item()) < 1e-11
    assert abs(sg / (s * rho.item()) - sch.sigma(tau).item()) < 1e-11
    assert abs(rho.item() ** 2 - (a * a + sg * sg / s**2)) < 1e-12
    assert tau.item() <= t + 1e-12
    if s == 1.0:
        assert abs(tau.item() - t) < 1e-10


@given(law=dst.gaussian_images(sizes=dst.image_sizes(factors=(2,)), channels=st.just(1)), c=st.floats(0.0, 1.0),
       t=st.floats(0.1, 0.9), seed=st.integers(0, 2**16))
def test_main_term_exact_for_block_laws_property(law, c, t, seed):
    """C23.4: with P Sigma (I-P) = 0 the guided main term equals the pooled exact prediction, on samples;
    with the correlation scaled by c the expected error scales like c at small c (linear in the cross term)."""
    sch = VPCosine()
    blk = law.pinched(2, 0.0)
    guided = ug.UpsampleGuidance(exact_eps_model(blk.pool(2), sch), sch, 2)
    a, sg = sch.alpha(t).item(), sch.sigma(t).item()
    x0 = blk.sample(3, generator=gen(seed))
    xt = a * x0 + sg * torch.randn(x0.shape, dtype=torch.float64, generator=gen(seed + 1))
    exact = res.pool(exact_eps_model(blk, sch)(xt, t), 2)
    assert (guided.main_term(xt, t) - exact).abs().max() <= 1e-10 * (1 + exact.abs().max())
    assert ug.main_term_error(blk, sch, t, 2) < 1e-10


@given(size=dst.image_sizes(factors=(2, 3)), seed=st.integers(0, 2**16), w=st.floats(-1.0, 3.0))
def test_projection_algebra_property(size, seed, w):
    """C23.5: D eps_approx = main term, (I - P) eps_approx = (I - P) eps, and (10)'s two lines agree."""
    H, W, s = size
    sch = VPCosine()
    low = GaussianImage.power_law(H // s, W // s, 2.0)
    model = ug.convolutional_eps_model(low, sch)
    g = ug.UpsampleGuidance(model, sch, s, w=w)
    x = torch.randn(2, 1, H, W, dtype=torch.float64, generator=gen(seed))
    approx = g.approx(x, 0.5)
    assert torch.allclose(res.pool(approx, s), g.main_term(x, 0.5), rtol=1e-12, atol=1e-12)
    eps = model(x, 0.5)
    assert torch.allclose(approx - res.project(approx, s), eps - res.project(eps, s), rtol=1e-12, atol=1e-12)
    assert torch.allclose(g(x, 0.5), (1 + w) * approx - w * eps, rtol=1e-11, atol=1e-11)


@given(s=st.sampled_from([2, 4]), eta=st.floats(0.05, 1.0), n=st.integers(2, 12))
def test_guidance_cost_property(s, eta, n):
    """C23.8: pixels evaluated = n HW + (guided steps) hw."""
    from diffmath import samplers
    from diffmath.denoisers import eps_to_denoiser
    from diffmath.output_law import time_grid_sigmas

    sch = LogSNRCosine()
    g = ug.UpsampleGuidance(ug.convolutional_eps_model(GaussianImage.power_law(4, 4, 2.0), sch), sch, s, eta=eta)
    sig = time_grid_sigmas(sch, n)
    samplers.sample_euler(eps_to_denoiser(g, sch), torch.zeros(1, 1, 4 * s, 4 * s, dtype=torch.float64), sig)
    guided = int((torch.linspace(1, 0, n, dtype=torch.float64) >= 1 - eta).sum())
    assert g.pixels == n * (4 * s) ** 2 + guided * 16


@given(seed=st.integers(0, 2**16), gamma=st.floats(1e-3, 0.05))
def test_encoder_gap_property(seed, gamma):
    """C23.9: for tanh(gamma .) the relative gap is (gamma^2/3) ||D x^3 - (D x)^3|| / ||D x|| to leading order."""
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=gen(seed))
    gap = ug.encoder_commutation_gap(x, lambda v: torch.tanh(gamma * v), 2)
    lead = gamma**2 / 3 * (res.pool(x**3, 2) - res.pool(x, 2) ** 3).norm().item() / res.pool(x, 2).norm().item()
    # the next term of tanh's series changes the ratio by O(gamma^2 max|x|^2); |x| < 5 here
    assert abs(gap / lead - 1) < 50 * gamma**2
    assert ug.encoder_commutation_gap(x, lambda v: 3 * v + 1, 2) < 1e-14


def test_guidance_conventions():
    sch = VPCosine()
    model = ug.convolutional_eps_model(GaussianImage.power_law(4, 4, 2.0), sch)
    assert ug.UpsampleGuidance(model, sch, 2).w == 0.2
    assert ug.UpsampleGuidance(model, sch, 2, paper_scale=1.2).w == pytest.approx(0.2)
    assert ug.UpsampleGuidance(model, sch, 2, w=0.5).paper_scale == 1.5
    g = ug.UpsampleGuidance(model, sch, 2, w=0.3, eta=0.6)
    w = g.weight(torch.tensor([1.0, 0.5, 0.4, 0.1], dtype=torch.float64))
    assert w.tolist() == [0.3, 0.3, 0.3, -1.0]
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=gen(0))
    assert torch.equal(g(x, 0.1), model(x, 0.1))  # w = -1: no guidance at all
    with pytest.raises(ValueError, match="not both"):
        ug.UpsampleGuidance(model, sch, 2, w=0.2, paper_scale=1.2)
    with pytest.raises(ValueError, match="eta"):
        ug.UpsampleGuidance(model, sch, 2, eta=0.0)
