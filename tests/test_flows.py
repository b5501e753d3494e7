"""The PF-ODE: continuity equation, the reference solver against the Gaussian closed form,
schedule invariance (claims C0.6, C0.7, C0.9)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import diffmath as dm
from diffmath import flows
from diffmath import schedules as sch
from diffmath import strategies as dst
from diffmath.toys import random_mixture, random_spd


def _continuity_residuals(gm, schedule, t_val, x):
    """(d_t log p_t, div v, v . grad log p_t) at each point of x, all by autograd."""
    velocity = flows.pf_ode_velocity(schedule, gm.denoise)
    t = torch.tensor(t_val, dtype=torch.float64, device=gm.device, requires_grad=True)
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        logp = gm.diffuse(schedule.alpha(t), schedule.sigma(t)).log_prob(xi).sum()
        dt, score = torch.autograd.grad(logp, (t, xi))
        v = velocity(xi, t_val)
        div = sum(torch.autograd.grad(v[0, j], xi, retain_graph=True)[0][0, j] for j in range(gm.dim))
        out.append((dt, div, (v * score).sum(), v, score, xi))
    return out


def test_continuity_equation(device):
    """C0.6 on every continuous schedule; and a perturbed velocity breaks it (the check can fail)."""
    gm = random_mixture(2, 2, seed=1, device=device)
    for schedule in (sch.VPLinear(), sch.VPCosine(), sch.RectifiedFlow(), sch.EDM()):
        for t_val in (0.2, 0.6):
            x = gm.diffuse(schedule.alpha(t_val), schedule.sigma(t_val)).sample(3, generator=torch.Generator(device=device).manual_seed(0))
            for dt, div, transport, v, score, xi in _continuity_residuals(gm, schedule, t_val, x):
                assert (dt + div + transport).abs() <= 1e-10 * (dt.abs() + div.abs() + transport.abs())
                wrong = v + 0.1 * score
                div_w = sum(torch.autograd.grad(wrong[0, j], xi, retain_graph=True)[0][0, j] for j in range(2))
                assert (dt + div_w + (wrong * score).sum()).abs() > 1e-6 * (dt.abs() + div.abs())


@given(
    gm=dst.mixtures(dims=st.integers(1, 3), components=st.integers(1, 3)),
    pair=dst.continuous_schedules().flatmap(lambda s: st.tuples(st.just(s), dst.times(s, margin=0.05, upper=20.0))),
    seed=st.integers(0, 2**16),
)
def test_continuity_equation_property(gm, pair, seed):
    schedule, t_val = pair
    x = gm.diffuse(schedule.alpha(t_val), schedule.sigma(t_val)).sample(2, generator=torch.Generator().manual_seed(seed))
    for dt, div, transport, *_ in _continuity_residuals(gm, schedule, t_val, x):
        # relative to the terms, with a float64 rounding floor for points where all three vanish
        assert (dt + div + transport).abs() <= 1e-9 * (dt.abs() + div.abs() + transport.abs()) + 1e-13


def test_reference_solver_matches_gaussian_flow(device):
    g = torch.Generator().manual_seed(2)
    d = 3
    cov = random_spd(d, generator=g).to(device)
    mu = torch.randn(d, generator=g, dtype=torch.float64).to(device)
    gauss = dm.GaussianMixture(torch.ones(1, dtype=torch.float64, device=device), mu[None], cov[None])
    x = mu + 20 * torch.randn(16, d, generator=g, dtype=torch.float64).to(device)
    for s0, s1 in ((20.0, 1e-3), (1e-2, 50.0)):  # both directions
        out = flows.solve_pf_ode(gauss.denoise, x, s0, s1)
        exact = flows.gaussian_flow(mu, cov, x, 1.0, s0, 1.0, s1)
        assert (out - exact).abs().max() <= 1e-9 * exact.abs().max()


@given(seed=st.integers(0, 2**16), log_s0=st.floats(-1, 1.5), log_s1=st.floats(-2, 1.5))
def test_gaussian_flow_composes_and_inverts(seed, log_s0, log_s1):
    g = torch.Generator().manual_seed(seed)
    cov = random_spd(3, generator=g)
    mu = torch.randn(3, generator=g, dtype=torch.float64)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    s0, s1 = 10**log_s0, 10**log_s1
    there = flows.gaussian_flow(mu, cov, x, 1, s0, 1, s1)
    back = flows.gaussian_flow(mu, cov, there, 1, s1, 1, s0)
    assert torch.allclose(back, x, rtol=1e-10, atol=1e-10)


@given(
    seed=st.integers(0, 2**16),
    pair=dst.continuous_schedules().flatmap(lambda s: st.tuples(st.just(s), dst.times(s, margin=0.05, upper=20.0))),
)
def test_gaussian_flow_solves_pf_ode_property(seed, pair):
    """C0.7: d/dt of the closed-form Gaussian trajectory (autograd in t) is the PF-ODE velocity."""
    schedule, t_val = pair
    g = torch.Generator().manual_seed(seed)
    cov = random_spd(3, generator=g)
    mu = torch.randn(3, generator=g, dtype=torch.float64)
    gauss = dm.GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], cov[None])
    s_val = schedule.t_min + 0.02 if schedule.t_max > 1 else 0.02
    x_s = gauss.diffuse(schedule.alpha(s_val), schedule.sigma(s_val)).sample(4, generator=g)
    t = torch.tensor(t_val, dtype=torch.float64, requires_grad=True)
    x_t = flows.gaussian_flow(mu, cov, x_s, schedule.alpha(s_val), schedule.sigma(s_val), schedule.alpha(t), schedule.sigma(t))
    dxdt = torch.stack(
        [torch.stack([torch.autograd.grad(x_t[i, j], t, retain_graph=True)[0] for j in range(3)]) for i in range(4)]
    )
    v = flows.pf_ode_velocity(schedule, gauss.denoise)(x_t.detach(), t_val)
    assert torch.allclose(dxdt, v, rtol=1e-9, atol=1e-10)


@given(
    seed=st.integers(0, 2**16),
    schedules=st.tuples(dst.continuous_schedules(), dst.continuous_schedules()),
    levels=st.tuples(st.floats(0.05, 20.0), st.floats(0.05, 20.0)),
)
def test_schedule_invariance_gaussian_property(seed, schedules, levels):
    """C0.9 on the closed-form Gaussian flow: x/alpha at matched EDM levels agrees across schedules."""
    g = torch.Generator().manual_seed(seed)
    cov = random_spd(2, generator=g)
    mu = torch.randn(2, generator=g, dtype=torch.float64)
    x_edm = torch.randn(5, 2, generator=g, dtype=torch.float64)
    ends = []
    for schedule in schedules:
        try:
            t0, t1 = (schedule.t_of_edm_sigma(s).item() for s in levels)
        except ValueError:  # a level beyond this schedule's range (EDM's sigma is unbounded; VP's is)
            return
        a0, a1 = schedule.alpha(t0), schedule.alpha(t1)
        x1 = flows.gaussian_flow(mu, cov, a0 * x_edm, a0, schedule.sigma(t0), a1, schedule.sigma(t1))
        ends.append(x1 / a1)
    assert torch.allclose(ends[0], ends[1], rtol=1e-9, atol=1e-9)


def test_schedule_invariance(device):
    gm = random_mixture(2, 2, seed=3, device=device)
    x = gm.diffuse(1.0, 2.0).sample(8, generator=torch.Generator(device=device).manual_seed(1))
    ref = flows.solve_pf_ode(gm.denoise, x, 2.0, 0.1)
    for schedule in (sch.VPCosine(), sch.VPLinear(beta_min=0.5, beta_max=10.0), sch.RectifiedFlow()):
        t0, t1 = schedule.t_of_edm_sigma(2.0).item(), schedule.t_of_edm_sigma(0.1).item()
        velocity = flows.pf_ode_velocity(schedule, gm.denoise)
        direct = flows.integrate(lambda t, y: velocity(y, t), schedule.alpha(t0).item() * x, t0, t1)
        assert (direct / schedule.alpha(t1).item() - ref).abs().max() <= 1e-9 * ref.abs().max()
        via = flows.solve_schedule(schedule, gm.denoise, schedule.alpha(t0).item() * x, t0, t1)
        assert torch.allclose(via, direct, rtol=1e-9, atol=1e-10)


def test_solver_bad_input():
    gm = random_mixture(1, 2, seed=0)
    with pytest.raises(ValueError, match="sigma_to"):
        flows.solve_pf_ode(gm.denoise, torch.zeros(1, 2), 1.0, 0.0)
    with pytest.raises(ValueError, match="alpha > 0"):
        flows.solve_schedule(sch.RectifiedFlow(), gm.denoise, torch.zeros(1, 2), 1.0, 0.5)
    with pytest.raises(ValueError, match="sigma\\(t\\) > 0"):
        flows.pf_ode_velocity(sch.RectifiedFlow(), gm.denoise)(torch.zeros(1, 2), 0.0)
    with pytest.raises(RuntimeError, match="max_steps"):
        flows.solve_pf_ode(gm.denoise, torch.zeros(1, 2), 10.0, 0.01, max_steps=3)


# --- what the mutation run of issue 11 found untested ------------------------------------------------------------


def test_gaussian_flow_refuses_vector_levels_and_a_degenerate_start():
    mean, cov = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    x = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="alpha_from must be a number"):
        flows.gaussian_flow(mean, cov, x, torch.tensor([0.5, 0.6], dtype=torch.float64), 1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="starting covariance"):
        flows.gaussian_flow(mean, cov, x, 0.0, 0.0, 1.0, 0.5)


def test_solver_counts_every_denoiser_call():
    """SolveStats.evaluations equals the number of denoiser calls, counted independently by a wrapper; and the
    Dormand-Prince step costs six calls after the first (first-same-as-last)."""
    gm = random_mixture(2, 2, seed=7)
    calls = []

    def counted(y, alpha, s):
        calls.append(1)
        return gm.denoise(y, alpha, s)

    x = 5 * torch.randn(4, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    _, stats = flows.solve_pf_ode(counted, x, 5.0, 0.1, rtol=1e-6, atol=1e-6, return_stats=True)
    assert stats.evaluations == len(calls) == 1 + 6 * (stats.accepted + stats.rejected)


@pytest.mark.parametrize("problem", ["oscillator", "lotka-volterra", "van der pol"])
@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_step_controller_matches_scipy_rk45(problem, tol):
    """The reference solver's Dormand-Prince pair and step-size controller (safety 0.9, factors in [0.2, 5],
    exponent -1/5, RMS error norm) against scipy's RK45, an independent implementation of the same published
    method: the same number of accepted steps (to 3% + 2), nearly the same rejections (they differ only in the
    initial step guess), and the same final error (to a factor 2; reference: DOP853 at 1e-13)."""
    import scipy.integrate as si

    fns = {
        "oscillator": (lambda t, y: [y[1], -y[0]], [1.0, 0.0], 10.0),
        "lotka-volterra": (lambda t, y: [1.5 * y[0] - y[0] * y[1], -3 * y[1] + y[0] * y[1]], [10.0, 5.0], 15.0),
        "van der pol": (lambda t, y: [y[1], 3 * (1 - y[0] ** 2) * y[1] - y[0]], [2.0, 0.0], 10.0),
    }
    fn, y0, T = fns[problem]
    stats = flows.SolveStats()
    ours = flows._dopri5(lambda t, y: torch.stack([torch.as_tensor(v) for v in fn(t, y)]), torch.tensor(y0, dtype=torch.float64),
                         0.0, T, tol, tol, 100_000, stats).numpy()
    sp_sol = si.solve_ivp(fn, (0.0, T), y0, method="RK45", rtol=tol, atol=tol)
    ref = si.solve_ivp(fn, (0.0, T), y0, method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    sp_accepted = len(sp_sol.t) - 1
    sp_rejected = (sp_sol.nfev - 1 - 6 * sp_accepted) // 6
    assert abs(stats.accepted - sp_accepted) <= 0.03 * sp_accepted + 2
    assert abs(stats.rejected - sp_rejected) <= 0.2 * sp_rejected + 5
    assert stats.evaluations == 1 + 6 * (stats.accepted + stats.rejected)
    e_ours, e_sp = abs(ours - ref).max(), abs(sp_sol.y[:, -1] - ref).max()
    assert e_sp / 2 <= e_ours <= 2 * e_sp


def test_error_control_is_per_point():
    """The worst row decides the step: a hard row solved in a batch of easy rows is as accurate as solved alone
    (an error norm pooled over the batch would let it drift by about sqrt(batch) more)."""
    rates = torch.tensor([40.0] + [0.1] * 15, dtype=torch.float64)
    f = lambda t, y: -rates[:, None] * (y - math.cos(t))  # noqa: E731  (each row relaxes to cos t at its own rate)
    y0 = torch.ones(16, 1, dtype=torch.float64)
    batch = flows.integrate(f, y0, 0.0, 3.0, rtol=1e-6, atol=1e-6)
    alone = flows.integrate(lambda t, y: -40.0 * (y - math.cos(t)), y0[:1], 0.0, 3.0, rtol=1e-6, atol=1e-6)
    ref = flows.integrate(f, y0, 0.0, 3.0, rtol=1e-13, atol=1e-13)
    assert abs(batch[0] - ref[0]).item() <= 2 * abs(alone[0] - ref[0]).item() + 1e-12


def test_max_steps_is_exact():
    """A solve that takes K steps (accepted + rejected) passes with max_steps = K and raises with K - 1."""
    f = lambda t, y: torch.stack([1.5 * y[0] - y[0] * y[1], -3 * y[1] + y[0] * y[1]])  # noqa: E731
    y0 = torch.tensor([10.0, 5.0], dtype=torch.float64)
    stats = flows.SolveStats()
    flows._dopri5(f, y0, 0.0, 2.0, 1e-6, 1e-6, 100_000, stats)
    K = stats.accepted + stats.rejected
    assert stats.rejected > 0
    flows.integrate(f, y0, 0.0, 2.0, rtol=1e-6, atol=1e-6, max_steps=K)
    with pytest.raises(RuntimeError, match="max_steps"):
        flows.integrate(f, y0, 0.0, 2.0, rtol=1e-6, atol=1e-6, max_steps=K - 1)
    assert flows.integrate(lambda t, y: -y, torch.ones(1, dtype=torch.float64), 0.0, 1e-3, max_steps=1).item() == pytest.approx(math.exp(-1e-3), rel=1e-12)


def test_solve_schedule_refuses_pure_noise_ends():
    gm = random_mixture(2, 1, seed=0)
    rf = sch.RectifiedFlow()
    with pytest.raises(ValueError, match="alpha > 0 at both times"):
        flows.solve_schedule(rf, gm.denoise, torch.zeros(1, 1, dtype=torch.float64), 0.5, 1.0)
    with pytest.raises(ValueError, match="alpha > 0 at both times"):
        flows.solve_schedule(rf, gm.denoise, torch.zeros(1, 1, dtype=torch.float64), 1.0, 0.5)
