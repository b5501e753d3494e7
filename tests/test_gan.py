"""GAN pieces (article 19, (3)–(14); MonoFlow), against independent computations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import gan, montecarlo
from diffmath import gradient_flows as gf
from diffmath.claims import part19 as P

Z = montecarlo.Z_BOUND
locs = st.floats(-3.0, 3.0)
scales = st.floats(0.3, 2.0)


@given(a=st.floats(1e-3, 10.0), b=st.floats(1e-3, 10.0), D=st.floats(-20.0, 20.0))
def test_optimal_logit_pointwise_property(a, b, D):
    """C19.3: a log sigma(D) + b log(1 - sigma(D)) is maximal at D = log(a/b)."""
    obj = lambda d: a * F.logsigmoid(torch.tensor(d, dtype=torch.float64)) + b * F.logsigmoid(-torch.tensor(d, dtype=torch.float64))
    best = obj(math.log(a / b))
    assert obj(D) <= best + 1e-12 * (a + b)


def test_logistic_fit_recovers_log_ratio():
    """C19.3: the well-specified logistic fit finds log N(m,s^2)/N(mq,sq^2) within 5 SE, and not a wrong ratio."""
    g = torch.Generator().manual_seed(3)
    xp = 0.5 + 0.8 * torch.randn(20_000, generator=g, dtype=torch.float64)
    xq = -0.5 + 1.2 * torch.randn(20_000, generator=g, dtype=torch.float64)
    c, cov = gan.fit_quadratic_logit(xp, xq)
    se = cov.diag().sqrt()
    assert ((c - gan.gaussian_log_ratio_coefficients(0.5, 0.8, -0.5, 1.2)).abs() / se).max() <= Z
    assert ((c - gan.gaussian_log_ratio_coefficients(0.5, 0.8, -0.2, 1.2)).abs() / se).max() > Z


@given(name=st.sampled_from(sorted(gan.FGAN)), r=st.floats(0.05, 20.0), delta=st.floats(-0.5, 0.5))
def test_fgan_critic_pointwise_max_property(name, r, delta):
    """C19.4: T* = f'(r) maximises r T - f*(T), with value f(r)."""
    f, fp, fstar = gan.FGAN[name]
    rr = torch.tensor(r, dtype=torch.float64)
    T = gan.fgan_optimal_critic(name, rr)
    best = rr * T - fstar(T)
    assert abs(best.item() - f(rr).item()) <= 1e-10 * (1 + abs(f(rr).item()))
    Tp = T + delta * (T.abs() if name in ("reverse_kl", "js") else 1.0)  # stay in the conjugate's domain
    if name == "js" and Tp.item() >= math.log(2):
        return
    assert (rr * Tp - fstar(Tp)).item() <= best.item() + 1e-12


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), eps=st.floats(1e-3, 0.5))
def test_one_step_equivalence_property(seed, eps):
    """C19.5: grad of (8) at theta_t equals 2 eps grad of (11), random MLPs, float64."""
    a, b = P.one_step_gradients(seed, eps, n=16, width=8)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-13 * b.abs().max().item())


def test_one_step_equivalence_only_at_theta_t():
    """The equivalence is about theta = theta_t: after a step away, the two gradients differ."""
    gen = gan.mlp(3, 2, width=8, seed=1)
    D = gan.mlp(2, 1, width=8, seed=2)
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Dfn = lambda u: D(u).reshape(-1)
    target = gan.projection_targets(gen, z, Dfn, 0.1)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.3)
    g1 = torch.cat([a.reshape(-1) for a in torch.autograd.grad(gan.projection_loss(gen, z, target), list(gen.parameters()))])
    g2 = torch.cat([a.reshape(-1) for a in torch.autograd.grad(0.2 * gan.generator_loss(gen, z, Dfn), list(gen.parameters()))])
    assert (g1 - g2).abs().max() > 1e-3 * g2.abs().max()


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), eps=st.floats(1e-3, 0.5))
def test_gauss_newton_is_argmin_property(seed, eps):
    """C19.6: for a generator linear in theta, argmin (8) is theta_t + the Gauss-Newton step."""
    sol, gn = P.gn_vs_lstsq(seed, eps)
    assert torch.allclose(sol, gn, rtol=1e-9, atol=1e-10)


@given(mu=locs, sig=scales, m=locs, s=scales)
def test_plugin_equals_alternating_property(mu, sig, m, s):
    """C19.7: for the loss -D, the frozen-D gradient is grad KL(q_theta||p) (closed form)."""
    gen = gan.AffineGenerator(mu, sig)
    g_kl = torch.stack(torch.autograd.grad(gf.gaussian_kl_1d(gen.mu, gen.sigma, m, s), [gen.mu, gen.s]))
    g_full, g_alt = P.plugin_gradients(mu, sig, m, s, "identity", nq=30)
    scale = g_kl.abs().max().item() + 1 / s**2 + 1 / sig**2  # absolute floor where the gradient vanishes (q = p)
    assert (g_alt - g_kl).abs().max().item() <= 1e-9 * scale
    assert (g_full - g_kl).abs().max().item() <= 1e-9 * scale


@settings(max_examples=10)
@given(mq=locs, sq=scales, m=locs, s=scales, h=st.sampled_from(sorted(gan.H_FAMILY)), seed=st.integers(0, 2**16))
def test_monoflow_dissipation_property(mq, sq, m, s, h, seed):
    """C19.8: the measured KL rate along grad h(log r) equals -E h'|grad log r|^2 and is <= 0."""
    n = 20_000
    x = mq + sq * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    lq = lambda u: gf.log_normal_1d(u, mq, sq)
    lp = lambda u: gf.log_normal_1d(u, m, s)
    v = lambda u: gan.monoflow_velocity(u, lambda y: lp(y) - lq(y), h)
    rate = gf.pushforward_kl_rate(x, lq, lp, v, 1e-5)
    ell = (lp(x) - lq(x)).detach()
    grad_ell = -(x - m) / s**2 + (x - mq) / sq**2
    integrand = -gan.H_FAMILY[h][1](ell) * grad_ell**2
    est = montecarlo.mean(rate - integrand)
    assert est.z(0.0).item() <= Z or est.value.abs().item() <= 1e-8 * (1 + integrand.abs().mean().item())
    r = montecarlo.mean(rate)
    assert (r.value - Z * r.se).item() <= 1e-8


def test_minimax_vanishes_for_rejected_fakes():
    """C19.8: h' = sigmoid(D) (minimax) -> 0 and 1 - sigmoid(D) (non-saturating) -> 1 as D -> -inf."""
    D = torch.tensor([-10.0, 0.0, 10.0], dtype=torch.float64)
    mm, ns = gan.H_FAMILY["minimax"][1](D), gan.H_FAMILY["nonsaturating"][1](D)
    assert mm[0] < 1e-4 and ns[0] > 1 - 1e-4
    # the derivatives are those of the named losses
    d = D.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.log(1 - torch.sigmoid(d)).sum(), d)
    assert torch.allclose(-g, mm)
    (g,) = torch.autograd.grad((-torch.log(torch.sigmoid(d))).sum(), d)
    assert torch.allclose(-g, ns)


@given(mu=locs, sig=scales, mu_t=locs, sig_t=scales, m=locs, s=scales)
def test_frozen_objective_closed_form_property(mu, sig, mu_t, sig_t, m, s):
    """C19.9: the closed form of E[-D*(mu + sigma z)] against Gauss-Hermite quadrature."""
    zq, wq = P.hermite(10)
    x = mu + sig * zq
    quad = (wq * -(gf.log_normal_1d(x, m, s) - gf.log_normal_1d(x, mu_t, sig_t))).sum().item()
    closed = gan.frozen_generator_objective(mu, sig, mu_t, sig_t, m, s).item()
    assert abs(quad - closed) <= 1e-10 * (1 + abs(closed))


def test_frozen_runs_diverge():
    """C19.9: many steps on (11) blow sigma up when sigma_t < s and collapse it when sigma_t > s; (8) converges."""
    runs, pred = P.frozen_runs(0.0, 0.4, 1.0, 0.6, steps=300)
    assert runs["generator loss (11)"][0][-1] > 50
    assert abs(runs["projection loss (8)"][2] - pred[1]) < 1e-10
    runs, _ = P.frozen_runs(0.0, 1.0, 1.0, 0.6, steps=300)
    assert runs["generator loss (11)"][0][-1] < 1e-2


def test_gan_training_tracks_flow():
    """C19.12: with a fitted D the moments stay close to the Euler recursion (whose exactness for the exact D is
    test_gradient_flows.py::test_euler_moments_are_particle_map)."""
    part, genp = P.gan_training(n=4000, steps=10, seed=1)
    em, es = gf.euler_moments(-1.0, 1.0, 2.0, 0.5, 0.02, 10)
    assert np.abs(part[:, 0] - em).max() < 0.15 and np.abs(genp[:, 1] - es).max() < 0.15


# --- beyond one dimension: g = mu + L z (C19.6-C19.9 in d = 2, 3) ----------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("parametrisation", gan.AFFINE_PARAMETRISATIONS)
def test_affine_projection_nd(d, parametrisation):
    """C19.6 in R^d: E[J^T J] by autograd under an exact product quadrature equals the closed form; the argmin of (8)
    equals affine_parameter_velocity; with a full L it moves mean and covariance exactly as the flow, with a triangular
    L (d >= 2) the covariance moves differently; with L = e^rho I the plain/Gauss-Newton rho ratio is d sigma^2."""
    r = P.projection_nd(d, 40 + d, parametrisation)
    assert r["metric"] <= 1e-12 and r["param"] <= 1e-12 and r["mean"] <= 1e-12
    if parametrisation == "full" or (parametrisation == "tril" and d == 1):
        assert r["cov"] <= 1e-12
    elif parametrisation == "tril":
        assert r["cov"] >= 0.05
    if parametrisation == "log":
        assert abs(r["ratio"] / r["ratio_closed"] - 1) <= 1e-12


def test_affine_generator_nd_matches_1d():
    """d = 1: AffineGeneratorND is AffineGenerator (same samples, same Gauss-Newton metric as the 1-D claim)."""
    z = torch.linspace(-2, 2, 7, dtype=torch.float64)
    for par1, parn in (("scale", "full"), ("scale", "tril"), ("scale", "isotropic"), ("log", "log")):
        g1 = gan.AffineGenerator(0.3, 1.7, par1)
        L = 1.7 if parn in ("isotropic", "log") else [[1.7]]
        gn = gan.AffineGeneratorND([0.3], L, parn)
        assert torch.allclose(gn(z[:, None])[:, 0], g1(z), rtol=1e-14)
    G = gan.affine_gauss_newton_metric(gan.AffineGeneratorND([0.3], 1.7, "log"))
    assert torch.allclose(G, torch.diag(torch.tensor([1.0, 1.7**2], dtype=torch.float64)), rtol=1e-14)


@pytest.mark.parametrize("d", [2, 3])
def test_plugin_equals_alternating_nd(d):
    """C19.7 in R^d: for the loss -D the stop-gradient and plug-in gradients in (mu, L) are grad KL(q_theta||p)."""
    r = P.plugin_gradients_nd(d, 50 + d)
    assert torch.allclose(r["alternating"], r["kl"], rtol=1e-10, atol=1e-12)
    assert torch.allclose(r["plugin"], r["kl"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("h", sorted(gan.H_FAMILY))
def test_monoflow_dissipation_nd(d, h):
    """C19.8 in R^d: the measured KL rate along grad h(log r) is -E h'(l)|grad l|^2 (5 SE) and <= 0 (5 SE)."""
    z, upper = P.monoflow_nd(d, 60 + d, h, n=4000)
    assert z <= Z and upper <= 0.0


@settings(max_examples=20)
@given(d=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**16))
def test_frozen_objective_nd_closed_form_property(d, seed):
    """C19.9 in R^d: the closed form of E[-D*(mu + L z)] against an exact product Gauss-Hermite rule; d = 1 is the
    one-dimensional formula."""
    a, b = P.gaussian_case(d, seed), P.gaussian_case(d, seed + 1)
    mu, L, mu_t, S_t, m, S = a["mq"], a["L"], b["mq"], b["Sq"], a["m"], a["S"]
    zq, wq = P.hermite_nd(3, d)
    x = mu + zq @ L.T
    quad = (wq * -(P.log_normal_nd(m, S)(x) - P.log_normal_nd(mu_t, S_t)(x))).sum()
    closed = gan.frozen_generator_objective_nd(mu, L, mu_t, S_t, m, S)
    assert abs(quad - closed).item() <= 1e-10 * (1 + abs(closed).item())
    if d == 1:
        one = gan.frozen_generator_objective(mu[0], L[0, 0].abs(), mu_t[0].item(), S_t[0, 0].sqrt().item(), m[0].item(),
                                             S[0, 0].sqrt().item())
        assert torch.allclose(closed, one, rtol=1e-12)


def test_frozen_runs_nd():
    """C19.9 in R^d: narrower than p in one direction is enough for (11) to blow L up; wider in every direction collapses it."""
    assert P.frozen_runs_nd(2, 71, (0.5, 3.0), steps=120)["sv"][0] > 100
    assert P.frozen_runs_nd(2, 71, (3.0, 3.0), steps=120)["sv"][0] < 1e-2


def test_bad_input():
    with pytest.raises(ValueError, match="divergence"):
        gan.fgan_optimal_critic("tv", 1.0)
    with pytest.raises(ValueError, match="ratio"):
        gan.fgan_optimal_critic("kl", -1.0)
    with pytest.raises(ValueError, match="h must"):
        gan.generator_loss(gan.mlp(1, 1), torch.zeros(2, 1, dtype=torch.float64), lambda u: u, h="relu")
    with pytest.raises(ValueError, match="sigma"):
        gan.AffineGenerator(0.0, -1.0)
    with pytest.raises(ValueError, match="x_data"):
        gan.fit_quadratic_logit(torch.zeros(3), torch.zeros(4))
    eye = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="parametrisation"):
        gan.AffineGeneratorND(torch.zeros(2), eye, "diag")
    with pytest.raises(ValueError, match="L must be lower triangular"):
        gan.AffineGeneratorND(torch.zeros(2), torch.ones(2, 2) + eye, "tril")
    with pytest.raises(ValueError, match="nonsingular"):
        gan.AffineGeneratorND(torch.zeros(2), torch.ones(2, 2), "full")
    with pytest.raises(ValueError, match="positive number"):
        gan.AffineGeneratorND(torch.zeros(2), -1.0, "log")
    with pytest.raises(ValueError, match="z must have shape"):
        gan.AffineGeneratorND(torch.zeros(2), eye)(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="S_t is not positive definite"):
        gan.frozen_generator_objective_nd(torch.zeros(2), eye, torch.zeros(2), -eye, torch.zeros(2), eye)
    with pytest.raises(ValueError, match="log_ratio must map"):
        gan.monoflow_velocity(torch.zeros(4, 2, dtype=torch.float64), lambda u: u, "identity")


def test_mlp_depth_one_and_refusals():
    net = gan.mlp(2, 3, width=4, depth=1)
    assert sum(isinstance(m, torch.nn.Linear) for m in net) == 2 and net(torch.zeros(5, 2, dtype=torch.float64)).shape == (5, 3)
    for bad in (dict(depth=0), dict(width=0)):
        with pytest.raises(ValueError, match="must be >= 1"):
            gan.mlp(2, 3, **bad)


def test_zero_scales_are_refused():
    """Each positivity check refuses exactly 0, not only negatives (a zero standard deviation or ratio is a
    degenerate law, where the formulas divide by 0)."""
    with pytest.raises(ValueError, match="ratio must be > 0"):
        gan.fgan_optimal_critic("kl", torch.tensor([1.0, 0.0], dtype=torch.float64))
    for s, sq in ((0.0, 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError, match="s and sq must be > 0"):
            gan.gaussian_log_ratio_coefficients(0.0, s, 0.0, sq)
    for sigma_t, s in ((0.0, 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError, match="sigma_t and s must be > 0"):
            gan.frozen_generator_objective(0.0, 1.0, 0.0, sigma_t, 0.0, s)
    for par in ("isotropic", "log"):
        with pytest.raises(ValueError, match="positive number sigma"):
            gan.AffineGeneratorND(torch.zeros(2, dtype=torch.float64), 0.0, par)
