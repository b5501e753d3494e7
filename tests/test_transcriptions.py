"""Every sampler of the library against an independent transcription of its paper (diffmath.claims._transcriptions).

The transcriptions share no code with diffmath.samplers (no direction helper, no weight table, no grid
check); on the exact denoiser of a Gaussian mixture, on random grids (ending at 0 or not, uneven steps),
with and without the analytic first step, the two agree to float64 rounding. A wrong weight, sign or
step ratio in either shows up here as a disagreement of order one.
"""

import fractions

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffmath import amed
from diffmath import samplers as S
from diffmath.claims import _transcriptions as T
from diffmath.denoisers import edm_denoiser
from diffmath.toys import random_mixture

EXACT = 1e-11

PAIRS = {
    "euler": (S.sample_euler, T.ddim),
    "heun": (S.sample_heun, T.heun),
    "dpm_solver_2": (S.sample_dpm_solver_2, T.dpm_solver_2),
    "dpmpp_2m": (S.sample_dpmpp_2m, T.dpmpp_2m),
    "ipndm": (S.sample_ipndm, T.ipndm),
}


@st.composite
def grids(draw):
    """A strictly decreasing grid from sigma_max in [1, 80] with uneven steps, ending at 0 or at a positive level."""
    n = draw(st.integers(2, 9))
    top = draw(st.floats(1.0, 80.0))
    fracs = draw(st.lists(st.floats(0.05, 0.95), min_size=n - 1, max_size=n - 1))
    levels = [top]
    for f in fracs:
        levels.append(levels[-1] * f)
    if draw(st.booleans()):
        levels.append(0.0)
    return torch.tensor(levels, dtype=torch.float64)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(PAIRS)), sig=grids(), afs=st.booleans(), seed=st.integers(0, 2**16), d=st.integers(1, 4))
def test_library_sampler_equals_the_papers_algorithm_property(name, sig, afs, seed, d):
    gm = random_mixture(3, d, seed=seed)
    x = sig[0] * torch.randn(5, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    lib, paper = PAIRS[name]
    D = edm_denoiser(gm)
    a = lib(D, x, sig, afs=afs, require_zero=False)
    b = paper(D, x, sig, afs=afs)
    assert rel(a, b) <= EXACT, (name, sig.tolist(), afs)


@pytest.mark.parametrize("r", [0.3, 0.5, 0.8, 1.0])
def test_dpm_solver_2_general_r_equals_algorithm_1(r):
    """Lu et al.'s Algorithm 1 with r1 != 1/2 weighs the first direction by 1 - 1/(2 r1): the library's r."""
    gm = random_mixture(4, 2, seed=11)
    sig = torch.tensor([20.0, 7.0, 2.5, 0.4, 0.05, 0.0], dtype=torch.float64)
    x = 20 * torch.randn(8, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    D = edm_denoiser(gm)
    assert rel(S.sample_dpm_solver_2(D, x, sig, r=r), T.dpm_solver_2(D, x, sig, r1=r)) <= EXACT


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ipndm_orders_equal_the_textbook_weights(order):
    gm = random_mixture(3, 3, seed=5)
    sig = torch.tensor([30.0, 12.0, 5.0, 2.0, 0.7, 0.2, 0.0], dtype=torch.float64)
    x = 30 * torch.randn(6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    D = edm_denoiser(gm)
    assert rel(S.sample_ipndm(D, x, sig, max_order=order), T.ipndm(D, x, sig, max_order=order)) <= EXACT


def test_adams_bashforth_weights_are_integrals_of_the_lagrange_basis():
    """The textbook weights (and the library's table) from their definition: on the uniform nodes 0, -1, ..,
    -(k-1) (in units of the step), c_j = int_0^1 L_j(u) du, computed exactly by sympy."""
    u = sp.symbols("u")
    for k in (1, 2, 3, 4):
        nodes = [-j for j in range(k)]
        weights = []
        for j in range(k):
            L = sp.Integer(1)
            for m in range(k):
                if m != j:
                    L *= (u - nodes[m]) / sp.Integer(nodes[j] - nodes[m])
            weights.append(sp.integrate(L, (u, 0, 1)))
        assert [fractions.Fraction(int(w.p), int(w.q)) for w in weights] == T.AB[k]
        assert max(abs(float(w) - c) for w, c in zip(weights, S.ADAMS_BASHFORTH[k])) < 1e-15


def test_variable_step_weights_are_exact_lagrange_integrals():
    """The library's variable-step Adams–Bashforth weights (Gauss–Legendre) against sympy's exact integrals."""
    u = sp.symbols("u")
    times = [1.0, 1.7, 2.2, 3.5]
    t_next = 0.4
    h = t_next - times[0]
    for k in (1, 2, 3, 4):
        exact = []
        for j in range(k):
            L = sp.Integer(1)
            for m in range(k):
                if m != j:
                    L *= (u - sp.Rational(str(times[m]))) / (sp.Rational(str(times[j])) - sp.Rational(str(times[m])))
            exact.append(float(sp.integrate(L, (u, sp.Rational(str(times[0])), sp.Rational(str(t_next)))) / sp.Rational(str(h))))
        got = S._ab_coefficients(times[:k], t_next)
        assert max(abs(a - b) for a, b in zip(got, exact)) < 1e-12, (k, got, exact)


@settings(max_examples=10, deadline=None)
@given(sig=grids(), r=st.floats(0.1, 0.9), afs=st.booleans(), seed=st.integers(0, 2**16), order=st.integers(1, 4))
def test_constant_amed_plugin_is_the_transcribed_ipndm_on_the_refined_grid_property(sig, r, afs, seed, order):
    """C21.14 against the paper's iPNDM rather than the library's: AMED-Plugin with a fixed r and scale factors 1
    runs iPNDM on the grid refined by the geometric points sigma_i^(1-r) sigma_(i+1)^r."""
    if sig[-1] != 0:
        sig = torch.cat([sig, sig.new_zeros(1)])
    gm = random_mixture(3, 2, seed=seed)
    x = sig[0] * torch.randn(4, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    D = edm_denoiser(gm)
    refined = [sig[0].item()]
    for a, b in zip(sig[:-1].tolist(), sig[1:].tolist()):
        if b > 0:
            refined.append(a ** (1 - r) * b**r)
        refined.append(b)
    got = amed.sample_amed_plugin(D, x, sig, predictor=amed.ConstantPredictor(r=r), afs=afs, max_order=order)
    want = T.ipndm(D, x, torch.tensor(refined, dtype=torch.float64), afs=afs, max_order=order)
    assert rel(got, want) <= EXACT
