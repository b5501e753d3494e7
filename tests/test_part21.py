"""Mean-value facts of article 21 (diffmath.mean_value), against independent computations."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import mean_value as mv
from diffmath.flows import gaussian_flow
from diffmath.schedules import edm_rho_grid

EXACT = 1e-12  # float64 closed forms: a few ulps times small condition numbers


@given(n=st.integers(3, 40), lo=st.floats(1e-3, 1.0), span=st.floats(2.0, 1e4))
def test_rho_grid_approaches_geometric_property(n, lo, span):
    """C21.2: the log-distance to the geometric grid shrinks like 1/rho (ratio 10 per decade)."""
    hi = lo * span
    geo = mv.edm_rho_limit(n, lo, hi)
    assert geo[0] == hi and geo[-1] == lo and (geo[:-1] > geo[1:]).all()
    assert torch.allclose(torch.log(geo[:-1] / geo[1:]), torch.full((n - 1,), math.log(span) / (n - 1), dtype=torch.float64), rtol=1e-10)
    gaps = [(edm_rho_grid(n, lo, hi, r) / geo).log().abs().max().item() for r in (1e3, 1e4)]
    bound = math.log(span) ** 2 / 8  # |log t - log geo| <= (log span)^2 u(1-u) / (2 rho) + O(rho^-2)
    assert gaps[1] <= bound / 1e4 * 1.01 + 1e-12
    assert gaps[0] >= 5 * gaps[1]


def test_edm_rho_limit_rejects_bad_input():
    with pytest.raises(ValueError, match="n"):
        mv.edm_rho_limit(1, 0.1, 1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        mv.edm_rho_limit(5, 2.0, 1.0)


@given(theta=st.floats(0.05, 2 * math.pi), phase=st.floats(0, 2 * math.pi), omega=st.floats(0.1, 10.0))
def test_vector_mvt_fails_on_arcs_property(theta, phase, omega):
    """C21.5: u(t) = (cos(w t + p), sin(w t + p)) on an arc of angle theta: no s hits the mean."""
    b = theta / omega
    nodes, weights = np.polynomial.legendre.leggauss(80)
    t = 0.5 * b * (nodes + 1)
    u = np.stack([np.cos(omega * t + phase), np.sin(omega * t + phase)], -1)
    mean = 0.5 * (weights[:, None] * u).sum(0)
    assert abs(np.linalg.norm(mean) - 2 * math.sin(theta / 2) / theta) < 1e-10
    s = np.linspace(0, b, 4001)
    us = np.stack([np.cos(omega * s + phase), np.sin(omega * s + phase)], -1)
    gap = np.linalg.norm(us - mean, axis=-1).min()
    assert gap >= 0.999 * (1 - 2 * math.sin(theta / 2) / theta) > 0


@given(a=st.floats(-5, 5), w=st.floats(1e-3, 5))
def test_cubic_counterexample_property(a, w):
    """C21.6: x(t) = (t, t^3) has a mean-value time inside every interval."""
    b = a + w
    s = mv.cubic_mean_value_time(a, b)
    assert a < s < b
    chord = (b**3 - a**3) / (b - a)
    assert abs(3 * s * s - chord) <= EXACT * max(1.0, chord)


def test_cubic_counterexample_values():
    """C21.6: s* = 1/sqrt 3 on [0, 1], and the curve leaves its chord by 2/(3 sqrt 6)."""
    assert mv.cubic_mean_value_time(0.0, 1.0) == pytest.approx(1 / math.sqrt(3), rel=EXACT)
    assert mv.cubic_mean_value_time(-2.0, -1.0) == pytest.approx(-math.sqrt(7 / 3), rel=EXACT)
    t = np.linspace(0, 1, 200001)
    assert ((t - t**3) / math.sqrt(2)).max() == pytest.approx(2 / (3 * math.sqrt(6)), rel=1e-9)
    with pytest.raises(ValueError, match="a < b"):
        mv.cubic_mean_value_time(1.0, 1.0)


@given(coef=st.lists(st.floats(-3, 3), min_size=3, max_size=3), b=st.floats(0.1, 3.0), seed=st.integers(0, 2**16))
def test_fixed_direction_mvt_property(coef, b, seed):
    """C21.13: u(t) = c(t) e with c quadratic: the chord equals u(s) for a root s of c(s) = mean c in [0, b]."""
    p0, p1, p2 = coef
    e = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    cbar = p0 + p1 * b / 2 + p2 * b * b / 3
    roots = np.roots([p2, p1, p0 - cbar]) if abs(p2) > 1e-12 else np.roots([p1, p0 - cbar])
    real = [r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-9 and -1e-9 <= r.real <= b + 1e-9]
    if abs(p1) < 1e-12 and abs(p2) < 1e-12:
        real = [b / 2]  # constant c: every s works
    assert real, "the scalar mean-value theorem guarantees a root in [0, b]"
    s = real[0]
    cs = p0 + p1 * s + p2 * s * s
    assert torch.allclose(cs * e, cbar * e, rtol=1e-7, atol=1e-7 * max(1.0, abs(cbar)))


@settings(max_examples=60)
@given(log_sd=st.floats(-3, 2), log_t1=st.floats(math.log(0.002), math.log(80)), ratio=st.floats(1e-4, 0.999), seed=st.integers(0, 2**16))
def test_mean_value_time_property(log_sd, log_t1, ratio, seed):
    """C21.8: s* exists in (t_n, t_{n+1}) and the vector AMED step at s* equals the exact Gaussian flow."""
    sd, t1 = math.exp(log_sd), math.exp(log_t1)
    t0 = ratio * t1
    s = mv.mean_value_time(t0, t1, sd)
    assert t0 < s < t1
    g = torch.Generator().manual_seed(seed)
    d = 6
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    x = mu + t1 * torch.randn(d, generator=g, dtype=torch.float64)
    v = lambda y, sig: (y - (mu + sd**2 / (sd**2 + sig**2) * (y - mu))) / sig
    x_amed = x - v(x - v(x, t1) * (t1 - s), s) * (t1 - t0)
    exact = gaussian_flow(mu, sd**2 * torch.eye(d, dtype=torch.float64), x, 1.0, t1, 1.0, t0)
    # rounding is relative to the update's largest term, the starting deviation x - mu, which cancels to the far smaller
    # result when t_n << t_(n+1) (seed 8 of the flake check: 2.9e-13 against 1e-12 |exact - mu| = 1.6e-13)
    assert (x_amed - exact).norm() <= EXACT * (x - mu).norm()
    # Euler undershoots (C21.8, step 2), so s* is a genuine interior point, not t_{n+1}
    assert mv.amed_gain(t1, t0, t1, sd) <= mv.exact_gain(t0, t1, sd) + 1e-15


def test_mean_value_time_rejects_bad_input():
    with pytest.raises(ValueError, match="t_to < t_from"):
        mv.mean_value_time(2.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="sd"):
        mv.mean_value_time(0.5, 1.0, 0.0)
    with pytest.raises(ValueError, match="t_to"):
        mv.mean_value_time(-1.0, 1.0, 1.0)


@given(d=st.integers(1, 32), log_T=st.floats(-2, math.log(80)), steps=st.integers(1, 30), rho=st.floats(1, 10), seed=st.integers(0, 2**16))
def test_euler_exact_for_point_mass_property(d, log_T, steps, rho, seed):
    """C21.9: with D = mu, Euler from T down to 0 returns mu, and lands on the segment at every node."""
    T = math.exp(log_T)
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    xT = mu + T * torch.randn(d, generator=g, dtype=torch.float64)
    nodes = [T] + (edm_rho_grid(steps + 1, T * 1e-3, T, rho)[1:].tolist() if steps > 1 else []) + [0.0]
    x = xT
    for s0, s1 in zip(nodes[:-1], nodes[1:]):
        x = mv.euler_step(x, mu, s0, s1)
        exact = mu + (s1 / T) * (xT - mu)
        assert (x - exact).norm() <= EXACT * (xT - mu).norm()
    with pytest.raises(ValueError, match="sigma"):
        mv.euler_step(x, mu, 0.0, 0.0)


@given(sd=st.floats(0.05, 5.0), T=st.floats(20.0, 200.0), seed=st.integers(0, 2**16))
def test_afs_ratio_property(sd, T, seed):
    """C21.10: ||AFS direction|| / ||exact velocity|| is the closed form, and 1 + (s^2 - 1/2)/T^2 + O(T^-4)."""
    g = torch.Generator().manual_seed(seed)
    x = T * torch.randn(8, generator=g, dtype=torch.float64)
    v = (x - sd**2 / (sd**2 + T**2) * x) / T
    afs = x / math.sqrt(1 + T**2)
    assert torch.allclose(afs, mv.afs_ratio(T, sd) * v, rtol=EXACT, atol=0)
    remainder = abs(mv.afs_ratio(T, sd) - 1 - (sd**2 - 0.5) / T**2) * T**4
    assert remainder <= 3 / 8 + sd**2 / 2 + 1e-6  # |O(T^-4)| coefficient: 3/8 - s^2/2, plus slack for T >= 20


@given(m=st.integers(3, 30), d=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_pca_residuals_property(m, d, seed):
    """C21.7: PCA residuals are non-increasing in k, vanish at the rank, and explained variance rises to 1."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(m, d, generator=g, dtype=torch.float64)
    ks = tuple(range(0, min(m - 1, d) + 1))
    res, expl = mv.pca_residuals(pts, ks)
    assert (res[1:] <= res[:-1] + 1e-12).all()
    assert res[0] == pytest.approx(1.0) and res[-1] <= 1e-10
    assert (expl[1:] >= expl[:-1] - 1e-12).all() and expl[-1] == pytest.approx(1.0)
    # a segment traversed at any speed is rank 1
    a, b = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    w = torch.rand(m, 1, generator=g, dtype=torch.float64) ** 3
    assert mv.pca_residuals(a + w * (b - a), ks=(1,))[0][0] <= 1e-10
    with pytest.raises(ValueError, match="points"):
        mv.pca_residuals(pts[0])


def test_isotropic_trajectory_is_a_line():
    """C21.7: isotropic Gaussian data give straight trajectories; an anisotropic Gaussian bends them."""
    g = torch.Generator().manual_seed(7)
    d = 8
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    xT = mu + 80 * torch.randn(d, generator=g, dtype=torch.float64)
    sig = edm_rho_grid(30, 0.002, 80.0, 7.0).tolist()
    iso = torch.stack([gaussian_flow(mu, 0.5 * torch.eye(d, dtype=torch.float64), xT, 1.0, 80.0, 1.0, s) for s in sig])
    assert mv.pca_residuals(iso, ks=(1,))[0][0] <= 1e-12
    cov = torch.diag(torch.logspace(-2, 1, d, dtype=torch.float64))
    bent = torch.stack([gaussian_flow(mu, cov, xT, 1.0, 80.0, 1.0, s) for s in sig])
    assert mv.pca_residuals(bent, ks=(1,))[0][0] >= 1e-4


@given(
    a_t=st.floats(0.01, 0.98),
    gap=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**16),
)
def test_ddim_step_is_euler_property(a_t, gap, seed):
    """C21.1: one DDIM step equals one Euler step in EDM coordinates, for random levels and vectors."""
    a_s = a_t + gap * (1 - a_t)  # less noise at s
    g = torch.Generator().manual_seed(seed)
    x_t, eps = torch.randn(2, 5, generator=g, dtype=torch.float64)
    b_t, b_s = (1 - a_t**2) ** 0.5, (1 - a_s**2) ** 0.5
    ddim = a_s * (x_t - b_t * eps) / a_t + b_s * eps
    euler = x_t / a_t + (b_s / a_s - b_t / a_t) * eps
    assert torch.allclose(ddim / a_s, euler, rtol=1e-12, atol=1e-12)


@given(log_ss=st.floats(-2, 4), ratio=st.floats(1.01, 100), seed=st.integers(0, 2**16))
def test_dpm_solver_2_is_geometric_midpoint_property(log_ss, ratio, seed):
    """C21.4 on random levels: Lu et al.'s exponential form equals the library's midpoint step."""
    from diffmath import samplers
    from diffmath.denoisers import edm_denoiser
    from diffmath.toys import random_mixture

    s_s = math.exp(log_ss)
    s_t = s_s / ratio
    gm = random_mixture(2, 2, seed=seed % 7)
    D = edm_denoiser(gm)
    x = gm.diffuse(1.0, s_s).sample(4, generator=torch.Generator().manual_seed(seed))
    eps = lambda y, s: (y - D(y, s)) / s
    h = math.log(s_s / s_t)
    s_m = s_s * math.exp(-h / 2)
    lu = x - s_t * math.expm1(h) * eps(x - s_m * math.expm1(h / 2) * eps(x, s_s), s_m)
    ours = samplers.sample_dpm_solver_2(D, x, torch.tensor([s_s, s_t], dtype=torch.float64), require_zero=False)
    assert torch.allclose(lu, ours, rtol=1e-10, atol=1e-10 * (1 + x.abs().max().item()))
