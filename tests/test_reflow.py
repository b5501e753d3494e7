"""ReFlow (article 17) on exact toys: diffmath.reflow against independent computations."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import flows, montecarlo
from diffmath import reflow as rf
from diffmath import schedules as sch
from diffmath import strategies as dst
from diffmath import wasserstein as wd
from diffmath.claims import part17
from diffmath.mixture import GaussianMixture
from diffmath.toys import random_mixture, random_spd

Z = montecarlo.Z_BOUND
INTERPOLANTS = [rf.Interpolant.linear(), rf.Interpolant.trigonometric()]


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def small_mixtures():
    return dst.mixtures(dims=st.integers(1, 2), components=st.integers(1, 3))


@st.composite
def couplings(draw):
    """Random mixtures with an independent, correlated or deterministic coupling (|rho| <= 1, random rotation)."""
    gm = draw(small_mixtures())
    rho = draw(st.one_of(st.just(0.0), st.floats(-0.95, 0.95), st.just(1.0)))
    angle = draw(st.floats(0.0, 2 * math.pi))
    R = rf.rotation2(angle) if gm.dim == 2 else torch.ones(1, 1, dtype=torch.float64)
    return rf.Coupling.root(gm, rho, R) if rho != 0.0 else rf.Coupling.independent(gm)


# --- interpolants and couplings ----------------------------------------------------------------------
def test_interpolant_derivatives_match_finite_differences():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    for it in INTERPOLANTS + [rf.Interpolant.from_schedule(sch.RectifiedFlow())]:
        _, _, da, db = it.coefficients(t)
        assert torch.allclose(da, (it.a(t + h) - it.a(t - h)) / (2 * h), atol=1e-8)
        assert torch.allclose(db, (it.b(t + h) - it.b(t - h)) / (2 * h), atol=1e-8)


@given(coupling=couplings(), seed=st.integers(0, 2**16))
def test_coupling_moments_property(coupling, seed):
    """C17.5: the noise keeps its law N(0, I) and Cov(x0, x1) = sum_k pi_k C_k (5 SE)."""
    n = 20_000
    x0, x1 = coupling.sample(n, gen(seed))
    d = coupling.dim
    assert montecarlo.mean(x1).z(torch.zeros(d)).max() <= Z
    second = (x1[:, :, None] * x1[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(second).z(torch.eye(d, dtype=torch.float64).reshape(-1)).max() <= Z
    cross = coupling._cross()
    want = torch.einsum("k,kij->ij", coupling.data.weights, cross)
    prods = ((x0 - coupling.data.mean())[:, :, None] * x1[:, None, :]).reshape(n, -1)
    assert montecarlo.mean(prods).z(want.reshape(-1)).max() <= Z


@given(coupling=couplings(), t=st.floats(0.0, 1.0), which=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_marginal_density_matches_mixture_property(coupling, t, which, seed):
    """The differentiable log-density equals GaussianMixture.log_prob of the exact marginal."""
    it = INTERPOLANTS[which]
    try:
        marg = coupling.marginal(it, t)
    except ValueError:  # a deterministic coupling can make S_k singular at one time (paths meet)
        return
    x = marg.sample(20, generator=gen(seed))
    ours = coupling.log_density(it, x, t)
    assert torch.allclose(ours, marg.log_prob(x), rtol=1e-10, atol=1e-10)


def test_bad_input_raises():
    gm = random_mixture(2, 2, seed=0)
    with pytest.raises(ValueError, match="cross"):
        rf.Coupling(gm, 2.0 * torch.stack([torch.eye(2)] * 2).double() * 10)
    with pytest.raises(ValueError, match="cross"):
        rf.Coupling(gm, torch.zeros(3, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="rho"):
        rf.Coupling.root(gm, 1.5)
    with pytest.raises(ValueError, match="t must lie"):
        rf.Coupling.independent(gm).velocity(rf.Interpolant.linear(), torch.zeros(3, 2, dtype=torch.float64), 1.5)
    with pytest.raises(ValueError, match="x must have shape"):
        rf.Coupling.independent(gm).velocity(rf.Interpolant.linear(), torch.zeros(3, 3, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="interpolant"):
        rf.Interpolant("bad", lambda t: 1 - t, lambda t: 0.5 * t, lambda t: -torch.ones_like(t), lambda t: 0.5 * torch.ones_like(t))
    with pytest.raises(ValueError, match="data"):
        rf.Coupling("not a mixture")
    with pytest.raises(ValueError, match="S0"):
        rf.rectify_gaussians(torch.zeros(2), -torch.eye(2), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="false_alarm"):
        rf.dkw_threshold(0.0)


def test_deterministic_crossing_coupling_degenerate_time_raises():
    """rho = -1 with one isotropic component: all paths of the component meet at one point at some t."""
    gm = GaussianMixture([1.0], [[0.0, 0.0]], [1.0])
    cp = rf.Coupling.root(gm, -1.0)  # x1 = -x0: x_t = (1 - 2t) x0 collapses at t = 1/2
    with pytest.raises(ValueError, match="degenerate"):
        cp.velocity(rf.Interpolant.linear(), torch.zeros(1, 2, dtype=torch.float64), 0.5)


# --- C17.1 --------------------------------------------------------------------------------------------
@given(gm=small_mixtures(), t=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_velocity_is_pf_ode_velocity_property(gm, t, seed):
    """Independent coupling: v* is the PF-ODE velocity of diffmath.flows with alpha = 1 - t, sigma = t (C0.6).

    The PF-ODE form divides x - alpha D by sigma = t (0/0 at t = 0, cancellation of order eps/t near it),
    so t starts at 0.01; our form has no division by t.
    """
    x = gm.diffuse(0.7, 0.6).sample(8, generator=gen(seed))
    ours = rf.Coupling.independent(gm).velocity(rf.Interpolant.linear(), x, t)
    ref = flows.pf_ode_velocity(sch.RectifiedFlow(), gm.denoise)(x, t)
    assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-9 * (1 + ref.abs().max().item()))


@given(coupling=couplings(), t=st.floats(0.05, 0.95), which=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_pythagoras_property(coupling, t, which, seed):
    """C17.1: L(v) = E||v - v*||^2 + L(v*) and L(v*) = E tr Cov(u | x_t), paired, 5 SE, for random affine v."""
    it = INTERPOLANTS[which]
    try:
        coupling.marginal(it, t)
    except ValueError:
        return
    d = coupling.dim
    g = gen(seed)
    A, b = torch.randn(d, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    terms = coupling.regression_terms(it, lambda x, tt: x @ A.T + b, t, 5_000, g)
    scale = terms["loss"].abs().mean() * 1e-12  # float64 rounding when the deterministic coupling makes everything exact
    est = montecarlo.mean(terms["loss"] - terms["excess"] - terms["loss_star"])
    assert est.value.abs() <= Z * est.se + scale
    est = montecarlo.mean(terms["loss_star"] - terms["crossing"])
    assert est.value.abs() <= Z * est.se + scale


# --- C17.2 / C17.5 --------------------------------------------------------------------------------------
@given(coupling=couplings(), which=st.sampled_from([0, 1]), seed=st.integers(0, 2**16))
def test_continuity_property(coupling, which, seed):
    """C17.2, C17.5: the continuity residual by autograd vanishes at random (x, t), any coupling and interpolant."""
    it = INTERPOLANTS[which]
    g = gen(seed)
    t = torch.rand(20, generator=g, dtype=torch.float64)
    x = 2 * torch.randn(20, coupling.dim, generator=g, dtype=torch.float64)
    try:
        res, scale = coupling.continuity_residual(it, x, t)
    except ValueError:
        return
    assert ((res.abs() / scale).max() <= 1e-9), (res, scale)


def test_continuity_residual_detects_a_wrong_velocity():
    """The residual is not trivially zero: the velocity of another coupling fails it."""
    gm = random_mixture(2, 2, seed=5)
    right, wrong = rf.Coupling.independent(gm), rf.Coupling.root(gm, 0.7)
    it = rf.Interpolant.linear()
    x = right.marginal(it, 0.5).sample(50, generator=gen(0)).requires_grad_(True)
    t = torch.full((50,), 0.5, dtype=torch.float64, requires_grad=True)
    logp = right.log_density(it, x, t)
    v = wrong.velocity(it, x.detach(), 0.5)
    dt, gx = torch.autograd.grad(logp.sum(), (t, x))
    div = sum(torch.autograd.grad(wrong.velocity(it, x, 0.5)[:, i].sum(), x)[0][:, i] for i in range(2))
    res = dt + (gx * v).sum(-1) + div
    assert res.abs().max() > 1e-2


def test_ode_reproduces_marginals():
    """C17.2, C17.5: from exact noise at t = 1 to t = 0, for three couplings (mean/cov 5 SE, projected KS by DKW)."""
    gm = random_mixture(2, 2, seed=11)
    n = 500
    for k, (cp, it) in enumerate((
        (rf.Coupling.independent(gm), rf.Interpolant.linear()),
        (rf.Coupling.root(gm, 0.6, rf.rotation2(2.0)), rf.Interpolant.trigonometric()),
        (rf.Coupling.root(gm, 1.0), rf.Interpolant.linear()),
    )):
        out = torch.randn(n, 2, generator=gen(1), dtype=torch.float64)
        if k == 0:  # an intermediate time too: the ODE carries rho_1 to rho_t for every t
            out = cp.transport(it, out, 1.0, 0.5, rtol=1e-6, atol=1e-6)
            half = cp.marginal(it, 0.5)
            assert montecarlo.mean(out).z(half.mean()).max() <= Z
            assert rf.projected_ks(out, half, torch.eye(2, dtype=torch.float64)).max() <= rf.dkw_threshold(1e-4)
        out = cp.transport(it, out, 0.5 if k == 0 else 1.0, 0.0, rtol=1e-6, atol=1e-6)
        assert montecarlo.mean(out).z(gm.mean()).max() <= Z
        assert rf.projected_ks(out, gm, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)).max() <= rf.dkw_threshold(1e-4)


def test_projected_ks_detects_a_wrong_law():
    gm = random_mixture(2, 2, seed=11)
    other = random_mixture(2, 2, seed=12)
    x = other.sample(800, generator=gen(0))
    assert rf.projected_ks(x, gm, torch.eye(2, dtype=torch.float64)).max() > rf.dkw_threshold(1e-4)


# --- C17.3 -----------------------------------------------------------------------------------------------
@given(t=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_straight_line_forms_property(t, seed):
    """C17.3: (x_t - x_0)/t = x_1 - x_0 and ||v - (x_1 - x_0)||^2 = ||xhat - x_0||^2 / t^2 for v = (x_t - xhat)/t."""
    g = gen(seed)
    x0, x1, xhat = (torch.randn(50, 3, generator=g, dtype=torch.float64) for _ in range(3))
    xt = (1 - t) * x0 + t * x1
    # cancellation in x_t - x_0 costs about eps / t relative
    assert torch.allclose((xt - x0) / t, x1 - x0, rtol=0, atol=1e-14 / t * (1 + x0.abs().max().item()) * 10)
    lhs = (((xt - xhat) / t - (x1 - x0)) ** 2).sum(-1)
    rhs = ((xhat - x0) ** 2).sum(-1) / t**2
    assert torch.allclose(lhs, rhs, rtol=1e-9 / t)


# --- C17.4 -----------------------------------------------------------------------------------------------
@given(s=st.floats(0.1, 3.0), frac=st.floats(-1.0, 1.0), t=st.floats(0.02, 0.98), which=st.sampled_from([0, 1]))
def test_crossing_closed_form_1d_property(s, frac, t, which):
    """C17.4: in 1-D the minimum of (5) is (s^2 - c^2)(a b' - a' b)^2 / S_t (c = rho s)."""
    it = INTERPOLANTS[which]
    gm = GaussianMixture([1.0], [[0.4]], [s**2])
    cp = rf.Coupling.root(gm, frac)
    a, b, da, db = (v.item() for v in it.coefficients(t))
    c = frac * s
    S = a**2 * s**2 + b**2 + 2 * a * b * c
    if S < 1e-6:
        return
    want = (s**2 - c**2) * (a * db - da * b) ** 2 / S
    got = cp.component_crossing(it, t)[0].item()
    assert abs(got - want) <= 1e-9 * (1 + abs(want))
    if it.name == "linear" and frac == 0.0:
        assert abs(got - s**2 / ((1 - t) ** 2 * s**2 + t**2)) <= 1e-10 * (1 + got)


def test_crossing_monte_carlo():
    """C17.4: Monte Carlo loss at v* against the closed form (Gaussian, 2-D), and zero for the OT coupling."""
    gm = GaussianMixture([1.0], [[1.0, -0.5]], [[[1.5, 0.4], [0.4, 0.6]]])
    zero = lambda x, t: torch.zeros_like(x)
    with torch.no_grad():
        for cp in (rf.Coupling.independent(gm), rf.Coupling.root(gm, 0.5, rf.rotation2(0.3))):
            terms = cp.regression_terms(rf.Interpolant.linear(), zero, 0.4, 20_000, gen(3))
            assert montecarlo.mean(terms["loss_star"]).z(cp.component_crossing(rf.Interpolant.linear(), 0.4)[0]) <= Z
        ot = rf.Coupling.root(gm, 1.0)
        terms = ot.regression_terms(rf.Interpolant.trigonometric(), zero, 0.4, 2_000, gen(4))
        assert terms["loss_star"].max() <= 1e-20 + 1e-12 * terms["loss"].mean()


# --- C17.6 / C17.8 -----------------------------------------------------------------------------------------
@settings(max_examples=12)
@given(S0=dst.spd_matrices(2), S1=dst.spd_matrices(2), shift=st.floats(-2, 2))
def test_rectification_gaussian_property(S0, S1, shift):
    """C17.6, C17.8: pushforward exact; W2^2 <= rectified cost <= independent cost."""
    m0 = torch.tensor([shift, 0.0], dtype=torch.float64)
    r = rf.rectify_gaussians(m0, S0, torch.zeros(2, dtype=torch.float64), S1)
    assert r.pushforward_error <= 1e-9
    tol = 1e-9 * r.cost_independent
    assert r.w2_squared <= r.cost + tol
    assert r.cost <= r.cost_independent + tol


@settings(max_examples=10)
@given(lam0=st.lists(st.floats(0.1, 3.0), min_size=2, max_size=2), lam1=st.lists(st.floats(0.1, 3.0), min_size=2, max_size=2), angle=st.floats(0, math.pi))
def test_rectification_commuting_is_ot_property(lam0, lam1, angle):
    """C17.8: commuting covariances -> the rectified map is the Bures OT slope and the cost is W2^2."""
    R = rf.rotation2(angle)
    S0 = R @ torch.diag(torch.tensor(lam0, dtype=torch.float64)) @ R.T
    S1 = R @ torch.diag(torch.tensor(lam1, dtype=torch.float64)) @ R.T
    r = rf.rectify_gaussians(torch.zeros(2, dtype=torch.float64), S0, torch.ones(2, dtype=torch.float64), S1)
    A = wd.gaussian_ot_map(S0, S1)
    assert torch.allclose(r.map.M, A, rtol=1e-9, atol=1e-9)
    assert abs(r.cost - r.w2_squared) <= 1e-9 * r.cost_independent


def test_rectification_counterexample():
    """C17.8: the catalogue's non-commuting pair: cost 2.592 > W2^2 = 2.008, independent cost 6.5."""
    S0 = torch.diag(torch.tensor([0.3, 2.0], dtype=torch.float64))
    R = rf.rotation2(0.6)
    S1 = R @ torch.diag(torch.tensor([4.0, 0.2], dtype=torch.float64)) @ R.T
    r = rf.rectify_gaussians(torch.zeros(2), S0, torch.zeros(2), S1)
    assert abs(r.cost - 2.592) < 5e-4 and abs(r.w2_squared - 2.008) < 5e-4 and abs(r.cost_independent - 6.5) < 1e-12
    assert r.asymmetry > 0.1


def test_rectified_map_1d_is_monotone():
    """C17.6: in 1-D the map of the ReFlow ODE (mixture -> N(0, 1)) is the monotone (optimal) map."""
    p0 = wd.gaussian_mixture_1d([0.6, 0.4], [-1.5, 2.0], [0.3, 0.5])
    x0 = p0.sample(40, generator=gen(0))
    T = rf.Coupling.independent(p0).transport(rf.Interpolant.linear(), x0, 0.0, 1.0, rtol=1e-11, atol=1e-11)
    mono = wd.monotone_map_1d(p0, wd.gaussian_mixture_1d([1.0], [0.0], [1.0]), x0[:, 0])
    assert (T[:, 0] - mono).abs().max() <= 1e-8


# --- C17.6: correlated starting couplings and non-quadratic convex costs -----------------------------------
def _root_cross(S0, S1, rho, angle):
    """C = rho S0^{1/2} R S1^{1/2}: a valid cross-covariance (S1 - C^T S0^{-1} C = (1 - rho^2) S1)."""
    return rho * wd.sqrtm_psd(S0) @ rf.rotation2(angle) @ wd.sqrtm_psd(S1)


def test_rectified_field_correlated_matches_coupling_velocity():
    """C17.6: the affine field with a cross-covariance equals Coupling.velocity (S1 = I), a separately checked path (C17.5)."""
    gm = random_mixture(1, 2, seed=21)
    cp = rf.Coupling.root(gm, -0.7, rf.rotation2(1.1))
    zero, eye = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    B, c = rf.rectified_field(gm.means[0], gm.covariances()[0], zero, eye, cp.cross[0])
    x = torch.randn(6, 2, generator=gen(0), dtype=torch.float64)
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        want = cp.velocity(rf.Interpolant.linear(), x, t)
        assert torch.allclose(x @ B(t).T + c(t), want, rtol=1e-12, atol=1e-12)


def _orthogonality_z(B, c, x0, x1, t):
    """max z of E[(u - v(x_t)) (x_t, 1)] = 0: zero iff v is the conditional mean (the best affine predictor here)."""
    xt = (1 - t) * x0 + t * x1
    res = (x1 - x0) - (xt @ B(t).T + c(t))
    feats = torch.cat([xt, torch.ones_like(xt[:, :1])], 1)
    return montecarlo.mean((res[:, :, None] * feats[:, None, :]).reshape(len(xt), -1)).z(0.0).max().item()


def test_rectified_field_correlated_is_conditional_mean():
    """C17.6: u - v*(x_t) is orthogonal to affine functions of x_t (5 SE); the independent field fails it."""
    g = gen(7)
    S0, S1 = random_spd(2, generator=g), random_spd(2, generator=g)
    m0, m1 = torch.randn(2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    C = _root_cross(S0, S1, 0.7, 2.0)
    x0, x1 = part17.sample_gaussian_coupling(m0, S0, m1, S1, C, 20_000, g)
    right = rf.rectified_field(m0, S0, m1, S1, C)
    wrong = rf.rectified_field(m0, S0, m1, S1)
    for t in (0.3, 0.7):
        assert _orthogonality_z(*right, x0, x1, t) <= Z
        assert _orthogonality_z(*wrong, x0, x1, t) > 10 * Z


@settings(max_examples=6, deadline=None)
@given(S0=dst.spd_matrices(2), S1=dst.spd_matrices(2), rho=st.floats(-0.95, 0.95), angle=st.floats(0, 2 * math.pi), shift=st.floats(-2, 2))
def test_rectification_correlated_property(S0, S1, rho, angle, shift):
    """C17.6: from a correlated Gaussian coupling, the rectified map keeps both marginals (closed form) and
    Cov(T(x0) - x0) <= Cov(x1 - x0) in Loewner order, which with the common mean is E c no larger for every convex c."""
    m0, m1 = torch.tensor([shift, 0.5], dtype=torch.float64), torch.tensor([0.0, -1.0], dtype=torch.float64)
    C = _root_cross(S0, S1, rho, angle)
    r = rf.rectify_gaussians(m0, S0, m1, S1, cross=C, rtol=1e-11, atol=1e-11)
    assert r.pushforward_error <= 1e-8
    assert (r.map.M @ m0 + r.map.c - m1).abs().max() <= 1e-9 * (1 + m1.abs().max())
    cov_start = S0 + S1 - C - C.T
    assert abs(r.cost_start - (((m1 - m0) ** 2).sum() + torch.trace(cov_start)).item()) <= 1e-12 * r.cost_independent
    D = r.map.M - torch.eye(2, dtype=torch.float64)
    gap = cov_start - D @ S0 @ D.T
    assert torch.linalg.eigvalsh(0.5 * (gap + gap.T))[0] >= -1e-8 * torch.linalg.eigvalsh(cov_start)[-1]
    assert r.w2_squared <= r.cost + 1e-9 * r.cost_independent
    assert r.cost <= r.cost_start + 1e-9 * r.cost_independent


def test_rectification_1d_correlated_is_monotone():
    """C17.6 (derivation): in 1-D the rectified map is x -> m1 + sqrt(s1 / s0)(x - m0) whatever the cross-covariance c."""
    for s0, s1, c in ((0.5, 2.0, 0.6), (1.5, 0.3, -0.5), (1.0, 1.0, 0.0), (0.2, 3.0, 0.7)):
        r = rf.rectify_gaussians([0.3], [[s0]], [-1.0], [[s1]], cross=[[c]], rtol=1e-11, atol=1e-11)
        assert abs(r.map.M.item() - math.sqrt(s1 / s0)) <= 1e-9
        assert abs(r.map.c.item() - (-1.0 - math.sqrt(s1 / s0) * 0.3)) <= 1e-9


def test_bad_cross_raises():
    eye, zero = torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="cross"):
        rf.rectified_field(zero, eye, zero, eye, 1.5 * eye)  # |correlation| > 1
    with pytest.raises(ValueError, match="cross"):
        rf.rectify_gaussians(zero, eye, zero, eye, cross=torch.zeros(3, 3, dtype=torch.float64))
    B, _ = rf.rectified_field(zero, eye, zero, eye, -eye)  # x1 = -x0: all paths meet at t = 1/2
    with pytest.raises(ValueError, match="degenerate"):
        B(0.5)


@pytest.mark.parametrize("case", [1, 2, 3])
def test_convex_costs_not_increased(case):
    """C17.6: non-quadratic convex costs, paired Monte Carlo on common draws: E c_rect <= E c_start + 5 SE,
    independent and correlated starting couplings (other draws than the claim's check)."""
    label, m0, S0, m1, S1, C = part17.gaussian_coupling_cases(seed=1770, n_pairs=2)[case]
    r = rf.rectify_gaussians(m0, S0, m1, S1, cross=C, rtol=1e-10, atol=1e-10)
    x0, x1 = part17.sample_gaussian_coupling(m0, S0, m1, S1, C, 10_000, gen(case))
    gaps = part17.rectified_cost_gaps(r.map, x0, x1, m1 - m0)
    for name in part17.CONVEX_COSTS:
        est, _ = gaps[name]
        assert est.value >= -Z * est.se, (label, name)
    # the Monte Carlo against closed forms: the quadratic costs of both couplings
    assert montecarlo.mean(((x1 - x0) ** 2).sum(-1)).z(r.cost_start) <= Z
    assert montecarlo.mean(((x0 @ r.map.M.T + r.map.c - x0) ** 2).sum(-1)).z(r.cost) <= Z


@pytest.mark.parametrize("case", [0, 1])
def test_nonconvex_cost_control_violates(case):
    """C17.6 negative control: for a concave cost and a bump cost the inequality fails (by more than 5 SE), so
    convexity is needed; the bump's means match det(I + A)^{-1/2} for displacement covariance A."""
    label, m0, S0, m1, S1, C = part17.gaussian_coupling_cases(seed=1770, n_pairs=1)[case]
    r = rf.rectify_gaussians(m0, S0, m1, S1, cross=C, rtol=1e-10, atol=1e-10)
    x0, x1 = part17.sample_gaussian_coupling(m0, S0, m1, S1, C, 10_000, gen(10 + case))
    mu = m1 - m0
    gaps = part17.rectified_cost_gaps(r.map, x0, x1, mu)
    for name in part17.NONCONVEX_COSTS:
        est, _ = gaps[name]
        assert -est.value >= Z * est.se, (label, name)
    eye = torch.eye(2, dtype=torch.float64)
    D = r.map.M - eye
    Cz = torch.zeros_like(S0) if C is None else C
    bump = part17.NONCONVEX_COSTS["exp(-|d - mu|^2/2) (a bump)"]
    assert montecarlo.mean(bump(x1 - x0, mu)).z(torch.linalg.det(eye + S0 + S1 - Cz - Cz.T).rsqrt()) <= Z
    assert montecarlo.mean(bump(x0 @ D.T + r.map.c, mu)).z(torch.linalg.det(eye + D @ S0 @ D.T).rsqrt()) <= Z


# --- C17.7 -------------------------------------------------------------------------------------------------
@settings(max_examples=8)
@given(S0=dst.spd_matrices(2), scale=st.floats(0.0, 0.5), seed=st.integers(0, 2**16))
def test_w2_bound_affine_model_property(S0, scale, seed):
    """C17.7: W2[p_0, q_0] <= int I_t (L_t(g) - L_t^*)^{1/2} dt for random affine perturbations g = v* + E x + e."""
    g = gen(seed)
    E = scale * torch.randn(2, 2, generator=g, dtype=torch.float64)
    e = scale * torch.randn(2, generator=g, dtype=torch.float64)
    m0 = torch.randn(2, generator=g, dtype=torch.float64)
    r = rf.w2_bound_affine_model(m0, S0, E, e, panels=4, nodes=8)
    # W2 is the square root of a Bures value with float64 rounding ~1e-15, hence the 1e-7 floor
    assert r.w2 <= r.bound * (1 + 1e-8) + 1e-7


# --- C17.9 -------------------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(eps=st.floats(0.01, 1.0), t=st.floats(0.0, 1.0))
def test_data_end_stiffness_property(eps, t):
    """C17.9: the slope of v* for data N(mu, eps^2) (autograd) never exceeds (1+eps^2)/(2 eps) and attains it at t*."""
    gm = GaussianMixture([1.0], [[0.5]], [[eps**2]])
    cp = rf.Coupling.independent(gm)
    lin = rf.Interpolant.linear()
    peak = (1 + eps**2) / (2 * eps)
    tstar = eps * (1 + eps) / (1 + eps**2)
    J = cp.jacobian(lin, torch.tensor([[0.1], [0.1]], dtype=torch.float64), torch.tensor([t, tstar], dtype=torch.float64))
    assert J[0, 0, 0].item() <= peak * (1 + 1e-10)
    assert abs(J[1, 0, 0].item() - peak) <= 1e-10 * peak
    if t == 0.0:
        assert abs(J[0, 0, 0].item() + 1) <= 1e-12


def test_w2_bound_affine_model_gap_is_the_field_error_under_rho_t():
    """C17.7's F_t^2 = E||E x_t + e||^2 with x_t = (1 - t) x0 + t x1, x0 ~ N(m0, S0), x1 ~ N(0, I) independent:
    Monte Carlo within 5 SE at several t."""
    g = gen(11)
    m0 = torch.tensor([0.7, -1.2], dtype=torch.float64)
    S0 = torch.tensor([[1.5, 0.4], [0.4, 0.6]], dtype=torch.float64)
    E = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64)
    e = torch.tensor([0.2, -0.1], dtype=torch.float64)
    r = rf.w2_bound_affine_model(m0, S0, E, e, panels=2, nodes=6)
    n = 200_000
    x0 = m0 + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(S0).T
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    for t in (0.0, 0.3, 0.8):
        xt = (1 - t) * x0 + t * x1
        est = montecarlo.mean(((xt @ E.T + e) ** 2).sum(-1))
        assert est.z(r.gap_at(t)) <= 5, t


@pytest.mark.parametrize("false_alarm", [1e-4, 0.05, 0.5, 0.99])
def test_dkw_threshold_inverts_the_bound(false_alarm):
    lam = rf.dkw_threshold(false_alarm)
    assert 2 * math.exp(-2 * lam**2) == pytest.approx(false_alarm, rel=1e-13)


def test_points_needing_gradients_must_be_a_batch():
    cp = rf.Coupling.independent(GaussianMixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]]))
    with pytest.raises(ValueError, match="x must have shape"):
        cp.jacobian(rf.Interpolant.linear(), torch.zeros(2, dtype=torch.float64, requires_grad=True), 0.5)
