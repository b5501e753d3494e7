"""The samplers (diffmath.samplers) against exact solutions: orders, exact cases, NFE, bad input.

Reference: the exact Gaussian flow (diffmath.flows.gaussian_flow, C0.7) in EDM coordinates
(alpha = 1), from sigma_max to sigma_min > 0 (the order tests stop at sigma_min).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import samplers as S
from diffmath.denoisers import CountingDenoiser, edm_denoiser
from diffmath.flows import gaussian_flow
from diffmath.mixture import GaussianMixture
from diffmath.schedules import edm_rho_grid
from diffmath.toys import random_mixture, random_spd

# Asymptotic orders on an EDM rho-grid. iPNDM's constant-step weights are second order on a
# non-uniform grid, and any Adams-Bashforth started with an Euler step (the lower-order warm-up)
# is second order overall: the first step's local error O(h^2) is not damped later. Hence 2 for
# both iPNDM variants; the 4th-order accuracy of the variable-step weights is tested separately.
# The variable-step variant reaches its asymptote late: its higher-order steps keep the error
# small until the warm-up's O(h^2) dominates (measured exponent 2.86 at n = 32, 2.06 at n = 256).
N_ORDER = {"ipndm_v": 256}
ORDERS = {name: spec.order for name, spec in S.SPECS.items() if spec.order is not None}


def gaussian_problem(d, seed, n_points=32, sigma_max=10.0, sigma_min=0.1):
    g = torch.Generator().manual_seed(seed)
    C = random_spd(d, generator=g)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    gm = GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], C[None])
    x = sigma_max * torch.randn(n_points, d, generator=g, dtype=torch.float64)
    exact = gaussian_flow(mu, C, x, 1.0, sigma_max, 1.0, sigma_min)
    return gm, x, exact


def rms(a, b):
    return (a - b).pow(2).sum(-1).mean().sqrt().item()


def measured_order(name, gm, x, exact, n, sigma_max=10.0, sigma_min=0.1, rho=7.0):
    errs = []
    for m in (n, 2 * n):
        sig = edm_rho_grid(m + 1, sigma_min, sigma_max, rho)
        errs.append(rms(S.get_sampler(name)(edm_denoiser(gm), x, sig, require_zero=False), exact))
    return math.log2(errs[0] / errs[1])


@pytest.mark.parametrize("name", S.SAMPLERS)
def test_convergence_order(name):
    """log2(error(n) / error(2n)) at n = 32 (256 for ipndm_v) is the order within 0.15.

    The error is C h^p (1 + O(h)), so the measured exponent deviates from p by O(1/n); on this
    problem the deviation at n = 32..64 is below 0.05 for every sampler, and 0.15 still separates
    order 1 from 2 by a wide gap.
    """
    gm, x, exact = gaussian_problem(3, seed=0)
    p = measured_order(name, gm, x, exact, N_ORDER.get(name, 32))
    assert abs(p - ORDERS[name]) < 0.15, (name, p)


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 4), name=st.sampled_from(("euler", "heun", "dpm_solver_2", "dpmpp_2m")))
def test_convergence_order_property(seed, d, name):
    """Random Gaussian data: the measured order at n = 64 is the theoretical one within 0.2
    (wider than the fixed-seed test: a random covariance may make the O(1/n) correction larger)."""
    gm, x, exact = gaussian_problem(d, seed, n_points=8)
    p = measured_order(name, gm, x, exact, 64)
    assert abs(p - ORDERS[name]) < 0.2, (name, p)


@given(times=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4), h=st.floats(-1.0, -0.01), coeffs=st.lists(st.floats(-2, 2), min_size=4, max_size=4))
def test_variable_step_weights_integrate_cubics(times, h, coeffs):
    """The variable-step Adams-Bashforth weights integrate every polynomial of degree < k exactly
    (the definition of order k): h sum_j c_j f(t_j) = int_{t_0}^{t_0+h} f for k nodes t_0 > t_1 > ..."""
    nodes = [0.0]
    for gap in times[: 3]:
        nodes.append(nodes[-1] + gap)  # history lies at larger sigma (earlier in the sampling)
    k = len(nodes)
    c = S._ab_coefficients(nodes, h)
    poly = coeffs[:k]

    def f(t):
        return sum(a * t**m for m, a in enumerate(poly))

    integral = sum(a * h ** (m + 1) / (m + 1) for m, a in enumerate(poly))
    approx = h * sum(cj * f(tj) for cj, tj in zip(c, nodes))
    scale = sum(abs(a) for a in poly) * (abs(h) + max(nodes)) ** k + 1e-300
    assert abs(approx - integral) <= 1e-10 * scale


def test_variable_step_weights_reduce_to_fixed_on_uniform_grid():
    """On a uniform grid the variable-step weights are iPNDM's constant ones (1e-13)."""
    for k in (1, 2, 3, 4):
        c = S._ab_coefficients([0.5 * j for j in range(k)], -0.5)
        assert max(abs(a - b) for a, b in zip(c, S.ADAMS_BASHFORTH[k])) < 1e-13


def test_euler_exact_for_point_mass():
    """D(x, sigma) = c (a point mass at c): the flow x(sigma) = c + (sigma/sigma_0)(x_0 - c) is linear
    in sigma, so Euler is exact on any grid (1e-12, float64 rounding over a few steps)."""
    c = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    x = 80 * torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sig = edm_rho_grid(7, 0.002, 80.0, 7.0)

    def const(xx, s):
        return c.expand_as(xx)

    out = S.sample_euler(const, x, sig, require_zero=False)
    exact = c + (0.002 / 80.0) * (x - c)
    assert (out - exact).abs().max().item() < 1e-12
    out0 = S.sample_euler(const, x, torch.cat([sig, sig.new_zeros(1)]))
    assert (out0 - c).abs().max().item() < 1e-12


@given(
    gaps=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=12),
    log_top=st.floats(-1.0, 2.0),
    seed=st.integers(0, 2**16),
)
def test_euler_exact_for_point_mass_property(gaps, log_top, seed):
    """Random grids (random log-spacings, then 0): Euler with D = c lands on c, and at every
    positive level on c + (sigma/sigma_0)(x_0 - c) (1e-12 relative to |x_0|: rounding only)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(2, generator=g, dtype=torch.float64)
    top = 10.0**log_top
    levels = [top]
    for gap in gaps:
        levels.append(levels[-1] * math.exp(-gap))
    x = top * torch.randn(3, 2, generator=g, dtype=torch.float64)

    def const(xx, s):
        return c.expand_as(xx)

    scale = 1 + x.abs().max().item()
    mid = S.sample_euler(const, x, torch.tensor(levels, dtype=torch.float64), require_zero=False)
    assert (mid - (c + levels[-1] / top * (x - c))).abs().max().item() <= 1e-12 * scale
    end = S.sample_euler(const, x, torch.tensor(levels + [0.0], dtype=torch.float64))
    assert (end - c).abs().max().item() <= 1e-12 * scale


@pytest.mark.parametrize("name", S.SAMPLERS)
@pytest.mark.parametrize("afs", (False, True))
def test_nfe_counts(name, afs):
    gm = random_mixture(3, 2, seed=1)
    D = edm_denoiser(gm)
    for n in (1, 2, 5):
        D.reset()
        levels = edm_rho_grid(n, 0.002, 80.0, 7.0) if n > 1 else torch.tensor([80.0], dtype=torch.float64)
        sig = torch.cat([levels, levels.new_zeros(1)])
        S.get_sampler(name)(D, torch.randn(4, 2, dtype=torch.float64), sig, afs=afs)
        assert D.nfe == S.nfe(name, n, afs=afs)


def test_afs_is_diff_samplers_direction():
    """With afs the first step uses d = x / sqrt(1 + sigma^2) and no denoiser call."""
    calls = CountingDenoiser(lambda xx, s: torch.zeros_like(xx))
    x = torch.randn(3, 2, dtype=torch.float64)
    out = S.sample_euler(calls, x, torch.tensor([4.0, 1.0]), afs=True, require_zero=False)
    assert calls.nfe == 0
    assert torch.allclose(out, x - 3.0 * x / math.sqrt(17.0), rtol=1e-15, atol=0)


def test_last_step_to_zero_is_the_denoiser():
    """Every sampler ends with D(x, sigma_last) exactly (iPNDM lowers its order to 1 there)."""
    gm = random_mixture(4, 3, seed=2)
    x = 80 * torch.randn(6, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sig = torch.tensor([80.0, 1.0, 0.0], dtype=torch.float64)
    for name in S.SAMPLERS:
        full = S.get_sampler(name)(edm_denoiser(gm), x, sig)
        part = S.get_sampler(name)(edm_denoiser(gm), x, sig[:2], require_zero=False)
        assert (full - gm.denoise(part, 1.0, 1.0)).abs().max().item() < 1e-12


@pytest.mark.parametrize("name", S.SAMPLERS)
def test_bad_input(name):
    fn = S.get_sampler(name)
    gm = random_mixture(2, 2, seed=0)
    x = torch.randn(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="decreasing"):
        fn(edm_denoiser(gm), x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="end at 0"):
        fn(edm_denoiser(gm), x, torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        fn(edm_denoiser(gm), x, torch.tensor([[2.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        fn(lambda xx, s: xx[:, :1], x, torch.tensor([2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="x must be"):
        fn(edm_denoiser(gm), [[1.0, 2.0]], torch.tensor([2.0, 0.0]))
    with pytest.raises(ValueError):
        S.nfe(name, 0)
    with pytest.raises(ValueError):
        S.get_sampler("rk45")


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_setting(tmp_path):
    """benchmarks/bench_samplers.py imports and runs (d = 2, NFE 3 and 4, 4 points): it cannot rot."""
    import importlib.util
    import json
    from pathlib import Path

    from diffmath import sampler_table

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_samplers.py"
    spec = importlib.util.spec_from_file_location("bench_samplers", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out_json, out_md = tmp_path / "t.json", tmp_path / "t.md"
    argv = ["--dims", "2", "--nfe", "3", "4", "--points", "4", "--train-points", "4", "--frechet-seeds", "2", "--frechet-points", "16",
            "--json", str(out_json), "--markdown", str(out_md)]
    assert bench.main(argv) == 0
    results = json.loads(out_json.read_text())
    table = results["tables"]["d=2"]
    assert set(table) == {label for label, _, _ in sampler_table.ROWS}
    assert all(v is not None and v >= 0 and math.isfinite(v) for row in table.values() for v in row.values())
    assert set(results["train_seconds"]["d=2"]) == {"amed", "amed_plugin"}
    assert all(len(v["3"]["values"]) == 2 for v in results["frechet"]["d=2"].values())  # --frechet-seeds reached the run
    assert "| Euler (= DDIM) |" in out_md.read_text()


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_solver_2", "dpmpp_2m", "ipndm", "ipndm_v", "amed", "amed_plugin"])
def test_extra_args_and_callback_hooks(name):
    """k-diffusion's hooks: extra_args reach every denoiser call as keywords (a class-conditional denoiser
    here), and callback sees each step once, with the state at sigmas[i] and the denoised estimate it used."""
    from diffmath import amed

    gms = [random_mixture(2, 2, seed=s) for s in (1, 2)]

    def conditional(x, sigma, label):
        return gms[label].denoise(x, 1.0, sigma)

    x = 10 * torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sig = torch.cat([edm_rho_grid(5, 0.05, 10.0, 7.0), torch.zeros(1, dtype=torch.float64)])
    opts = {"predictor": amed.ConstantPredictor()} if S.get_spec(name).order is None else {}
    seen = []
    out = S.get_sampler(name)(conditional, x, sig, extra_args={"label": 1}, callback=seen.append, **opts)
    ref = S.get_sampler(name)(edm_denoiser(gms[1]), x, sig, **opts)
    assert torch.allclose(out, ref, rtol=0, atol=0)
    assert [c["i"] for c in seen] == list(range(len(sig) - 1))
    assert all(c["sigma"] == sig[c["i"]].item() for c in seen)
    assert torch.equal(seen[0]["x"], x)
    assert torch.allclose(seen[0]["denoised"], gms[1].denoise(x, 1.0, sig[0].item()), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="extra_args"):
        S.get_sampler(name)(conditional, x, sig, extra_args=[1], **opts)


def test_one_table_of_sampler_facts():
    """SPECS drives nfe() and the sampler table; every registered sampler's function is found by name."""
    from diffmath import sampler_table

    assert set(S.SPECS) == {"euler", "heun", "dpm_solver_2", "dpmpp_2m", "ipndm", "ipndm_v", "amed", "amed_plugin"}
    for name, spec in S.SPECS.items():
        assert S.get_sampler(name) is spec.fn
        assert S.nfe(name, 3, to_zero=False) == 3 * spec.evaluations
    assert sampler_table.ONE_EVAL == ("euler", "dpmpp_2m", "ipndm", "ipndm_v")
    assert sampler_table.TWO_EVAL == ("heun", "dpm_solver_2", "amed", "amed_plugin")
    with pytest.raises(ValueError, match="registered twice"):
        S.register_sampler(S.SamplerSpec("euler", S.sample_heun, 1, 1, "x"))


# --- what the mutation run of issue 11 found untested ------------------------------------------------------------


def test_grid_rules_that_no_other_test_reached():
    gm = random_mixture(2, 2, seed=2)
    x = torch.ones(3, 2, dtype=torch.float64)
    D = edm_denoiser(gm)
    for bad in ([2.0, 1.0, -0.5], [5.0, 1.0, 3.0, 0.0]):  # ends below 0; not monotone though below the first level
        with pytest.raises(ValueError, match="sigmas"):
            S.sample_euler(D, x, bad, require_zero=False)


def test_afs_callback_reports_the_analytic_guess():
    """With afs, the first step's "denoised" is the guess x (1 - sigma/sqrt(1 + sigma^2)), reported to the callback."""
    gm = random_mixture(2, 2, seed=3)
    x = 10 * torch.randn(3, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    seen = []
    S.sample_euler(edm_denoiser(gm), x, [10.0, 2.0, 0.0], afs=True, callback=seen.append)
    # x - sigma d cancels about 2.5 digits here: the tolerance is rounding relative to |x|
    assert torch.allclose(seen[0]["denoised"], x * (1 - 10.0 / math.sqrt(101.0)), rtol=0, atol=1e-13 * x.abs().max().item())


def test_variable_step_ipndm_is_adams_bashforth_with_exact_lagrange_weights():
    """sample_ipndm_v against a transcription with numpy's exact polynomial integrals of the Lagrange basis; on an
    uneven grid it differs from the constant-weight iPNDM."""
    import numpy as np

    gm = random_mixture(3, 2, seed=8)
    D = edm_denoiser(gm)
    x = 20 * torch.randn(4, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    s = [20.0, 9.0, 5.0, 2.0, 0.8, 0.3]

    def weights(times, t_next):
        out = []
        for j in range(len(times)):
            L = np.poly1d([1.0])
            for m in range(len(times)):
                if m != j:
                    L = L * np.poly1d([1.0, -times[m]]) / (times[j] - times[m])
            P = L.integ()
            out.append((P(t_next) - P(times[0])) / (t_next - times[0]))
        return out

    y, hist = x.clone(), []
    for i in range(len(s) - 1):
        hist.insert(0, (y - D(y, y.new_full((4,), s[i]))) / s[i])
        hist = hist[:4]
        w = weights([s[i - j] for j in range(len(hist))], s[i + 1])
        y = y + (s[i + 1] - s[i]) * sum(wj * dj for wj, dj in zip(w, hist))
    got = S.sample_ipndm_v(D, x, s, require_zero=False)
    assert ((got - y).abs().max() / y.abs().max()).item() < 1e-12
    assert ((got - S.sample_ipndm(D, x, s, require_zero=False)).abs().max() / y.abs().max()).item() > 1e-6


def test_sampler_registry_rules():
    assert S.get_spec("heun").evaluations == 2 and S.get_sampler("euler") is S.sample_euler
    with pytest.raises(ValueError, match="name must be one of"):
        S.get_spec("no-such-sampler")
    assert S.register_sampler(S.get_spec("euler")) is S.get_spec("euler")  # the same spec again: allowed
    with pytest.raises(ValueError, match="registered twice"):
        S.register_sampler(S.SamplerSpec("euler", S.sample_heun, 1, 1, "another Euler"))
    with pytest.raises(ValueError, match="evaluations must be 1 or 2"):
        S.register_sampler(S.SamplerSpec("triple", S.sample_euler, 3, 1, "three calls"))
    spec = S.register_sampler(S.SamplerSpec("two-call-test", S.sample_heun, 2, 2, "a test entry"))
    try:
        assert S.get_spec("two-call-test") is spec
    finally:
        del S.SPECS["two-call-test"]


def test_discrete_ddim_timesteps_rules():
    from diffmath.denoisers import ddpm_eps_model
    from diffmath.schedules import DDPMDiscrete

    sched = DDPMDiscrete(num_steps=10)
    model = ddpm_eps_model(random_mixture(2, 2, seed=1), sched)
    x = torch.ones(3, 2, dtype=torch.float64)
    assert S.sample_ddim_discrete(model, x, [9, 5, 0], sched).shape == (3, 2)
    assert S.sample_ddim_discrete(model, x, [9], sched).shape == (3, 2)  # one step, to alpha = 1
    for bad in ([], [9, 9, 0], [5, 7]):
        with pytest.raises(ValueError, match="strictly decreasing"):
            S.sample_ddim_discrete(model, x, bad, sched)
