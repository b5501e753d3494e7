"""diffmath.diffusers_bench: diffusers schedulers driven on the exact model.

Cross-checks from outside: where a diffusers scheduler implements the algorithm of a diffmath sampler (DDIM = Euler in
EDM coordinates, Euler, Heun, DPM-Solver++(2M)), the two agree on the exact model on the same grid from the same
start, to the float32 arithmetic diffusers uses inside; a grid off by 1e-4 is caught at that tolerance. Then: the
three prediction types give the same trajectory, every catalogued scheduler runs and counts its calls, the noise
levels are the scheduler's own, and bad input is refused."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from diffmath import bench as B  # noqa: E402
from diffmath import samplers as S  # noqa: E402
from diffmath.diffusers_bench import SCHEDULERS, DiffusersSampler, prediction  # noqa: E402
from diffmath.toys import random_mixture  # noqa: E402

#: diffusers keeps its tables in float32 and (Euler, Heun) casts the state to float32 in ``step``: one rounding of a
#: state of size up to ~50 (sigma_max = 14.6 times a few) is ~3e-6 absolute, and the flow contracts it towards the end
FLOAT32_TOL = 2e-5


@pytest.fixture(scope="module")
def law():
    return random_mixture(3, 2, seed=7, spread=1.0)


def grid_of(ds: DiffusersSampler, scale: float = 1.0):
    """The distinct noise levels one diffusers run visits (Heun's table repeats each inner level), as a diffmath grid."""
    def grid(n):
        levels = ds.levels(_set(ds, n))
        out = [levels[0]]
        for v in levels[1:]:
            if v != out[-1]:
                out.append(v)
        return torch.tensor(out, dtype=torch.float64) * scale
    return grid


def _set(ds, n):
    s = ds.make()
    s.set_timesteps(n)
    return s


@pytest.mark.parametrize("name, fn, evaluations", [
    ("ddim", S.sample_euler, 1),
    ("euler", S.sample_euler, 1),
    ("heun", S.sample_heun, 2),
    ("dpm++2m", S.sample_dpmpp_2m, 1),
])
def test_cross_check_with_diffmath(law, name, fn, evaluations):
    ds = DiffusersSampler(name)
    for steps in (6, 17):
        budget = ds.calls(steps)
        mine = B.KSampler(fn, name=f"diffmath {name}", evaluations=evaluations, grid=grid_of(ds), init="sigma" if ds.edm_state else "vp")
        assert B.assert_same(ds, mine, law, budget, tol=FLOAT32_TOL, points=128) < FLOAT32_TOL
    off = B.KSampler(fn, evaluations=evaluations, grid=grid_of(ds, 1 + 1e-4), init="sigma" if ds.edm_state else "vp")
    with pytest.raises(AssertionError):
        B.assert_same(ds, off, law, ds.calls(17), tol=FLOAT32_TOL, points=128)


def test_prediction_types_agree(law):
    """The exact model's epsilon, sample and v predictions are one prediction (Salimans & Ho's v = alpha eps - sigma_t
    x0): DDIM and DPM++(2M) give the same trajectory with each, to float32 rounding."""
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in ("ddim", "dpm++2m"):
        ends = [DiffusersSampler(name, prediction_type=p).run(law, z, 10, torch.Generator().manual_seed(0)).x_end
                for p in ("epsilon", "sample", "v_prediction")]
        assert (ends[0] - ends[1]).abs().max() < FLOAT32_TOL and (ends[0] - ends[2]).abs().max() < FLOAT32_TOL
    # the conversion itself, against x_t = alpha x0 + alpha sigma eps written out
    x0, eps, s = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64), 0.7
    a = 1 / math.sqrt(1 + s * s)
    x_t = a * x0 + a * s * eps
    assert torch.allclose(prediction("epsilon", x0, x_t, s), eps, atol=1e-14)
    assert torch.allclose(prediction("v_prediction", x0, x_t, s), a * eps - a * s * x0, atol=1e-14)
    with pytest.raises(ValueError, match="prediction_type"):
        prediction("flow", x0, x_t, s)


def test_every_catalogued_scheduler_runs(law):
    """Each entry of SCHEDULERS runs (PNDM spends n + 9 calls on n >= 4 steps, Heun 2n - 1) and calls the model once per timestep; its levels decrease; the
    VP schedulers' levels are sqrt((1 - abar)/abar) of the shared schedule at their integer timesteps."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for name in SCHEDULERS:
        ds = DiffusersSampler(name)
        steps = 5 if name.startswith("pndm") else 7
        tr = ds.run(law, z, steps, torch.Generator().manual_seed(0))
        assert tr.nfe == ds.calls(steps) <= 14, name
        assert tr.sigma_start > tr.sigma_last >= tr.sigma_end >= 0 and torch.isfinite(tr.x_end).all(), name
        # PNDM's last call is made at timestep 0, whose level is also where it ends (final alpha = alphas_cumprod[0]):
        # a step of length zero, one call spent for nothing; every other scheduler's last step has a length
        assert (tr.sigma_last == tr.sigma_end) == name.startswith("pndm"), name
        sched = _set(ds, steps)
        if not hasattr(sched, "sigmas"):
            lv = ds.levels(sched)[:-1]
            want = [math.sqrt((1 - abar[int(t)].item()) / abar[int(t)].item()) for t in sched.timesteps]
            # diffusers' float32 cumprod drifts by ~1e-5 relative over 1000 factors; the neighbouring timestep's level
            # differs by > 1e-3 relative, so an off-by-one index or a wrong formula fails
            assert max(abs(a - b) / b for a, b in zip(lv, want)) < 1e-4, name


def test_bad_input():
    with pytest.raises(ValueError, match="no scheduler"):
        DiffusersSampler("NoSuchScheduler")
    with pytest.raises(ValueError, match="no configuration"):
        DiffusersSampler("ddim", solver_order=3)
    with pytest.raises(ValueError, match="expected"):
        DiffusersSampler(3.0)


def test_start_conventions_and_end_levels(law):
    """Where the schedulers start and stop, as the chapter reports: the Euler family from z * sigma_0, the VP
    schedulers from z * sqrt(1 + sigma_0^2) (unit variance in VP coordinates); DDIM's `leading` spacing starts at
    timestep 800 for 5 steps; PNDM ends at timestep 0's level sqrt(beta_0 / (1 - beta_0)), not at 0."""
    z = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    eu = DiffusersSampler("euler").run(law, z, 5, g)
    assert torch.allclose(eu.x_start, z * eu.sigma_start, rtol=1e-6)
    dd = DiffusersSampler("ddim").run(law, z, 5, g)
    assert torch.allclose(dd.x_start, z * math.sqrt(1 + dd.sigma_start**2), rtol=1e-6)
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    abar800 = torch.cumprod(1 - betas, 0)[800].item()
    assert dd.sigma_start == pytest.approx(math.sqrt((1 - abar800) / abar800), rel=1e-4) and dd.sigma_end == 0
    pn = DiffusersSampler("pndm").run(law, z, 5, g)
    b0 = betas[0].item()
    assert pn.sigma_end == pytest.approx(math.sqrt(b0 / (1 - b0)), rel=1e-4) and pn.nfe == 5 + 9
