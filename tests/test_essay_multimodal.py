"""The multimodal essay (claims M.1-M.7): property tests of its arithmetic, counted on real tensors, and
negative controls showing that the derivations fail when a number is wrong."""

import math
from fractions import Fraction
from itertools import product

import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import information as info
from diffmath import snr
from diffmath.claims import get, select
from diffmath.symbolic import Step


def gen(seed):
    return torch.Generator().manual_seed(seed)


def distinct(C, n):
    return torch.arange(C * n * n, dtype=torch.float64).reshape(C, n, n)


def test_essay_claims_are_m_ids_after_the_series():
    ids = [c.id for c in select(["M"])]
    assert ids == [f"M.{k}" for k in range(1, 10)]
    assert all(c.chapter == "multimodal-lossless-input" and c.source.part is None for c in select(["M"]))


@given(n=st.integers(1, 96))
def test_sentence_length_property(n):
    """M.1: the flattened n x n RGB uint8 image is a sentence of 3 n^2 tokens over 256 values."""
    img = torch.randint(0, 256, (3, n, n), dtype=torch.uint8, generator=gen(n))
    sentence = img.reshape(-1)
    assert sentence.numel() == 3 * n * n
    assert int(sentence.max()) <= 255 and int(sentence.min()) >= 0
    assert torch.equal(sentence.reshape(3, n, n), img)  # the sentence keeps the image


@given(m=st.integers(1, 24), f=st.integers(1, 8))
def test_downsampling_ratio_property(m, f):
    """M.2: f x f patches of an (f m)^2 RGB image: m^2 tokens, 3 f^2 times fewer than subpixels (48 at f = 4)."""
    x = distinct(3, f * m)
    y = snr.patchify(x, f)
    tokens = y.shape[0] * y.shape[1]
    assert tokens == m * m and y.shape[2] == 3 * f * f
    assert Fraction(x.numel(), tokens) == 3 * f * f
    assert torch.equal(y.reshape(-1).sort().values, x.reshape(-1).sort().values)


@given(k=st.integers(0, 5), p=st.sampled_from([1, 2, 4, 8, 16, 32]))
def test_token_grid_property(k, p):
    """M.3: an n x n image (n = 2^k p) cut into p x p patches is an (n/p) x (n/p) grid of 3 p^2 numbers."""
    n = (2**k) * p
    y = snr.patchify(distinct(3, n), p)
    assert tuple(y.shape) == (n // p, n // p, 3 * p * p)
    if n == 256 and p in (8, 16):  # the essay's two grids
        assert y.shape[0] * y.shape[1] == {8: 1024, 16: 256}[p]


@given(L=st.integers(1, 2048), logV=st.integers(0, 80), extra=st.integers(0, 5), bits=st.integers(0, 50000))
def test_budget_is_monotone_property(L, logV, extra, bits):
    """M.4: if L tokens from V symbols can hold B bits, so can more tokens or a larger vocabulary."""
    V = 2**logV + extra
    if info.budget_satisfied(L, V, bits):
        assert info.budget_satisfied(L + 1, V, bits) and info.budget_satisfied(L, V + 1, bits)
    assert info.token_capacity_bits(L + 1, V) >= info.token_capacity_bits(L, V)
    assert info.token_capacity_bits(L, V + 1) >= info.token_capacity_bits(L, V)  # floating point: equal for huge V


@given(L=st.integers(1, 4096), per_token=st.integers(0, 64), rest=st.integers(0, 4095))
def test_min_vocabulary_is_sharp_property(L, per_token, rest):
    """M.4: V = 2^(B/L) exactly when L divides B; the smallest V meets (2) and V - 1 does not."""
    bits = per_token * L + rest % L
    V = info.min_vocabulary(bits, L)
    assert info.budget_satisfied(L, V, bits)
    assert V == 1 or not info.budget_satisfied(L, V - 1, bits)
    if bits % L == 0:
        assert V == 2 ** (bits // L)
        assert info.token_capacity_bits(L, V) == bits  # equality: no slack


@given(V=st.integers(2, 64), seed=st.integers(0, 2**16), power=st.floats(0.1, 4.0))
def test_entropy_at_most_log_v_property(V, seed, power):
    """M.5: H(p) <= log2 V for any categorical p, with equality for the uniform law (only)."""
    e = (-torch.log(torch.rand(V, dtype=torch.float64, generator=gen(seed)))) ** power
    p = e / e.sum()
    H = info.entropy_bits(p).item()
    assert H <= math.log2(V) + 1e-12
    assert info.entropy_bits(torch.full((V,), 1.0 / V, dtype=torch.float64)).item() == pytest.approx(math.log2(V), rel=1e-13)
    # the gap is the KL divergence to the uniform law, computed directly
    kl = (p * torch.log2(p * V)).sum().item()
    assert abs(math.log2(V) - H - kl) <= 1e-12 * max(1.0, math.log2(V))


@given(V=st.integers(2, 4), L=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_markov_chain_budget_property(V, L, seed):
    """M.5: an autoregressive (Markov) source of L tokens, its joint law enumerated over all V^L sequences, carries
    at most the sum of its marginals' entropies, hence at most L log2 V bits."""
    g = gen(seed)
    init = torch.rand(V, dtype=torch.float64, generator=g) + 0.05
    init = init / init.sum()
    T = torch.rand(V, V, dtype=torch.float64, generator=g) ** 3 + 0.01
    T = T / T.sum(-1, keepdim=True)
    probs, marginals = [], [torch.zeros(V, dtype=torch.float64) for _ in range(L)]
    for seq in product(range(V), repeat=L):
        p = init[seq[0]].item()
        for a, b in zip(seq, seq[1:]):
            p *= T[a, b].item()
        probs.append(p)
        for t, s in enumerate(seq):
            marginals[t][s] += p
    H = info.entropy_bits(torch.tensor(probs, dtype=torch.float64)).item()
    sum_marginals = sum(info.entropy_bits(m).item() for m in marginals)
    assert H <= sum_marginals + 1e-12 <= L * math.log2(V) + 2e-12


@given(m=st.integers(1, 12))
def test_patch_grid_property(m):
    """M.6: a 16 m x 16 m RGB image reshaped to 16 x 16 patches of 3 m^2 numbers (48 at 64^2, 192 at 128^2)."""
    x = distinct(3, 16 * m)
    y = snr.patchify(x, m)
    assert tuple(y.shape) == (16, 16, 3 * m * m)
    a, b = 5, 11
    assert torch.equal(y[a, b], x[:, m * a : m * a + m, m * b : m * b + m].reshape(-1))


@given(m=st.integers(1, 24))
def test_latent_ratio_property(m):
    """M.7: at every resolution n = 8 m, the n/8 x n/8 x 4 latent is 1/48 of the 8 x 8-patchified image."""
    y = snr.patchify(distinct(3, 8 * m), 8)
    assert Fraction(m * m * 4, y.numel()) == Fraction(1, 48)


def test_derivations_fail_when_a_number_is_wrong():
    """Negative controls: the steps the derivations use reject a wrong ratio, exponent or count."""
    f, m = sp.symbols("f m", positive=True, integer=True)
    c, i, j, a, b = sp.symbols("c i j a b", integer=True)
    ratio = sp.Sum(1, (c, 1, 3), (i, 1, f * m), (j, 1, f * m)) / sp.Sum(1, (a, 1, m), (b, 1, m))
    assert Step(ratio, 3 * f**2).failure() is None and Step(ratio, 4 * f**2).failure() is not None
    B, L = sp.symbols("B L", positive=True)
    assert Step(sp.Subs(B / L, (B, L), (36864, 1024)), 37).failure() is not None
    assert Step(sp.Mul(64, 64, 3, 3, evaluate=False), 36865).failure() is not None
    for claim in select(["M"]):
        if claim.derivation is not None:
            assert claim.derivation.verify(), claim.id


def test_documented_claims_say_why():
    for cid in ("M.8", "M.9"):
        c = get(cid)
        assert c.derive is None and c.check is None and c.remark.startswith("Not checkable")
