"""The PF-ODE: continuity equation, the reference solver against the Gaussian closed form,
schedule invariance (claims C0.6, C0.7, C0.9)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import diffmath as dm
from diffmath import flows
from diffmath import schedules as sch
from diffmath.toys import random_mixture, random_spd


def test_continuity_equation(device):
    gm = random_mixture(2, 2, seed=1, device=device)
    for schedule in (sch.VPLinear(), sch.RectifiedFlow(), sch.EDM()):
        velocity = flows.pf_ode_velocity(schedule, gm.denoise)
        for t_val in (0.2, 0.6):
            t = torch.tensor(t_val, dtype=torch.float64, device=device, requires_grad=True)
            x = gm.diffuse(schedule.alpha(t_val), schedule.sigma(t_val)).sample(3, generator=torch.Generator(device=device).manual_seed(0))
            for i in range(3):
                xi = x[i : i + 1].clone().requires_grad_(True)
                logp = gm.diffuse(schedule.alpha(t), schedule.sigma(t)).log_prob(xi).sum()
                dt, score = torch.autograd.grad(logp, (t, xi))
                v = velocity(xi, t_val)
                div = sum(torch.autograd.grad(v[0, j], xi, retain_graph=True)[0][0, j] for j in range(2))
                resid = dt + div + (v * score).sum()
                assert resid.abs() <= 1e-10 * (dt.abs() + div.abs() + (v * score).sum().abs())
            # the residual is sensitive: adding 0.1 * score to the velocity breaks the equation
            wrong = v + 0.1 * score
            div_w = sum(torch.autograd.grad(wrong[0, j], xi, retain_graph=True)[0][0, j] for j in range(2))
            assert (dt + div_w + (wrong * score).sum()).abs() > 1e-6 * (dt.abs() + div.abs())


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
