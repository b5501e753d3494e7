"""diffmath.linear_flows: exact affine flows, Lipschitz constants, the lemma's quadrature.

Exact flows are checked against the reference ODE solver and the closed-form Gaussian flow;
moments and coupling costs against Monte Carlo (5 SE); the quadrature against closed forms and
scipy.integrate.quad.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import GaussianMixture, flows, montecarlo, schedules
from diffmath import linear_flows as lf
from diffmath import strategies as dst
from diffmath import wasserstein as wd

F64 = torch.float64


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


_matrices = dst.matrices
_vectors = dst.vectors


# --- expm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [0.0, 1e-3, 0.015, 0.02, 0.03, 0.3, 1.0, 5.0])
def test_expm_matches_high_precision(norm):
    """Against mpmath at 40 digits, in the 1-norm band where torch.linalg.matrix_exp loses digits (0.01-0.03)."""
    import mpmath

    rng = np.random.default_rng(int(norm * 1000))
    mpmath.mp.dps = 40
    for _ in range(5):
        A = rng.standard_normal((3, 3))
        A *= norm / np.abs(A).sum(0).max()
        ref = np.array(mpmath.expm(mpmath.matrix(A.tolist())).tolist(), dtype=float)
        E = lf.expm(torch.tensor(A)).numpy()
        # squaring amplifies rounding by about the norm (conditioning); the floor is a few eps
        assert np.abs(E - ref).max() <= 8 * np.finfo(float).eps * max(1.0, norm) * np.abs(ref).max()


def test_expm_small_entries_to_full_relative_precision():
    """The offset of a short affine flow (the C16.3 counterexample at K = 1/4, T = 1/8, delta = 1/4) to 1e-14 relative,
    where torch.linalg.matrix_exp is off by 1e-10."""
    K, T, delta = 0.25, 0.125, 0.25
    E = lf.expm(torch.tensor([[-K, delta], [0.0, 0.0]], dtype=F64) * (-T))
    assert E[0, 1].item() == pytest.approx(-delta * math.expm1(K * T) / K, rel=1e-14)
    assert E[0, 0].item() == pytest.approx(math.exp(K * T), rel=1e-15)


@given(st.floats(-20.0, 20.0), st.floats(0.0, 3.0))
def test_expm_closed_forms_property(theta, r):
    """exp of r I + theta J (J the rotation generator) is e^r times the rotation by theta; a nilpotent block is I + N."""
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    E = lf.expm(r * torch.eye(2, dtype=F64) + theta * J)
    R = math.exp(r) * torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=F64)
    assert (E - R).abs().max() <= 64 * torch.finfo(F64).eps * math.exp(r) * max(1.0, abs(theta))
    N = torch.tensor([[0.0, theta, r], [0.0, 0.0, theta], [0.0, 0.0, 0.0]], dtype=F64)
    expected = torch.eye(3, dtype=F64) + N + N @ N / 2
    assert (lf.expm(N) - expected).abs().max() <= 64 * torch.finfo(F64).eps * (1 + theta * theta + abs(r))


def test_expm_batch_dtype_device_and_bad_input(device):
    A = torch.randn(4, 3, 3, generator=_gen(0), dtype=F64).to(device)
    E = lf.expm(A)
    assert E.shape == A.shape and E.dtype == F64 and E.device == A.device
    for i in range(4):  # one scaling for the batch gives each matrix its own answer
        assert torch.allclose(E[i], lf.expm(A[i]), rtol=1e-13, atol=1e-14)
    assert torch.allclose(lf.expm(A) @ lf.expm(-A), torch.eye(3, dtype=F64, device=device).expand(4, 3, 3), atol=1e-12)
    assert lf.expm(A.float()).dtype == torch.float32
    for bad, word in [(torch.zeros(3), "square"), (torch.zeros(2, 3), "square"), (torch.zeros(2, 2, dtype=torch.int64), "floating"),
                      (torch.tensor([[math.nan, 0.0], [0.0, 0.0]]), "NaN")]:
        with pytest.raises(ValueError, match=word):
            lf.expm(bad)


def test_linear_flow_matches_reference_solver(device):
    g = _gen(1)
    B = torch.randn(3, 3, generator=g, dtype=F64).to(device)
    b = torch.randn(3, generator=g, dtype=F64).to(device)
    x = torch.randn(10, 3, generator=g, dtype=F64).to(device)
    exact = lf.linear_flow(B, b, 1.5, 0.0)(x)
    ref = flows.integrate(lambda t, y: y @ B.T + b, x, 1.5, 0.0)
    assert ((exact - ref).abs().max() / ref.abs().max()).item() < 1e-9


def test_linear_flow_composes_and_inverts():
    g = _gen(2)
    B, b = torch.randn(2, 2, generator=g, dtype=F64), torch.randn(2, generator=g, dtype=F64)
    there = lf.linear_flow(B, b, 2.0, 0.5)
    back = lf.linear_flow(B, b, 0.5, 2.0)
    both = there.then(back)
    assert torch.allclose(both.M, torch.eye(2, dtype=F64), atol=1e-12)
    assert torch.allclose(both.c, torch.zeros(2, dtype=F64), atol=1e-12)
    split = lf.linear_flow(B, b, 2.0, 1.0).then(lf.linear_flow(B, b, 1.0, 0.5))
    assert torch.allclose(split.M, there.M, rtol=1e-12) and torch.allclose(split.c, there.c, rtol=1e-12, atol=1e-14)


def test_linear_flow_tv_matches_gaussian_flow():
    """The PF-ODE of Gaussian data is an affine field; integrating it reproduces the closed form (C0.7)."""
    sched = schedules.VPCosine()
    mean = torch.tensor([1.0, -0.5], dtype=F64)
    cov = torch.tensor([[1.0, 0.3], [0.3, 0.4]], dtype=F64)
    flow = lf.linear_flow_tv(
        lambda t: lf.gaussian_pf_field(sched, mean, cov, t)[0], lambda t: lf.gaussian_pf_field(sched, mean, cov, t)[1], 0.9, 0.05
    )
    x = torch.randn(5, 2, generator=_gen(3), dtype=F64)
    ref = flows.gaussian_flow(mean, cov, x, sched.alpha(0.9), sched.sigma(0.9), sched.alpha(0.05), sched.sigma(0.05))
    assert ((flow(x) - ref).abs().max() / ref.abs().max()).item() < 1e-9


def test_gaussian_pf_field_matches_pf_ode_velocity():
    sched = schedules.VPLinear()
    mean = torch.tensor([0.5, 2.0], dtype=F64)
    cov = torch.tensor([[0.6, -0.2], [-0.2, 0.9]], dtype=F64)
    gauss = GaussianMixture([1.0], mean[None], cov[None])
    vel = flows.pf_ode_velocity(sched, gauss.denoise)
    x = torch.randn(20, 2, generator=_gen(4), dtype=F64)
    for t in (0.05, 0.3, 0.9):
        B, b = lf.gaussian_pf_field(sched, mean, cov, t)
        ref = vel(x, t)
        assert ((x @ B.T + b - ref).abs().max() / ref.abs().max()).item() < 1e-10


def test_sde_coefficients():
    vp = schedules.VPLinear(0.1, 20.0)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    f, g2 = lf.sde_coefficients(vp, t)
    assert torch.allclose(f, -0.5 * vp.beta(t), rtol=1e-12)
    assert torch.allclose(g2, vp.beta(t), rtol=1e-10)  # also at t = 0, where sigma = 0
    edm = schedules.EDM()
    f, g2 = lf.sde_coefficients(edm, torch.tensor([0.5, 3.0], dtype=F64))
    assert torch.allclose(f, torch.zeros(2, dtype=F64)) and torch.allclose(g2, torch.tensor([1.0, 6.0], dtype=F64))


def test_push_gaussian_matches_monte_carlo(device):
    g = _gen(5, device)
    B = torch.tensor([[-1.0, 0.7], [-0.4, 0.3]], dtype=F64, device=device)
    b = torch.tensor([0.2, -0.1], dtype=F64, device=device)
    m = torch.tensor([1.0, 0.5], dtype=F64, device=device)
    S = torch.tensor([[0.5, 0.1], [0.1, 0.3]], dtype=F64, device=device)
    flow = lf.linear_flow(B, b, 1.0, 0.0)
    mt, St = lf.push_gaussian(flow, m, S)
    z = m + torch.randn(200_000, 2, generator=g, dtype=F64, device=device) @ torch.linalg.cholesky(S).T
    y = flow(z)
    stats = torch.stack([y[:, 0], y[:, 1], y[:, 0] ** 2, y[:, 0] * y[:, 1], y[:, 1] ** 2], 1)
    second = St + torch.outer(mt, mt)
    truth = torch.stack([mt[0], mt[1], second[0, 0], second[0, 1], second[1, 1]])
    assert montecarlo.mean(stats).z(truth).max().item() < montecarlo.Z_BOUND


def test_coupling_cost_matches_monte_carlo(device):
    g = _gen(6, device)
    f1 = lf.linear_flow(torch.tensor([[-1.0, 0.5], [0.0, -0.2]], dtype=F64, device=device), torch.tensor([0.3, 0.0], dtype=F64, device=device), 1.0, 0.0)
    f2 = lf.linear_flow(torch.tensor([[0.4, 0.0], [1.0, -1.0]], dtype=F64, device=device), None, 1.0, 0.0)
    m = torch.tensor([0.5, -1.0], dtype=F64, device=device)
    S = torch.tensor([[1.0, 0.2], [0.2, 0.5]], dtype=F64, device=device)
    z = m + torch.randn(200_000, 2, generator=g, dtype=F64, device=device) @ torch.linalg.cholesky(S).T
    cost = ((f1(z) - f2(z)) ** 2).sum(-1)
    assert montecarlo.mean(cost).z(lf.coupling_cost(f1, f2, m, S)).item() < montecarlo.Z_BOUND


@given(_matrices(2), _vectors(2), _matrices(2), _vectors(2), st.floats(0.1, 3.0), dst.spd_matrices(2), _vectors(2))
def test_synchronous_cost_bounds_bures_property(A, a, B, b, T, S, m):
    """C16.1: two flows from the same Gaussian sample cost at least W2^2 of their end laws."""
    fx, gy = lf.linear_flow(A, a, T, 0.0), lf.linear_flow(B, b, T, 0.0)
    mp, Sp = lf.push_gaussian(fx, m, S)
    mq, Sq = lf.push_gaussian(gy, m, S)
    w2sq = wd.bures_w2_squared(mp, Sp, mq, Sq).item()
    cost = lf.coupling_cost(fx, gy, m, S).item()
    assert w2sq <= cost * (1 + 1e-9) + 1e-12


@given(st.integers(1, 6).flatmap(lambda d: _matrices(d, -5.0, 5.0)))
def test_one_sided_le_lipschitz_property(B):
    """C16.2: lambda_max(sym B) <= |B|_2, attained along the top eigenvector of sym B."""
    one_sided, lip = lf.one_sided_lipschitz(B).item(), lf.lipschitz(B).item()
    assert one_sided <= lip * (1 + 1e-12) + 1e-14
    lam, U = torch.linalg.eigh(0.5 * (B + B.T))
    u = U[:, -1]
    assert (u @ B @ u).item() == pytest.approx(one_sided, rel=1e-10, abs=1e-12)
    assert lf.backward_one_sided_lipschitz(B).item() == pytest.approx(-lam[0].item(), abs=1e-14)


@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(2, 24))
def test_tanh_layer_one_sided_ratio_property(seed, d, h):
    """C16.2 for a nonlinear field: the one-sided ratio of W2 tanh(W1 x + c) never exceeds |W2||W1|."""
    g = _gen(seed)
    W1, W2 = torch.randn(h, d, generator=g, dtype=F64), torch.randn(d, h, generator=g, dtype=F64)
    c = torch.randn(h, generator=g, dtype=F64)
    layer = lambda x: torch.tanh(x @ W1.T + c) @ W2.T
    x = 3 * torch.randn(2000, d, generator=g, dtype=F64)
    y = x + torch.randn(2000, d, generator=g, dtype=F64)
    ratio = ((layer(x) - layer(y)) * (x - y)).sum(-1) / ((x - y) ** 2).sum(-1)
    lip = ((layer(x) - layer(y)).norm(dim=-1) / (x - y).norm(dim=-1)).max()
    bound = torch.linalg.matrix_norm(W2, ord=2) * torch.linalg.matrix_norm(W1, ord=2)
    assert ratio.max() <= lip * (1 + 1e-12) and lip <= bound * (1 + 1e-12)


def test_lemma_bound_matches_closed_form():
    K, T, delta = 1.3, 2.2, 0.4
    assert lf.lemma_bound(lambda t: np.full_like(t, K), lambda t: np.full_like(t, delta), T) == pytest.approx(delta * math.expm1(K * T) / K, rel=1e-13)
    val = lf.lemma_bound(np.sin, lambda t: 1 + t**2, T, 0.5)
    ref = scipy.integrate.quad(lambda t: math.exp(1 - math.cos(t)) * (1 + t * t), 0, T, epsabs=0, epsrel=1e-13)[0] + 0.5 * math.exp(1 - math.cos(T))
    assert val == pytest.approx(ref, rel=1e-12)
    t = np.array([0.0, 0.7, 2.0])
    assert np.allclose(lf.integrating_factor(np.cos, t), np.exp(np.sin(t)), rtol=1e-13)


def test_lemma_on_linear_fields_synchronous_start_has_no_initial_term():
    one = torch.eye(1, dtype=F64)
    r = lf.lemma_on_linear_fields(-one, [0.5], -one, None, 1.0, [0.0], [[1.0]])
    assert r.w2_start == 0.0
    assert r.w2 == pytest.approx(r.wtilde, rel=1e-12)  # 1-D: synchronous = optimal
    assert r.bound_corrected == pytest.approx(0.5 * math.expm1(1.0), rel=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="square"):
        lf.linear_flow(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="b must have shape"):
        lf.linear_flow(torch.eye(2), torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        lf.one_sided_lipschitz(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="T must be"):
        lf.lemma_bound(np.sin, np.cos, -1.0)
    with pytest.raises(ValueError, match="one value per time"):
        lf.lemma_bound(lambda t: np.zeros(3), np.cos, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        lf.lemma_bound(np.sin, lambda t: -np.ones_like(t), 1.0)
    with pytest.raises(ValueError, match="w_T"):
        lf.lemma_bound(np.sin, np.cos, 1.0, -0.1)
    with pytest.raises(ValueError, match="must lie in"):
        lf.sde_coefficients(schedules.VPLinear(), 1.5)
