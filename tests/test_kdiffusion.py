"""diffmath.kdiffusion: k-diffusion's own samplers against diffmath's, and against diffusers.

diffmath's Euler, Heun, DPM-Solver-2 and DPM-Solver++(2M) are documented as k-diffusion's algorithms; run on the same
EDM grid from the same start on the exact model, the two implementations agree to float64 rounding (a grid moved by
one part in 1e6 is caught at that tolerance). k-diffusion's LMS and diffusers' LMSDiscreteScheduler (a port of it)
agree on diffusers' grid to diffusers' float32 arithmetic."""

import pytest
import torch

pytest.importorskip("torchsde")
kd = pytest.importorskip("diffmath.kdiffusion")
try:
    kd.sampling_module()
except ImportError as e:  # pragma: no cover - depends on the environment
    pytest.skip(f"k-diffusion is not installed: {e}", allow_module_level=True)

from diffmath import bench as B  # noqa: E402
from diffmath import samplers as S  # noqa: E402
from diffmath.toys import random_mixture  # noqa: E402

#: float64 rounding of states of size up to ~250 (sigma = 80 times a few) accumulated over at most 40 steps, in two
#: different orders of the same arithmetic
FLOAT64_TOL = 1e-11


@pytest.fixture(scope="module")
def law():
    return random_mixture(3, 2, seed=9, spread=1.0)


@pytest.mark.parametrize("mine, theirs", [("euler", "euler"), ("heun", "heun"), ("dpm_solver_2", "dpm_2"), ("dpmpp_2m", "dpmpp_2m")])
def test_diffmath_samplers_are_k_diffusions(law, mine, theirs):
    spec = S.SPECS[mine]
    ours = B.KSampler(spec.fn, evaluations=spec.evaluations)
    for budget in (5, 19, 39):
        assert B.assert_same(ours, kd.sampler(theirs), law, budget, tol=FLOAT64_TOL, points=64) <= FLOAT64_TOL
    moved = kd.sampler(theirs, grid=lambda n: B.karras_sigmas(n) * (1 + 1e-6))
    with pytest.raises(AssertionError):
        B.assert_same(ours, moved, law, 19, tol=FLOAT64_TOL, points=64)


def test_lms_in_two_libraries(law):
    pytest.importorskip("diffusers")
    from diffmath.diffusers_bench import DiffusersSampler

    ds = DiffusersSampler("lms")

    def grid(n):
        s = ds.make()
        s.set_timesteps(n)
        return torch.tensor(ds.levels(s), dtype=torch.float64)

    for steps in (8,):
        diff = B.assert_same(ds, kd.sampler("lms", grid=grid), law, steps, tol=2e-5, points=64)
        assert diff < 2e-5


def test_catalogue_and_bad_input(law):
    module = kd.sampling_module()
    assert all(callable(getattr(module, f"sample_{n}")) for n in kd.SAMPLERS)
    r = B.bench(kd.sampler("dpmpp_2m_sde"), law, [10], seeds=1, points=32)
    assert r.stochastic and r.rows[0].nfe == 10
    with pytest.raises(ValueError, match="no k-diffusion sampler"):
        kd.sampler("dpm_fast")
    with pytest.raises(ValueError, match="target_dims"):
        kd._append_dims(torch.zeros(2, 3), 1)
    assert kd._append_dims(torch.zeros(2), 3).shape == (2, 1, 1)
