"""Parametrisations: round trips over random inputs, and agreement with the exact oracle (C0.8)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import flows, parametrisation as par
from diffmath import schedules as sch
from diffmath.toys import random_mixture

KINDS = par.KINDS


@given(
    alpha=st.floats(0.05, 1.0),
    sigma=st.floats(0.05, 10.0),
    dalpha=st.floats(-2.0, 0.0),
    dsigma=st.floats(0.1, 2.0),
    src=st.sampled_from(KINDS),
    dst=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
)
def test_round_trips_property(alpha, sigma, dalpha, dsigma, src, dst, seed):
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    x = alpha * x0 + sigma * eps
    kw = dict(x=x, alpha=alpha, sigma=sigma, dalpha=dalpha, dsigma=dsigma)
    val = par.from_x0_eps(x0, eps, src, alpha, sigma, dalpha, dsigma)
    there = par.convert(val, src, dst, **kw)
    assert torch.allclose(there, par.from_x0_eps(x0, eps, dst, alpha, sigma, dalpha, dsigma), rtol=1e-9, atol=1e-9)
    assert torch.allclose(par.convert(there, dst, src, **kw), val, rtol=1e-9, atol=1e-9)


def test_oracle_conversions_agree(device):
    gm = random_mixture(3, 4, seed=5, device=device)
    schedule = sch.RectifiedFlow()
    t = 0.3
    a, s, da, ds = (float(f(t)) for f in (schedule.alpha, schedule.sigma, schedule.dalpha, schedule.dsigma))
    x = gm.diffuse(a, s).sample(50, generator=torch.Generator(device=device).manual_seed(0))
    D = gm.denoise(x, a, s)
    kw = dict(x=x, alpha=a, sigma=s, dalpha=da, dsigma=ds)
    assert torch.allclose(par.convert(D, "x0", "score", **kw), gm.score_at(x, a, s), rtol=1e-10, atol=1e-12)
    v = flows.pf_ode_velocity(schedule, gm.denoise)(x, t)
    assert torch.allclose(par.convert(D, "x0", "velocity", **kw), v, rtol=1e-10, atol=1e-12)
    # rectified flow: the velocity is E[eps - x0 | x_t]
    eps_hat = par.convert(D, "x0", "eps", **kw)
    assert torch.allclose(v, eps_hat - D, rtol=1e-10, atol=1e-12)


def test_v_prediction_matches_salimans_ho_on_vp():
    """On a VP schedule (alpha^2 + sigma^2 = 1): x0 = alpha x - sigma v (Salimans & Ho 2022, eq. in sec. 4)."""
    a = 0.6
    s = (1 - a**2) ** 0.5
    x0, eps = torch.randn(2, 10, dtype=torch.float64)
    x = a * x0 + s * eps
    v = par.from_x0_eps(x0, eps, "v", a, s)
    assert torch.allclose(a * x - s * v, x0, rtol=1e-12)


def test_bad_kind_and_missing_derivatives():
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="src"):
        par.convert(x, "noise", "x0", x=x, alpha=1.0, sigma=1.0)
    with pytest.raises(ValueError, match="dalpha"):
        par.convert(x, "x0", "velocity", x=x, alpha=1.0, sigma=1.0)
    with pytest.raises(ValueError, match="sigma"):
        par.convert(x, "x0", "eps", x=x, alpha=1.0, sigma=0.0)


def test_velocity_needs_both_derivatives():
    """Issue 11's mutation run: a velocity conversion given only one of dalpha, dsigma must refuse, naming both."""
    x = torch.ones(3, dtype=torch.float64)
    for kw in ({"dalpha": 0.1}, {"dsigma": 0.1}, {}):
        with pytest.raises(ValueError, match="dalpha and dsigma"):
            par.to_x0_eps(x, "velocity", x, 0.8, 0.6, **kw)


def test_coefficient_rules_dtype_and_broadcasting():
    """alpha may be 0 except where a conversion divides by it (from eps or score); sigma must be > 0; float32 in,
    float32 out; a coefficient that does not broadcast against the arrays is refused by name."""
    x = torch.ones(2, 3, dtype=torch.float64)
    v = 0.5 * x
    assert torch.equal(par.from_x0_eps(v, v, "x0", 0.0, 1.0), v)  # alpha = 0: the pure-noise end
    assert torch.allclose(par.to_x0_eps(v, "x0", x, 0.0, 1.0)[1], x)  # eps = (x - 0 * x0) / 1
    assert torch.allclose(par.convert(v, "x0", "eps", x=x, alpha=0.0, sigma=1.0), x)
    for kind in ("eps", "score"):
        with pytest.raises(ValueError, match="alpha must be > 0"):
            par.to_x0_eps(v, kind, x, 0.0, 1.0)
        with pytest.raises(ValueError, match="alpha must be > 0"):
            par.convert(v, kind, "x0", x=x, alpha=0.0, sigma=1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        par.from_x0_eps(v, v, "x0", -0.1, 1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        par.to_x0_eps(v, "x0", x, -0.1, 1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        par.from_x0_eps(v, v, "v", 0.8, 0.0)
    f32 = torch.ones(2, 3, dtype=torch.float32)
    assert par.convert(f32, "eps", "x0", x=f32, alpha=0.8, sigma=0.6).dtype == torch.float32
    assert par.from_x0_eps(f32, f32, "v", 0.8, 0.6).dtype == torch.float32
    with pytest.raises(ValueError, match="alpha must broadcast"):
        par.convert(v, "eps", "x0", x=x, alpha=torch.full((3, 1), 0.8), sigma=0.6)
    per_point = torch.tensor([[0.8], [0.6]], dtype=torch.float64)  # a trailing unit axis: one level per row
    assert par.convert(v, "eps", "x0", x=x, alpha=per_point, sigma=0.6).shape == (2, 3)
