"""AMED (diffmath.amed) and the sampler table (diffmath.sampler_table): exact reductions, exactness at
the mean-value time, NFE accounting, distillation, bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import amed
from diffmath import mean_value as mv
from diffmath import sampler_table
from diffmath import samplers as S
from diffmath.claims.part21_amed import ALL, _run
from diffmath.denoisers import CountingDenoiser, edm_denoiser
from diffmath.flows import gaussian_flow
from diffmath.mixture import GaussianMixture
from diffmath.schedules import edm_rho_grid
from diffmath.toys import random_mixture

EXACT = 1e-12


def grid_to_zero(n_levels, sigma_max=80.0):
    levels = edm_rho_grid(n_levels, 0.002, sigma_max, 7.0) if n_levels > 1 else torch.tensor([sigma_max], dtype=torch.float64)
    return torch.cat([levels, levels.new_zeros(1)])


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@settings(max_examples=20)
@given(name=st.sampled_from(ALL), n=st.integers(1, 8), afs=st.booleans(), to_zero=st.booleans())
def test_nfe_counts_property(name, n, afs, to_zero):
    """C21.11: the counted evaluations equal samplers.nfe for every sampler, grid end and afs."""
    D = edm_denoiser(random_mixture(2, 3, seed=n))
    levels = edm_rho_grid(n + 1, 0.002, 80.0, 7.0)
    sig = torch.cat([levels[:-1], levels.new_zeros(1)]) if to_zero else levels
    _run(name, D, 80 * torch.randn(3, 3, dtype=torch.float64), sig, afs=afs, require_zero=to_zero)
    assert D.nfe == S.nfe(name, n, afs=afs, to_zero=to_zero)
    if name.startswith("amed") and not to_zero:  # the AMED README: N timestamps -> 2(N - 1) - [afs]
        assert D.nfe == 2 * (len(sig) - 1) - afs


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), n_levels=st.integers(2, 9), afs=st.booleans(), d=st.integers(1, 5))
def test_constant_amed_is_dpm_solver_2_property(seed, n_levels, afs, d):
    """C21.14: AMED-Solver with r = 1/2 and scale factors 1 is DPM-Solver-2 (r = 1/2), step for step."""
    gm = random_mixture(3, d, seed=seed)
    x = 80 * torch.randn(6, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sig = grid_to_zero(n_levels)
    a = amed.sample_amed(edm_denoiser(gm), x, sig, predictor=amed.ConstantPredictor(), afs=afs)
    b = S.sample_dpm_solver_2(edm_denoiser(gm), x, sig, afs=afs)
    assert rel(a, b) <= EXACT


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), n_levels=st.integers(2, 7), r=st.floats(0.05, 0.95), afs=st.booleans(), order=st.integers(1, 4))
def test_constant_plugin_is_ipndm_on_refined_grid_property(seed, n_levels, r, afs, order):
    """C21.14: AMED-Plugin with a fixed r and scale factors 1 is iPNDM on the refined grid."""
    gm = random_mixture(3, 2, seed=seed)
    x = 80 * torch.randn(6, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sig = grid_to_zero(n_levels)
    a = amed.sample_amed_plugin(edm_denoiser(gm), x, sig, predictor=amed.ConstantPredictor(r=r), afs=afs, max_order=order)
    b = S.sample_ipndm(edm_denoiser(gm), x, amed.refined_grid(sig, r), afs=afs, max_order=order)
    assert rel(a, b) <= EXACT


def test_amed_is_not_dpm_solver_2_at_other_r():
    """C21.14's other half: at r != 1/2 the two methods differ (by h (1 - 1/(2r)) (d - d_m))."""
    gm = random_mixture(3, 2, seed=4)
    x = 80 * torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sig = grid_to_zero(4)
    a = amed.sample_amed(edm_denoiser(gm), x, sig, predictor=amed.ConstantPredictor(r=0.3))
    b = S.sample_dpm_solver_2(edm_denoiser(gm), x, sig, r=0.3)
    assert rel(a, b) > 1e-3


class _MeanValueTime:
    """The exact per-step r* of C21.8 for N(mu, sd^2 I), as a predictor."""

    def __init__(self, sd):
        self.sd = sd

    def __call__(self, features, s, s_next):
        s_star = mv.mean_value_time(s_next, s, self.sd)
        r = math.log(s_star / s) / math.log(s_next / s)
        return features.new_full((features.shape[0],), r), features.new_ones(features.shape[0]), features.new_ones(features.shape[0])


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), sd=st.floats(0.05, 5.0), n_levels=st.integers(2, 8), d=st.integers(1, 6))
def test_amed_exact_at_the_mean_value_time_property(seed, sd, n_levels, d):
    """C21.8 through the sampler: AMED-Solver with the exact r* per step reproduces the exact Gaussian
    flow (to 1e-12 of the starting distance from the mean), for any starting point."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    gm = GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], torch.full((1,), sd**2, dtype=torch.float64))
    x = mu + 80 * torch.randn(5, d, generator=g, dtype=torch.float64)
    sig = edm_rho_grid(n_levels, 0.002, 80.0, 7.0)
    out = amed.sample_amed(edm_denoiser(gm), x, sig, predictor=_MeanValueTime(sd), require_zero=False)
    exact = gaussian_flow(mu, sd**2 * torch.eye(d, dtype=torch.float64), x, 1.0, 80.0, 1.0, 0.002)
    # float64 floor: each step adds terms of the size of its input |x - mu| to land at a point up to
    # 80/sd times closer to mu, so the rounding is relative to the starting distance
    assert ((out - exact).norm(dim=-1) / (x - mu).norm(dim=-1)).max().item() <= EXACT


def test_untrained_predictor_is_the_geometric_midpoint():
    p = amed.AMEDPredictor(seed=3)
    r, c, a = p(torch.rand(7, amed.N_FEATURES, dtype=torch.float64), 10.0, 3.0)
    assert torch.equal(r, torch.full((7,), 0.5, dtype=torch.float64))
    assert torch.equal(c, torch.ones(7, dtype=torch.float64)) and torch.equal(a, torch.ones(7, dtype=torch.float64))
    assert amed.parameter_count(p) == 259


def test_predictor_ranges():
    """Whatever the parameters, r in [0, 1] (the sigmoid saturates to 0 or 1 in float64) and the scales stay
    in their ranges (the official code's)."""
    p = amed.AMEDPredictor(scale_dir_range=0.01, scale_time_range=0.2, seed=1)
    with torch.no_grad():
        for q in p.parameters():
            q.normal_(0, 30.0, generator=torch.Generator().manual_seed(5))
    r, c, a = p(torch.randn(50, amed.N_FEATURES, dtype=torch.float64), 80.0, 0.002)
    assert bool(((r >= 0) & (r <= 1)).all())
    ulp = 1e-15  # 1 + 0.01 tanh(z) - 1 carries the rounding of the sum
    assert bool(((c - 1).abs() <= 0.01 + ulp).all()) and bool(((a - 1).abs() <= 0.2 + ulp).all())


@pytest.mark.parametrize("solver", ("amed", "plugin"))
def test_distillation_reduces_the_loss(solver):
    """distill: the kept iterate has a smaller loss than the untrained predictor, and it is deterministic."""
    gm = random_mixture(4, 2, seed=7)
    D = edm_denoiser(gm)
    sig = edm_rho_grid(4, 0.002, 80.0, 7.0)
    x = 80 * torch.randn(32, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    teacher = amed.teacher_trajectory(D, x, sig)
    assert teacher.shape == (4, 32, 2)
    runs = []
    for _ in range(2):
        p = amed.AMEDPredictor(seed=0, scale_time_range=0.2 if solver == "plugin" else 0.0)
        losses = amed.distill(p, D, sig, teacher, solver=solver, iterations=30)
        runs.append((losses, [q.detach().clone() for q in p.parameters()]))
    losses = runs[0][0]
    assert min(losses) < 0.9 * losses[0]
    assert runs[0][0] == runs[1][0] and all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_teacher_trajectory_is_the_exact_flow():
    """For a Gaussian the teacher equals the closed-form flow at every level (solver tolerance 1e-10)."""
    g = torch.Generator().manual_seed(11)
    mu = torch.randn(3, generator=g, dtype=torch.float64)
    C = torch.diag(torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64))
    gm = GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], C[None])
    x = 80 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    sig = edm_rho_grid(5, 0.002, 80.0, 7.0)
    teacher = amed.teacher_trajectory(edm_denoiser(gm), x, sig, rtol=1e-11, atol=1e-11)
    for i, s in enumerate(sig.tolist()):
        exact = gaussian_flow(mu, C, x, 1.0, 80.0, 1.0, s)
        assert rel(teacher[i], exact) <= 1e-9


def test_samplers_run_on_every_device(device):
    gm = random_mixture(3, 4, seed=2, device=device)
    x = 80 * torch.randn(5, 4, dtype=torch.float64, device=device)
    sig = grid_to_zero(4).to(device)
    p = amed.AMEDPredictor(device=device)
    for fn in (amed.sample_amed, amed.sample_amed_plugin):
        out = fn(edm_denoiser(gm), x, sig, predictor=p)
        assert out.device.type == device.type and torch.isfinite(out).all()


def test_bad_input():
    gm = random_mixture(2, 2, seed=0)
    D = edm_denoiser(gm)
    x = torch.randn(3, 2, dtype=torch.float64)
    sig = grid_to_zero(3)
    for fn in (amed.sample_amed, amed.sample_amed_plugin):
        with pytest.raises(ValueError, match="predictor"):
            fn(D, x, sig, predictor=None)
        with pytest.raises(ValueError, match=r"r must lie in \[0, 1\]"):
            fn(D, x, sig, predictor=lambda f, s, sn: (f.new_full((3,), 1.5), f.new_ones(3), f.new_ones(3)))
        with pytest.raises(ValueError, match="decreasing"):
            fn(D, x, sig.flip(0), predictor=amed.ConstantPredictor())
        with pytest.raises(ValueError, match="shape"):
            fn(lambda xx, s: xx[:, :1], x, sig, predictor=amed.ConstantPredictor())
    with pytest.raises(ValueError, match="max_order"):
        amed.sample_amed_plugin(D, x, sig, predictor=amed.ConstantPredictor(), max_order=5)
    for kwargs in ({"r": -0.1}, {"r": 1.1}, {"scale_dir": 0.0}, {"scale_time": float("nan")}):
        with pytest.raises(ValueError):
            amed.ConstantPredictor(**kwargs)
    with pytest.raises(ValueError):
        amed.AMEDPredictor(hidden=0)
    with pytest.raises(ValueError):
        amed.AMEDPredictor(scale_dir_range=1.5)
    with pytest.raises(ValueError, match="features"):
        amed.AMEDPredictor()(torch.zeros(3, 5, dtype=torch.float64), 2.0, 1.0)
    levels = sig[:-1]
    teacher = amed.teacher_trajectory(D, x, levels)
    with pytest.raises(ValueError, match="solver"):
        amed.distill(amed.AMEDPredictor(), D, levels, teacher, solver="heun")
    with pytest.raises(ValueError, match="one state per positive level"):
        amed.distill(amed.AMEDPredictor(), D, levels, teacher[:-1])
    with pytest.raises(ValueError, match="rollout"):
        amed.distill(amed.AMEDPredictor(), D, levels, teacher, solver="plugin", rollout=False)
    with pytest.raises(ValueError, match="torch module"):
        amed.distill(amed.ConstantPredictor(), D, levels, teacher)
    with pytest.raises(ValueError):
        S.nfe("amed_v", 3)


@pytest.mark.slow
def test_table_orderings_on_a_tiny_setting():
    """sampler_table.run / orderings / markdown on d = 2, NFE 3 and 4: every row spends exactly its
    budget (run raises otherwise), orderings report the paper's comparisons, the table marks a winner."""
    res = sampler_table.run(dims=(2,), nfes=(3, 4), points=4, train_points=4)
    assert set(res["tables"]["d=2"]) == {label for label, _, _ in sampler_table.ROWS}
    order = sampler_table.orderings(res)
    assert {o["nfe"] for o in order} == {3, 4}
    assert all("ddim<heun,dpm2" in o and "amed_best" in o for o in order)
    for o in order:
        assert o["best"] == sampler_table.best(res, "d=2", o["nfe"], [lab for lab, _, afs in sampler_table.ROWS if afs is not True])
    assert "**" in sampler_table.markdown(res)
    assert sampler_table.plan("heun", 3, None) == (2, True) and sampler_table.plan("heun", 4, None) == (2, False)
    assert sampler_table.plan("euler", 5, True) == (6, True)


def test_counting_denoiser_counts_batched_calls_once():
    D = CountingDenoiser(lambda x, s: x)
    D(torch.zeros(10, 2), torch.ones(10))
    assert D.nfe == 1


@settings(max_examples=30)
@given(sd=st.floats(0.05, 5.0), log_top=st.floats(math.log(0.01), math.log(80.0)), a=st.floats(0.05, 0.45), b=st.floats(0.55, 0.95))
def test_mean_value_time_depends_on_the_step_end_property(sd, log_top, a, b):
    """C21.16: with the same start (state and t_(n+1)) two different step ends need different exact times,
    and using one end's time for the other step leaves an error far above rounding."""
    top = math.exp(log_top)
    lo, hi = a * top, b * top
    s_lo, s_hi = mv.mean_value_time(lo, top, sd), mv.mean_value_time(hi, top, sd)
    assert s_lo < s_hi
    swapped = abs(mv.amed_gain(s_hi, lo, top, sd) - mv.exact_gain(lo, top, sd))
    own = abs(mv.amed_gain(s_lo, lo, top, sd) - mv.exact_gain(lo, top, sd))
    assert own <= 1e-12 and swapped > 1e3 * max(own, 1e-15)


# --- what the mutation run of issue 11 found untested ------------------------------------------------------------
from diffmath.claims import _transcriptions as transcribed  # noqa: E402


def _loss_setup(n_levels=4, end_at_zero=False):
    gm = random_mixture(3, 2, seed=21)
    D = edm_denoiser(gm)
    sig = edm_rho_grid(n_levels, 0.05, 20.0, 7.0)
    if end_at_zero:
        sig = torch.cat([sig, sig.new_zeros(1)])
    x = 20 * torch.randn(5, 2, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    return D, sig, amed.teacher_trajectory(D, x, sig, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("solver,rollout", [("amed", False), ("amed", True), ("plugin", True)])
def test_distill_first_loss_is_the_papers_objective(solver, rollout):
    """The first loss distill reports (an untrained predictor: r = 1/2, c = a = 1) equals the objective computed
    from independent transcriptions: sum over steps of mean |student - teacher|^2 / (1 + sigma_(i+1)^2), the student
    being DPM-Solver-2 from the teacher's state (teacher forcing) or from its own previous state (rollout), or
    iPNDM on the geometric midpoints from the start (the plugin)."""
    D, sig, teacher = _loss_setup()
    levels = sig.tolist()
    losses = amed.distill(amed.AMEDPredictor(hidden=4, scale_time_range=0.2 if solver == "plugin" else 0.0), D, sig, teacher,
                          solver=solver, rollout=rollout, iterations=1, lr=1e-3)
    want = 0.0
    refined = [levels[0]]
    for i, (a, b) in enumerate(zip(levels, levels[1:])):
        refined += [(a * b) ** 0.5, b]
        if solver == "plugin":
            out = transcribed.ipndm(D, teacher[0], refined)
        elif rollout:
            out = transcribed.dpm_solver_2(D, teacher[0], levels[: i + 2])
        else:
            out = transcribed.dpm_solver_2(D, teacher[i], [a, b])
        want += (out - teacher[i + 1]).pow(2).mean().item() / (1 + b * b)
    assert abs(losses[0] - want) <= 1e-10 * want


def test_distill_and_teacher_accept_grids_ending_at_zero_and_one_step():
    D, sig, teacher = _loss_setup(end_at_zero=True)
    assert teacher.shape[0] == len(sig) - 1  # one state per positive level
    assert len(amed.distill(amed.AMEDPredictor(hidden=4), D, sig, teacher, iterations=2)) == 2
    D, sig, teacher = _loss_setup(n_levels=2)  # a single step between two positive levels
    assert len(amed.distill(amed.AMEDPredictor(hidden=4), D, sig, teacher, iterations=1)) == 1


def test_predictor_forward_and_features_against_their_formulas():
    """AMEDPredictor's outputs from its documented formula, computed in numpy on the module's own weights:
    z = W2 silu(W1 [features, log sigma_cur, log sigma_next] + b1) + b2, r = sigmoid(z1), c = 1 + dc tanh(z2),
    a = 1 + da tanh(z3); and state_features = [rms(d), rms(x)/sqrt(1 + sigma^2)] over all non-batch axes."""
    import numpy as np

    p = amed.AMEDPredictor(hidden=5, scale_dir_range=0.3, scale_time_range=0.2, seed=3)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for w in (p.w2, p.b2, p.b1):
            w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64))
    x = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    d = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    f = amed.state_features(x, d, 2.5)
    xn, dn = x.numpy().reshape(4, -1), d.numpy().reshape(4, -1)
    assert np.allclose(f.numpy(), np.stack([np.sqrt((dn**2).mean(1)), np.sqrt((xn**2).mean(1)) / np.sqrt(1 + 2.5**2)], 1), rtol=1e-14)
    r, c, a = p(f, 2.5, 0.7)
    inp = np.concatenate([f.numpy(), np.tile([np.log(2.5), np.log(0.7)], (4, 1))], 1)
    pre = inp @ p.w1.detach().numpy().T + p.b1.detach().numpy()
    z = (pre / (1 + np.exp(-pre))) @ p.w2.detach().numpy().T + p.b2.detach().numpy()
    assert np.allclose(r.detach().numpy(), 1 / (1 + np.exp(-z[:, 0])), rtol=1e-13)
    assert np.allclose(c.detach().numpy(), 1 + 0.3 * np.tanh(z[:, 1]), rtol=1e-13)
    assert np.allclose(a.detach().numpy(), 1 + 0.2 * np.tanh(z[:, 2]), rtol=1e-13)
    w_first = amed.AMEDPredictor(hidden=64, seed=0).w1.detach()
    assert abs(w_first.std().item() * (amed.N_FEATURES + 2) ** 0.5 - 1) < 0.1  # He-like scale 1/sqrt(fan-in)


def test_predictor_outputs_at_their_bounds_and_bad_predictors():
    gm = random_mixture(2, 2, seed=5)
    x = 10 * torch.randn(3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    sig = grid_to_zero(3, 10.0)
    D = edm_denoiser(gm)
    const = lambda r, c, a: (lambda f, s, t: (r, c, a))  # noqa: E731
    for r in (0.0, 1.0):  # the ends of [0, 1] are allowed
        assert torch.isfinite(amed.sample_amed(D, x, sig, predictor=const(r, 1.0, 1.0))).all()
        amed.ConstantPredictor(r=r)
    for bad in (const(0.5, 0.0, 1.0), const(0.5, 1.0, 0.0)):
        with pytest.raises(ValueError, match="scale_dir and scale_time must be > 0"):
            amed.sample_amed_plugin(D, x, sig, predictor=bad)
    with pytest.raises(ValueError, match="predictor must be callable"):
        amed.sample_amed(D, x, sig, predictor=3)
    for a, b in ((1.0, 0.0), (0.0, 1.0)):
        with pytest.raises(ValueError, match="both levels > 0"):
            amed.geometric_level(a, b, 0.5)
    with pytest.raises(ValueError, match="hidden"):
        amed.AMEDPredictor(hidden=0)
    amed.AMEDPredictor(hidden=1, scale_dir_range=0.0)
    with pytest.raises(ValueError, match="scale_dir_range"):
        amed.AMEDPredictor(scale_dir_range=1.0)


def test_distill_with_the_analytic_first_step_and_low_plugin_orders():
    """With afs the first teacher-forced step starts from the analytic direction (the objective then uses the AFS
    transcription at step 0 only); the plugin accepts every order 1-4; refined_grid takes r at the ends of [0, 1]
    and grids that stop above 0."""
    D, sig, teacher = _loss_setup()
    levels = sig.tolist()
    loss = amed.distill(amed.AMEDPredictor(hidden=4), D, sig, teacher, afs=True, iterations=1)[0]
    want = sum((transcribed.dpm_solver_2(D, teacher[i], [a, b], afs=i == 0) - teacher[i + 1]).pow(2).mean().item() / (1 + b * b)
               for i, (a, b) in enumerate(zip(levels, levels[1:])))
    assert abs(loss - want) <= 1e-10 * want
    for order in (1, 2):
        amed.distill(amed.AMEDPredictor(hidden=4, scale_time_range=0.2), D, sig, teacher, solver="plugin", max_order=order, iterations=1)
    assert amed.refined_grid(sig, 1.0).shape == (2 * len(sig) - 1,) and amed.refined_grid(sig, 0.0)[1].item() == levels[0]


def test_exact_eps_model_wants_a_batch():
    from diffmath.denoisers import exact_eps_model
    from diffmath.schedules import VPCosine

    model = exact_eps_model(random_mixture(2, 2, seed=1), VPCosine())
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.ones(2, dtype=torch.float64), 0.5)
