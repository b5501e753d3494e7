"""diffmath.bench: the reference flow against the Gaussian closed form, the error measure against a hand-written Euler
on a Gaussian (linear maps, no solver), measured orders of the library's samplers, the assertions failing when they
should, NFE accounting, the Fréchet columns, and bad input."""

import math

import pytest
import torch

from diffmath import bench as B
from diffmath import samplers as S
from diffmath.empirical import EmpiricalLaw
from diffmath.flows import gaussian_flow
from diffmath.images import GaussianImage
from diffmath.mixture import GaussianMixture
from diffmath.toys import random_mixture


def gen(seed):
    return torch.Generator().manual_seed(seed)


def one_gaussian(d=3, seed=0):
    g = gen(seed)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    C = A @ A.T / d + 0.3 * torch.eye(d, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    return GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], C[None]), mu, C


def test_exact_flow_is_the_gaussian_closed_form():
    """For one Gaussian the PF-ODE map is linear and known (flows.gaussian_flow, claim C0.7); the bench's reference,
    solved numerically (and finished by the denoiser below 1e-6 when it runs to 0), matches it."""
    gm, mu, C = one_gaussian()
    x = 20 * torch.randn(50, 3, generator=gen(1), dtype=torch.float64)
    for s1 in (0.5, 0.0):
        want = gaussian_flow(mu, C, x, 1.0, 20.0, 1.0, s1)
        got = B.exact_flow(gm, x, 20.0, s1)
        assert (got - want).abs().max().item() < 1e-8


def test_error_is_the_rms_distance_to_the_exact_flow():
    """Euler on one Gaussian, written out with matrices (D(x, s) = mu + C (C + s^2 I)^-1 (x - mu)), ends at a point whose
    distance to the closed-form flow is the bench's error for sample_euler, seed by seed."""
    gm, mu, C = one_gaussian(seed=3)
    budget, points = 6, 40
    sig = B.karras_sigmas(budget).tolist()
    res = B.bench(B.KSampler(S.sample_euler), gm, [budget], seeds=2, points=points)
    I = torch.eye(3, dtype=torch.float64)
    for k in range(2):
        z = torch.randn(points, 3, generator=gen(k), dtype=torch.float64)
        x = z * sig[0]
        for a, b in zip(sig, sig[1:]):
            D = mu + (x - mu) @ torch.linalg.solve(C + a * a * I, C)  # C symmetric: ((C + a^2 I)^-1 C)^T = C (C + a^2 I)^-1
            x = x + (b - a) * (x - D) / a
        ref = gaussian_flow(mu, C, z * sig[0], 1.0, sig[0], 1.0, 0.0)
        want = (x - ref).pow(2).mean().sqrt().item()
        assert res.rows[0].errors[k] == pytest.approx(want, rel=1e-7)
    assert res.rows[0].nfe == budget and res.rows[0].flips is not None


@pytest.fixture(scope="module")
def mixture():
    return random_mixture(3, 2, seed=4, spread=1.0)


def test_measured_orders_of_euler_and_heun(mixture):
    """On EDM's grid Euler is first order and Heun second (Karras et al. 2022); the fitted slopes say so, and claiming
    the wrong order fails."""
    euler = B.bench(B.KSampler(S.sample_euler), mixture, [16, 32, 64], seeds=2, points=24)
    heun = B.bench(B.KSampler(S.sample_heun, evaluations=2), mixture, [15, 31, 63], seeds=2, points=24)
    assert 0.8 < euler.order < 1.3, euler.table()
    assert 1.7 < heun.order < 2.6, heun.table()
    euler.assert_order(1.0)
    heun.assert_order(2.0, last=2)
    with pytest.raises(AssertionError, match="measured order"):
        euler.assert_order(2.0)
    assert [r.nfe for r in heun.rows] == [15, 31, 63] and [r.steps for r in heun.rows] == [8, 16, 32]
    heun.assert_error_below(10 * heun.rows[-1].error)
    with pytest.raises(AssertionError, match="not below"):
        heun.assert_error_below(heun.rows[-1].error / 2)


def test_shared_noise_and_the_frechet_columns(mixture):
    """Two samplers benched with one seed start from the same noise (the exact-flow column is identical); the exact
    samples' Fréchet distance is the statistic's noise floor, which a good sampler's output approaches."""
    a = B.bench(B.KSampler(S.sample_euler), mixture, [40], seeds=2, points=200)
    b = B.bench(B.KSampler(S.sample_heun, evaluations=2), mixture, [39], seeds=2, points=200)
    assert a.rows[0].frechet_flow == b.rows[0].frechet_flow
    assert a.rows[0].frechet_exact == b.rows[0].frechet_exact
    floor = a.rows[0].frechet_exact
    assert 0 < floor < 0.5 and b.rows[0].frechet < 3 * floor + 0.1


def test_a_stochastic_sampler_has_no_order_but_a_distance(mixture):
    """An ancestral Euler step (Song et al. 2021's reverse SDE discretised; written here from the formula), seeded by
    the bench: no order is fitted, the error against the ODE is large, the Fréchet distance is small, and two runs
    with one seed agree."""
    def ancestral(model, x, s, s_next):
        d = (x - model(x, torch.full((x.shape[0],), s, dtype=x.dtype))) / s
        up = min(s_next, math.sqrt(s_next**2 * (s**2 - s_next**2) / s**2))
        down = math.sqrt(s_next**2 - up**2)
        return x + (down - s) * d + up * torch.randn_like(x)

    samp = B.step_sampler(ancestral, name="euler-ancestral", stochastic=True)
    r1 = B.bench(samp, mixture, [30], seeds=2, points=200)
    r2 = B.bench(samp, mixture, [30], seeds=2, points=200)
    assert r1.order is None and r1.rows[0].errors == r2.rows[0].errors
    assert r1.rows[0].error > 0.05 and r1.rows[0].frechet < 3 * r1.rows[0].frechet_exact + 0.1
    with pytest.raises(AssertionError, match="no order"):
        r1.assert_order(1.0)


def test_assert_same_and_budgets(mixture):
    """A sampler agrees with itself written as a step function; a grid off by 1e-3 is caught; a budget no number of
    steps fits is skipped; NFE over budget is an error."""
    def euler_step(model, x, s, s_next):
        return x + (s_next - s) * (x - model(x, torch.full((x.shape[0],), s, dtype=x.dtype))) / s

    step = B.step_sampler(euler_step, name="euler-step")
    assert B.assert_same(B.KSampler(S.sample_euler), step, mixture, 10, tol=1e-12) <= 1e-12
    off = B.KSampler(S.sample_euler, grid=lambda n: B.karras_sigmas(n) * (1 + 1e-3))
    with pytest.raises(AssertionError):
        B.assert_same(B.KSampler(S.sample_euler), off, mixture, 10, tol=1e-6)
    # told its last step costs two calls, the budget of 4 buys 2 steps; the bench counts the 3 calls Heun makes
    res = B.bench(B.KSampler(S.sample_heun, evaluations=2, last_step_euler=False), mixture, [1, 4], seeds=1, points=8)
    assert res.skipped == [1] and (res.rows[0].steps, res.rows[0].nfe) == (2, 3)

    class Greedy(B.KSampler):
        def steps_for(self, budget):
            return budget + 1

    with pytest.raises(RuntimeError, match="spent"):
        B.bench(Greedy(S.sample_euler), mixture, [5], seeds=1, points=4)


def test_other_laws():
    """Images (flattened for the solver) and the empirical law (memorisation: the flow's end is a training point)."""
    img = GaussianImage.power_law(4, 4, 2.0)
    r = B.bench(B.KSampler(S.sample_heun, evaluations=2), img, [9, 19], seeds=2, points=16)
    assert r.rows[-1].error < r.rows[0].error and r.rows[0].flips is None and r.rows[0].frechet is not None
    emp = EmpiricalLaw(torch.randn(6, 2, generator=gen(5), dtype=torch.float64))
    z = torch.randn(30, 2, generator=gen(6), dtype=torch.float64)
    end = B.exact_flow(emp, 80 * z, 80.0, 0.0)
    assert (end[:, None, :] - emp.points).norm(dim=-1).min(-1).values.max().item() < 1e-6
    res = B.bench(B.KSampler(S.sample_dpmpp_2m), emp, [20], seeds=2, points=30)
    assert res.rows[0].flips is not None and res.rows[0].frechet is not None


def test_fit_order_and_interval():
    """fit_order recovers a planted power law exactly; interval is the Student-t half-width computed by hand."""
    n = [4, 8, 16, 32]
    assert B.fit_order(n, [3.0 * m**-2.5 for m in n]) == pytest.approx(2.5, rel=1e-12)
    iv = B.interval([1.0, 2.0, 4.0])
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert iv["mean"] == pytest.approx(7 / 3) and iv["half"] == pytest.approx(4.302652729749464 * sd / math.sqrt(3), rel=1e-9)
    one = B.interval([2.5])
    assert one["mean"] == 2.5 and math.isnan(one["half"])
    with pytest.raises(ValueError):
        B.fit_order([4, 4], [1.0, 2.0])


def test_bad_input(mixture):
    with pytest.raises(ValueError, match="law must be"):
        B.bench(B.KSampler(S.sample_euler), object(), [4])
    with pytest.raises(ValueError, match="increasing"):
        B.bench(B.KSampler(S.sample_euler), mixture, [8, 4])
    with pytest.raises(ValueError, match="callable"):
        B.KSampler(3)
    with pytest.raises(ValueError, match="init"):
        B.KSampler(S.sample_euler, init="data")
    with pytest.raises(ValueError, match="sigma_from"):
        B.exact_flow(mixture, torch.zeros(2, 2, dtype=torch.float64), 1.0, 2.0)
