"""Schedules: formulas against independent computations (autograd, numpy recurrences, limits)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import schedules as sch
from diffmath import strategies as dst

CONTINUOUS = [sch.VPLinear(), sch.VPCosine(), sch.EDM(), sch.RectifiedFlow()]


@pytest.mark.parametrize("schedule", CONTINUOUS, ids=repr)
def test_derivatives_match_autograd(schedule):
    hi = min(schedule.t_max, 50.0)
    t = torch.linspace(0.02, hi - 0.02, 57, dtype=torch.float64, requires_grad=True)
    for value, deriv in ((schedule.alpha, schedule.dalpha), (schedule.sigma, schedule.dsigma)):
        out = value(t)
        auto = torch.autograd.grad(out.sum(), t)[0] if out.requires_grad else torch.zeros_like(t)
        exact = deriv(t.detach())
        assert torch.allclose(exact, auto, rtol=1e-12, atol=1e-14)


@given(dst.continuous_schedules().flatmap(lambda s: st.tuples(st.just(s), dst.times(s))))
def test_edm_sigma_inverse_property(pair):
    schedule, t = pair
    s = schedule.edm_sigma(t)
    back = schedule.t_of_edm_sigma(s)
    assert abs(back.item() - t) <= 1e-9 * max(1.0, abs(t))


@pytest.mark.parametrize("schedule", [sch.VPLinear(), sch.VPCosine()], ids=repr)
def test_variance_preserving(schedule):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a, s = schedule.alpha(t), schedule.sigma(t)
    assert torch.allclose(a**2 + s**2, torch.ones_like(t), rtol=0, atol=1e-14)
    assert a[0].item() == pytest.approx(1.0, abs=1e-15) and s[0].item() == pytest.approx(0.0, abs=1e-7)


def test_log_snr_is_log_of_snr():
    schedule = sch.VPCosine()
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    assert torch.allclose(schedule.log_snr(t), torch.log(schedule.snr(t)), rtol=1e-13)
    # monotone decreasing: more noise later
    assert (schedule.log_snr(t).diff() < 0).all()


def test_ddpm_alphas_cumprod_matches_numpy_recurrence():
    schedule = sch.DDPMDiscrete()
    betas = np.linspace(1e-4, 0.02, 1000)
    ac = np.cumprod(1.0 - betas)  # DDPM's alphas_cumprod, computed independently
    assert np.allclose(schedule.alphas_cumprod.numpy(), ac, rtol=1e-12)
    n = torch.tensor([0.0, 10.0, 500.0, 999.0], dtype=torch.float64)
    assert np.allclose(schedule.alpha(n).numpy() ** 2, ac[[0, 10, 500, 999]], rtol=1e-12)
    assert np.allclose(schedule.sigma(n).numpy() ** 2, 1 - ac[[0, 10, 500, 999]], rtol=1e-12)


def test_ddpm_rejects_fractional_steps_and_has_no_derivative():
    schedule = sch.DDPMDiscrete()
    with pytest.raises(ValueError, match="integer"):
        schedule.alpha(0.5)
    with pytest.raises(NotImplementedError):
        schedule.dalpha(3)


def test_ddpm_continuous_limit_is_close():
    """as_continuous() is the VP SDE with beta(t) = N beta_start + t N (beta_end - beta_start).

    log alpha_n^2 = sum_{i<=n} log(1 - beta_i) and log alpha(t)^2 = -int_0^t beta differ by the
    per-step terms -log(1-beta_i) - beta_i and by sum beta_i - int beta (the triangle inequality
    bounds the gap by both). The integral is written here from DDPM's own numbers, not from the
    schedule under test (from which the bound would hold for any beta): a wrongly scaled
    as_continuous() breaks it by orders of magnitude.
    """
    schedule = sch.DDPMDiscrete()
    cont = schedule.as_continuous()
    N, start, end = 1000, 1e-4, 0.02
    betas = torch.linspace(start, end, N, dtype=torch.float64)
    n = torch.arange(0, 1000, 37)
    t = (n + 1).double() / 1000
    gap = (2 * torch.log(schedule.alpha(n.double())) - 2 * torch.log(cont.alpha(t))).abs()
    second_order = torch.cumsum(-torch.log1p(-betas) - betas, 0)[n]
    integral = N * (start * t + 0.5 * (end - start) * t**2)  # int_0^t N(start + s(end - start)) ds
    quadrature = (torch.cumsum(betas, 0)[n] - integral).abs()
    assert (gap <= second_order + quadrature + 1e-12).all()
    assert gap.max() < 0.1


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan")])
def test_times_out_of_range_rejected(bad):
    with pytest.raises(ValueError, match="t"):
        sch.VPCosine().alpha(bad)


def test_rectified_flow_line():
    rf = sch.RectifiedFlow()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(rf.alpha(t), 1 - t) and torch.equal(rf.sigma(t), t)
    assert torch.allclose(rf.edm_sigma(t[:-1]), t[:-1] / (1 - t[:-1]))


@given(
    n=st.integers(2, 100),
    rho=st.floats(0.1, 20),
    lo=st.floats(1e-3, 1.0),
    ratio=st.floats(1.5, 1e4),
)
def test_edm_rho_grid_property(n, rho, lo, ratio):
    """Article 21, eq. 2 (C21.2 in the catalogue): endpoints exact, strictly decreasing."""
    hi = lo * ratio
    grid = sch.edm_rho_grid(n, lo, hi, rho)
    assert grid[0].item() == hi and grid[-1].item() == lo
    assert (grid.diff() < 0).all()


def test_edm_rho_grid_uniform_at_rho_one_and_geometric_limit():
    assert torch.allclose(sch.edm_rho_grid(5, 1.0, 5.0, 1.0), torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64))
    geo = torch.logspace(math.log10(80), math.log10(0.002), 9, dtype=torch.float64)
    assert torch.allclose(sch.edm_rho_grid(9, 0.002, 80.0, 1e6), geo, rtol=1e-4)


def test_edm_sampling_sigmas_append_zero():
    s = sch.EDM().sampling_sigmas(18)
    assert s.shape == (19,) and s[-1].item() == 0.0 and s[0].item() == 80.0


# --- resolution shifts (articles 22 and 23) -----------------------------------------------------------
SHIFT_BASES = [sch.VPCosine(s=0.0), sch.VPLinear(), sch.LogSNRCosine(), sch.RectifiedFlow(), sch.EDM()]


@given(base=st.sampled_from(SHIFT_BASES), shift=st.floats(0.3, 8.0), u=st.floats(0.05, 0.95))
def test_shifted_schedule_derivatives_property(base, shift, u):
    """dalpha/dt and dsigma/dt of the shifted schedule equal autograd of its alpha and sigma (constant and
    interpolated shifts), and the family constraint holds."""
    t0 = base.t_min + u * (min(base.t_max, 50.0) - base.t_min)
    for sc in (sch.ShiftedSchedule(base, shift),) + ((sch.ShiftedSchedule(base, (shift, 1 / shift)),) if math.isfinite(base.t_max) else ()):
        t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)
        for value, deriv in ((sc._alpha, sc.dalpha), (sc._sigma, sc.dsigma)):
            out = value(t)
            auto = torch.autograd.grad(out, t)[0] if out.requires_grad else torch.zeros(())
            assert abs(auto.item() - deriv(t0).item()) <= 1e-9 * (1 + abs(auto.item()))
        a, s = sc.alpha(t0).item(), sc.sigma(t0).item()
        norm = {"vp": math.hypot(a, s), "rf": a + s, "ve": a}[sc.family]
        assert abs(norm - 1) < 1e-12


@given(base=st.sampled_from(SHIFT_BASES), shift=st.floats(0.3, 8.0), u=st.floats(0.05, 0.95))
def test_shifted_schedule_roundtrip_property(base, shift, u):
    """The shift multiplies the EDM noise level by s and the SNR by 1/s^2; t_of_edm_sigma inverts it."""
    t = base.t_min + u * (min(base.t_max, 50.0) - base.t_min)
    sc = sch.ShiftedSchedule(base, shift)
    assert abs(sc.edm_sigma(t).item() - shift * base.edm_sigma(t).item()) <= 1e-11 * (1 + sc.edm_sigma(t).item())
    assert abs(sc.t_of_edm_sigma(sc.edm_sigma(t)).item() - t) <= 1e-9 * max(1.0, t)
    if math.isfinite(base.t_max):
        inter = sch.ShiftedSchedule(base, (shift, 2 * shift))
        assert abs(inter.t_of_edm_sigma(inter.edm_sigma(t)).item() - t) <= 1e-8 * max(1.0, t)


@given(shift=st.floats(1.1, 6.0), t=st.floats(0.01, 0.99))
def test_sd3_shift_twice_is_detectably_different_property(shift, t):
    """C22.7: SD3's shift is ShiftedSchedule on the rectified-flow line; twice is the shift by s^2."""
    once = sch.sd3_time_shift(t, shift)
    assert abs(once.item() - sch.ShiftedSchedule(sch.RectifiedFlow(), shift).sigma(t).item()) < 1e-14
    twice = sch.sd3_time_shift(once, shift)
    assert abs(twice.item() - sch.sd3_time_shift(t, shift * shift).item()) < 1e-13
    # shift_s(u) - u = u(1-u)(s-1)/(1+(s-1)u) >= u(1-u)(s-1)/s: a second application always moves t again
    u = once.item()
    assert twice.item() - u >= (1 - 1e-12) * u * (1 - u) * (shift - 1) / shift


def test_logsnr_cosine_matches_its_definition():
    """simple diffusion's clipped cosine: lambda = -2 log tan(theta), endpoints +-15, VP."""
    s = sch.LogSNRCosine()
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    th0, th1 = math.atan(math.exp(-7.5)), math.atan(math.exp(7.5))
    assert torch.allclose(s.log_snr(t), -2 * torch.log(torch.tan(th0 + t * (th1 - th0))), rtol=0, atol=1e-12)
    assert abs(s.log_snr(0.0).item() - 15) < 1e-12 and abs(s.log_snr(1.0).item() + 15) < 1e-12
    assert torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t), atol=1e-15)
    with pytest.raises(ValueError):
        sch.LogSNRCosine(5.0, -5.0)


def test_shifted_schedule_bad_input():
    with pytest.raises(ValueError, match="shift"):
        sch.ShiftedSchedule(sch.VPCosine(), 0.0)
    with pytest.raises(ValueError, match="finite time range"):
        sch.ShiftedSchedule(sch.EDM(), (1.0, 2.0))
    with pytest.raises(ValueError, match="Schedule"):
        sch.ShiftedSchedule("vp", 2.0)
    with pytest.raises(ValueError, match="t must"):
        sch.sd3_time_shift(1.5, 2.0)


# --- what the mutation run of issue 11 found untested ------------------------------------------------------------

ACCEPTED = [
    lambda: sch.VPLinear(0.0, 1.0), lambda: sch.VPLinear(1.0, 1.0), lambda: sch.VPCosine(0.0),
    lambda: sch.DDPMDiscrete(1e-4, 1e-4, 2), lambda: sch.EDM(rho=0.5), lambda: sch.EDM(rho=1.0),
    lambda: sch.edm_rho_grid(2, 0.1, 1.0, 0.5), lambda: sch.sd3_time_shift(0.3, 1.0), lambda: sch.sd3_time_shift(0.3, 0.5),
]
REFUSED = [
    ("beta", lambda: sch.VPLinear(2.0, 1.0)), ("beta", lambda: sch.VPLinear(-0.1, 1.0)),
    ("beta", lambda: sch.VPLinear(0.0, math.inf)), ("beta", lambda: sch.VPLinear(0.0, 0.0)),
    ("s", lambda: sch.VPCosine(1.0)), ("s", lambda: sch.VPCosine(1.5)), ("s", lambda: sch.VPCosine(-0.1)),
    ("beta", lambda: sch.DDPMDiscrete(0.0, 0.02)), ("beta", lambda: sch.DDPMDiscrete(0.02, 0.01)),
    ("beta", lambda: sch.DDPMDiscrete(1e-4, 1.0)), ("beta", lambda: sch.DDPMDiscrete(1e-4, 1.5)),
    ("num_steps", lambda: sch.DDPMDiscrete(num_steps=1)), ("num_steps", lambda: sch.DDPMDiscrete(num_steps=2.5)),
    ("sigma", lambda: sch.EDM(sigma_min=1.0, sigma_max=1.0)), ("sigma", lambda: sch.EDM(sigma_min=0.0)),
    ("sigma", lambda: sch.EDM(sigma_max=math.inf)), ("rho", lambda: sch.EDM(rho=0.0)),
    ("n", lambda: sch.edm_rho_grid(1, 0.1, 1.0, 7.0)), ("n", lambda: sch.edm_rho_grid(2.5, 0.1, 1.0, 7.0)),
    ("sigma", lambda: sch.edm_rho_grid(3, 1.0, 1.0, 7.0)), ("sigma", lambda: sch.edm_rho_grid(3, 0.0, 1.0, 7.0)),
    ("sigma", lambda: sch.edm_rho_grid(3, 0.1, math.inf, 7.0)), ("rho", lambda: sch.edm_rho_grid(3, 0.1, 1.0, 0.0)),
    ("rho", lambda: sch.edm_rho_grid(3, 0.1, 1.0, math.inf)), ("logsnr", lambda: sch.LogSNRCosine(3.0, 3.0)),
    ("shift", lambda: sch.sd3_time_shift(0.3, 0.0)), ("shift", lambda: sch.sd3_time_shift(0.3, math.inf)),
]


@pytest.mark.parametrize("make", ACCEPTED)
def test_edge_parameters_are_accepted(make):
    make()


@pytest.mark.parametrize("word,make", REFUSED, ids=[f"{w}-{i}" for i, (w, _) in enumerate(REFUSED)])
def test_bad_parameters_are_refused_by_name(word, make):
    with pytest.raises(ValueError, match=word):
        make()


def test_discrete_time_range_repr_and_the_constant_beta_inverse():
    assert sch.DDPMDiscrete(num_steps=10).t_max == 9.0
    assert repr(sch.VPLinear(0.5, 4.0)) == "VPLinear(beta_min=0.5, beta_max=4.0)"
    flat = sch.VPLinear(3.0, 3.0)  # constant beta: the inverse is a division, not the quadratic formula
    t = torch.tensor([0.0, 0.2, 0.7, 1.0], dtype=torch.float64)
    assert torch.allclose(flat.t_of_edm_sigma(flat.edm_sigma(t)), t, rtol=0, atol=1e-12)
    assert flat.t_of_edm_sigma(0.0).item() == 0.0  # sigma = 0 is allowed: the data end


class _Stretched(sch.Schedule):
    """VPLinear on [1, 3] instead of [0, 1]: a base whose time range is neither 0-based nor of length 1."""

    t_min, t_max = 1.0, 3.0

    def __init__(self):
        self.vp = sch.VPLinear()

    def _u(self, t):
        return (t - 1.0) / 2.0

    def _alpha(self, t):
        return self.vp._alpha(self._u(t))

    def _sigma(self, t):
        return self.vp._sigma(self._u(t))

    def _dalpha(self, t):
        return self.vp._dalpha(self._u(t)) / 2.0

    def _dsigma(self, t):
        return self.vp._dsigma(self._u(t)) / 2.0

    def _t_of_edm_sigma(self, s):
        return 1.0 + 2.0 * self.vp._t_of_edm_sigma(s)


def test_interpolated_shift_on_a_general_time_range():
    """The log-linear shift runs from s0 at t_min to s1 at t_max of the base (u = (t - t_min)/(t_max - t_min)), and
    its time derivatives agree with central differences."""
    shifted = sch.ShiftedSchedule(_Stretched(), (2.0, 8.0))
    t = torch.tensor([1.0, 2.0, 2.5, 3.0], dtype=torch.float64)
    assert torch.allclose(shifted.factor(t), torch.tensor([2.0, 4.0, 2.0 * 4.0**0.75, 8.0], dtype=torch.float64), rtol=1e-14)
    tt = torch.tensor([1.3, 2.0, 2.6], dtype=torch.float64)
    h = 1e-6
    for f, df in ((shifted.alpha, shifted.dalpha), (shifted.sigma, shifted.dsigma)):
        fd = (f(tt + h) - f(tt - h)) / (2 * h)
        assert torch.allclose(df(tt), fd, rtol=1e-7, atol=1e-9)
