"""diffmath.wasserstein: Bures W2, the Gaussian OT map, exact 1-D W2 for samples and mixtures.

References are independent: scipy.linalg.sqrtm, POT (when installed), sorted-sample Monte Carlo
with standard errors from the same batches, and the defining properties of the OT map.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import montecarlo
from diffmath import strategies as dst
from diffmath import wasserstein as wd
from diffmath.mixture import GaussianMixture
from diffmath.toys import random_spd

F64 = torch.float64


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def _pair(d, seed):
    g = _gen(seed)
    return (
        torch.randn(d, generator=g, dtype=F64),
        random_spd(d, generator=g),
        torch.randn(d, generator=g, dtype=F64),
        random_spd(d, generator=g),
    )


@pytest.mark.parametrize("d", [1, 2, 5])
def test_bures_matches_scipy_sqrtm(d):
    m1, S1, m2, S2 = _pair(d, d)
    r1 = scipy.linalg.sqrtm(S1.numpy()).real
    ref = ((m1 - m2) ** 2).sum().item() + np.trace(S1.numpy() + S2.numpy() - 2 * scipy.linalg.sqrtm(r1 @ S2.numpy() @ r1).real)
    assert wd.bures_w2_squared(m1, S1, m2, S2).item() == pytest.approx(ref, rel=1e-10)


def test_bures_matches_pot():
    ot_gaussian = pytest.importorskip("ot.gaussian")
    m1, S1, m2, S2 = _pair(3, 7)
    ref = ot_gaussian.bures_wasserstein_distance(m1.numpy(), m2.numpy(), S1.numpy(), S2.numpy())
    assert wd.bures_w2(m1, S1, m2, S2).item() == pytest.approx(float(ref), rel=1e-9)
    A, _ = ot_gaussian.bures_wasserstein_mapping(m1.numpy(), m2.numpy(), S1.numpy(), S2.numpy())
    assert np.allclose(wd.gaussian_ot_map(S1, S2).numpy(), A, rtol=1e-9, atol=1e-10)


def test_bures_one_dimensional_closed_form():
    val = wd.bures_w2_squared([0.5], [[4.0]], [-1.0], [[0.25]]).item()
    assert val == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-14)
    assert wd.bures_w2([1.0, 2.0], torch.eye(2), [1.0, 2.0], torch.eye(2)).item() == pytest.approx(0.0, abs=1e-12)


def test_bures_matches_sorted_samples_1d(device):
    """Bures W2^2 against the exact W2^2 of empirical laws (sorted samples), averaged over batches.

    The batch mean of the empirical W2^2 exceeds W2^2 by a bias of order log log n / n (joint
    convexity of W2^2), far below the standard error here; 5 SE from the same batches.
    """
    m1, s1, m2, s2 = 0.3, 1.2, -0.5, 0.6
    truth = wd.bures_w2_squared([m1], [[s1**2]], [m2], [[s2**2]]).item()
    g = _gen(3, device)
    batches, n = 40, 5000
    x = m1 + s1 * torch.randn(batches, n, generator=g, dtype=F64, device=device)
    y = m2 + s2 * torch.randn(batches, n, generator=g, dtype=F64, device=device)
    vals = torch.stack([wd.empirical_w2_1d(x[i], y[i]) ** 2 for i in range(batches)])
    assert montecarlo.mean(vals).z(truth).item() < montecarlo.Z_BOUND


def test_empirical_w2_1d_matches_pot_emd():
    ot = pytest.importorskip("ot")
    g = _gen(4)
    x, y = torch.randn(60, generator=g, dtype=F64), 2 + 0.5 * torch.rand(60, generator=g, dtype=F64)
    M = ot.dist(x.numpy()[:, None], y.numpy()[:, None])
    w = np.full(60, 1 / 60)
    assert wd.empirical_w2_1d(x, y).item() ** 2 == pytest.approx(float(ot.emd2(w, w, M)), rel=1e-10)


@given(dst.spd_matrices(3), dst.spd_matrices(3))
def test_ot_map_pushes_forward_property(S1, S2):
    """A is symmetric positive definite, solves A S1 A = S2, and its transport cost is W2^2."""
    A = wd.gaussian_ot_map(S1, S2)
    assert torch.allclose(A, A.T, atol=1e-12)
    assert torch.linalg.eigvalsh(A)[0] > 0
    scale = S2.abs().max()
    assert ((A @ S1 @ A - S2).abs().max() / scale).item() < 1e-9
    eye = torch.eye(3, dtype=F64)
    cost = torch.trace((eye - A) @ S1 @ (eye - A).T).item()
    assert cost == pytest.approx(wd.bures_w2_squared(torch.zeros(3), S1, torch.zeros(3), S2).item(), rel=1e-8, abs=1e-12)


@given(dst.spd_matrices(2), dst.spd_matrices(2), dst.spd_matrices(2), st.lists(st.floats(-3, 3), min_size=6, max_size=6))
def test_bures_is_a_metric_property(S1, S2, S3, ms):
    m = torch.tensor(ms, dtype=F64).reshape(3, 2)
    d12 = wd.bures_w2(m[0], S1, m[1], S2).item()
    d21 = wd.bures_w2(m[1], S2, m[0], S1).item()
    d13 = wd.bures_w2(m[0], S1, m[2], S3).item()
    d23 = wd.bures_w2(m[1], S2, m[2], S3).item()
    assert d12 == pytest.approx(d21, rel=1e-9, abs=1e-12)
    assert d13 <= d12 + d23 + 1e-9


def test_w2_mixtures_reduces_to_bures():
    p = wd.gaussian_mixture_1d([1.0], [0.3], [2.0])
    q = wd.gaussian_mixture_1d([1.0], [-1.0], [0.2])
    assert wd.w2_1d_mixtures(p, q).item() == pytest.approx(wd.bures_w2([0.3], [[2.0]], [-1.0], [[0.2]]).item(), rel=1e-10)


def test_w2_mixtures_matches_sorted_samples(device):
    p = wd.gaussian_mixture_1d([0.3, 0.7], [-2.0, 1.5], [0.3, 0.5], device=device)
    q = wd.gaussian_mixture_1d([0.5, 0.5], [-1.0, 1.0], [1.0, 2.0], device=device)
    truth = wd.w2_1d_mixtures(p, q).item() ** 2
    g = _gen(5, device)
    vals = torch.stack([wd.empirical_w2_1d(p.sample(4000, generator=g), q.sample(4000, generator=g)) ** 2 for _ in range(40)])
    assert montecarlo.mean(vals).z(truth).item() < montecarlo.Z_BOUND


def test_quantile_inverts_cdf_in_both_tails():
    gm = wd.gaussian_mixture_1d([0.2, 0.8], [-3.0, 2.0], [0.5, 1.5])
    u = torch.tensor([1e-14, 1e-6, 0.2, 0.5, 0.9, 1 - 1e-6], dtype=F64)
    x = wd.mixture_quantile_1d(gm, u)
    assert torch.allclose(wd.mixture_cdf_1d(gm, x), u, rtol=1e-10, atol=0)
    far = torch.tensor([6.0, 9.0], dtype=F64)  # upper tail: matched through the survival function
    sf = wd.mixture_sf_1d(gm, far)
    back = wd.monotone_map_1d(gm, gm, far)
    assert torch.allclose(back, far, rtol=1e-10)
    assert (sf > 0).all()


def test_monotone_map_pushes_samples(device):
    p = wd.gaussian_mixture_1d([0.5, 0.5], [-1.0, 2.0], [0.3, 0.8], device=device)
    q = wd.gaussian_mixture_1d([1.0], [0.0], [1.0], device=device)
    y = wd.monotone_map_1d(p, q, p.sample(50_000, generator=_gen(6, device))[:, 0])
    est = montecarlo.mean(torch.stack([y, y**2], 1))
    assert est.z(torch.tensor([0.0, 1.0], dtype=F64, device=device)).max().item() < montecarlo.Z_BOUND


@settings(max_examples=8)
@given(p=dst.mixtures(dims=st.just(1), components=st.integers(1, 3)), n=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_w2_empirical_mixture_property(p, n, seed):
    """The closed form of W2(sample, 1-D mixture) against quadrature of the monotone map for the sample smoothed by a
    kernel of width delta (smoothing moves the law by exactly delta in W2); a point mass at c is at distance
    sqrt(Var p + (c - E p)^2); the quantile-bin means are the closest n-point cloud, at sqrt(E y^2 - mean m_i^2)."""
    x = 2 * torch.randn(n, generator=_gen(seed), dtype=F64)
    exact = wd.w2_empirical_mixture_1d(x, p).item()
    delta = 1e-3
    smooth = wd.gaussian_mixture_1d(torch.full((n,), 1.0 / n, dtype=F64), x, torch.full((n,), delta**2, dtype=F64))
    assert abs(wd.w2_1d_mixtures(smooth, p).item() - exact) <= delta + 1e-8
    m, var = p.mean()[0].item(), p.covariance()[0, 0].item()
    c = x[0].item()
    point = wd.w2_empirical_mixture_1d(torch.full((n,), c, dtype=F64), p).item()
    assert point == pytest.approx(math.sqrt(var + (c - m) ** 2), rel=1e-12)
    bins = wd.quantile_bin_means_1d(p, n)
    floor = wd.w2_empirical_mixture_1d(bins, p).item()
    assert (bins.diff() >= 0).all() and bins.mean().item() == pytest.approx(m, abs=1e-12 * (1 + var))
    assert floor**2 == pytest.approx(var + m * m - (bins**2).mean().item(), abs=1e-10 * (var + m * m))
    assert floor <= exact + 1e-12
    rows = wd.w2_empirical_mixture_1d(torch.stack([x, bins]), p)
    assert torch.allclose(rows, torch.tensor([exact, floor], dtype=F64), rtol=1e-14, atol=0)


def test_w2_1d_mixtures_resolves_narrow_far_components():
    """A two-point cloud smoothed by delta = 1e-3 is within delta of the cloud in W2 (exact closed form): the
    quadrature must resolve both narrow components (one even grid over [-0.6, 3.1] missed by 0.0047)."""
    p = wd.gaussian_mixture_1d([2 / 3, 1 / 3], [0.0, 2.0], [0.9889, 0.9889])
    x = torch.tensor([3.0820, -0.5869], dtype=F64)
    delta = 1e-3
    smooth = wd.gaussian_mixture_1d([0.5, 0.5], x, [delta**2, delta**2])
    assert abs(wd.w2_1d_mixtures(smooth, p).item() - wd.w2_empirical_mixture_1d(x, p).item()) <= delta


def test_w2_empirical_mixture_bad_input():
    p = wd.gaussian_mixture_1d([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="x must have shape"):
        wd.w2_empirical_mixture_1d(torch.zeros(2, 2, 2, dtype=F64), p)
    with pytest.raises(ValueError, match="one-dimensional"):
        wd.w2_empirical_mixture_1d(torch.zeros(3, dtype=F64), GaussianMixture([1.0], [[0.0, 0.0]], [1.0]))
    with pytest.raises(ValueError, match="n must be"):
        wd.quantile_bin_means_1d(p, 0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="positive"):
        wd.bures_w2([0.0, 0.0], [[1.0, 0.0], [0.0, -1.0]], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        wd.bures_w2([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="shape"):
        wd.bures_w2([0.0, 0.0], torch.eye(3), [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="different dimensions"):
        wd.bures_w2([0.0], [[1.0]], [0.0, 0.0], torch.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        wd.gaussian_ot_map(torch.zeros(2, 2), torch.eye(2))
    with pytest.raises(ValueError, match="same number"):
        wd.empirical_w2_1d(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        wd.empirical_w2_1d(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        wd.w2_1d_mixtures(dst_mixture_2d(), wd.gaussian_mixture_1d([1.0], [0.0], [1.0]))
    with pytest.raises(TypeError, match="GaussianMixture"):
        wd.w2_1d_mixtures("not a mixture", wd.gaussian_mixture_1d([1.0], [0.0], [1.0]))
    with pytest.raises(ValueError, match="strictly between"):
        wd.mixture_quantile_1d(wd.gaussian_mixture_1d([1.0], [0.0], [1.0]), [0.0])


def dst_mixture_2d():
    from diffmath import GaussianMixture

    return GaussianMixture([1.0], [[0.0, 0.0]], [1.0])


def test_mixed_precision_gaussians_compute_in_float64():
    m, S = wd._mean_cov(torch.zeros(2, dtype=torch.float32), torch.eye(2, dtype=F64), "p")
    assert m.dtype == S.dtype == F64
    assert wd.bures_w2(torch.zeros(1, dtype=torch.float32), [[1.0]], torch.ones(1, dtype=F64), [[1.0]]).dtype == F64


def test_gaussian_mixture_1d_refuses_bad_shapes_and_zero_variance():
    with pytest.raises(ValueError, match="shape"):
        wd.gaussian_mixture_1d([1.0], [[0.0]], [1.0])
    with pytest.raises(ValueError, match="shape"):
        wd.gaussian_mixture_1d([1.0], [0.0], [[1.0]])
    with pytest.raises(ValueError, match="variances must be > 0"):
        wd.gaussian_mixture_1d([0.5, 0.5], [0.0, 1.0], [1.0, 0.0])


def test_quantile_to_full_precision_in_the_bulk():
    """The bisection runs to the last bits: F(F^-1(u)) = u to a few eps for a two-component mixture."""
    p = wd.gaussian_mixture_1d([0.3, 0.7], [-1.0, 2.0], [0.5, 1.5])
    u = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=F64)
    q = wd.mixture_quantile_1d(p, u)
    dens = torch.exp(p.log_prob(q[:, None]))
    # |F(q) - u| <= (density) x (a few ulps of q) + rounding of F
    assert ((wd.mixture_cdf_1d(p, q) - u).abs() <= dens * 8 * torch.finfo(F64).eps * q.abs().clamp_min(1) + 4e-16).all()
