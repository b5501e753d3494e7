"""diffmath.skip_tuning: the ρ schedule (C24.1), GroupNorm's scale invariance and the paths a scaled skip
survives on (C24.2), what a weight rescaling can and cannot absorb (C24.3), the wrapper's convention and the
diagnostics, each against an independent computation (fractions, a GroupNorm written out, brute force, autograd)."""

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from diffmath import skip_tuning as stn
from diffmath import unet


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- C24.1 the schedule ---------------------------------------------------------------------------------
@given(st.integers(1, 30), st.fractions(Fraction(1, 100), 1), st.fractions(Fraction(1, 100), 1))
def test_rho_schedule_property(k, a, b):
    bottom, top = min(a, b), max(a, b)
    rhos = stn.rho_schedule(k, float(bottom), float(top))
    exact = [bottom + i * (top - bottom) / k for i in range(k + 1)]  # rational arithmetic
    assert len(rhos) == k + 1
    assert rhos[0] == float(bottom) and rhos[-1] == float(top)
    assert all(abs(r - float(e)) <= 4e-16 * k for r, e in zip(rhos, exact))
    assert all(r1 <= r2 + 1e-15 for r1, r2 in zip(rhos, rhos[1:]))  # non-decreasing towards the top
    assert all(float(bottom) - 1e-15 <= r <= float(top) + 1e-15 for r in rhos)


def test_rho_schedule_rejects_bad_input():
    for k in (0, 1.5, True, -2):
        with pytest.raises(ValueError, match="k must be"):
            stn.rho_schedule(k, 0.5)
    for rb in (0.0, -0.1, math.inf, math.nan, "0.5"):
        with pytest.raises(ValueError, match="rho_bottom"):
            stn.rho_schedule(3, rb)
    with pytest.raises(ValueError, match="rho_top"):
        stn.rho_schedule(3, 0.5, 0.0)


# --- C24.2 GroupNorm -------------------------------------------------------------------------------------
def group_norm_by_hand(x, groups, eps):
    """GroupNorm written out: per image and group, subtract the mean and divide by sqrt(var + eps) (biased var)."""
    n, c = x.shape[:2]
    out = torch.empty_like(x)
    size = c // groups
    for i in range(n):
        for g in range(groups):
            z = x[i, g * size: (g + 1) * size]
            out[i, g * size: (g + 1) * size] = (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + eps)
    return out


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.floats(0.05, 1.0), st.integers(0, 10**6))
def test_groupnorm_scale_invariance_property(u_groups_x, d_units, size, rho, seed):
    """Channels cat([u, rho d]) with groups of ``size`` channels, the boundary anywhere. With eps = 0 a group inside
    d is exactly invariant to rho; a group inside u is untouched; the groups that change are exactly the straddling
    ones the library names (brute force), and there is at most one. With eps = 1e-5 the invariance is approximate,
    off by about eps (1 - rho^2)/(2 rho^2 var)."""
    g = gen(seed)
    groups = u_groups_x + d_units
    C = groups * size
    cu = int(torch.randint(1, C, (1,), generator=g))  # the boundary: any channel index inside (0, C)
    u = torch.randn(3, cu, 4, 4, generator=g, dtype=torch.float64)
    d = 2 * torch.randn(3, C - cu, 4, 4, generator=g, dtype=torch.float64)
    a = group_norm_by_hand(torch.cat([u, d], 1), groups, 0.0)
    b = group_norm_by_hand(torch.cat([u, rho * d], 1), groups, 0.0)
    assert torch.allclose(F.group_norm(torch.cat([u, d], 1), groups, eps=0.0), a, rtol=1e-10, atol=1e-12)
    changed = [k for k in range(groups) if not torch.allclose(a[:, k * size:(k + 1) * size], b[:, k * size:(k + 1) * size],
                                                               rtol=0, atol=1e-10)]
    if rho < 0.999:
        assert changed == stn.straddling_groups(cu, C - cu, groups)
    assert len(stn.straddling_groups(cu, C - cu, groups)) <= 1
    # eps > 0: groups inside d move by about eps (1/rho^2 - 1)/(2 var) in relative terms
    eps = 1e-5
    ae = F.group_norm(torch.cat([u, d], 1), groups, eps=eps)
    be = F.group_norm(torch.cat([u, rho * d], 1), groups, eps=eps)
    first_d = -(-cu // size)  # the first group that starts at or after the boundary
    for k in range(first_d, groups):
        sl = slice(k * size, (k + 1) * size)
        var = torch.cat([u, d], 1)[:, sl].flatten(1).var(1, unbiased=False)
        bound = (eps * (1 / rho**2 - 1) / (2 * var)).max().item()
        rel = ((be[:, sl] - ae[:, sl]).abs().flatten(1).max(1).values / ae[:, sl].abs().flatten(1).max(1).values).max().item()
        assert rel <= 1.01 * bound + 1e-12


def test_straddling_groups_examples():
    # the toy U-Net's decoder: 32 + 16 channels in 4 groups of 12 -> group 2 (channels 24-35) straddles;
    # 32 + 32 in 4 groups of 16 -> aligned
    assert stn.straddling_groups(32, 16, 4) == [2]
    assert stn.straddling_groups(32, 32, 4) == []
    assert stn.group_boundaries(48, 4) == [(0, 12), (12, 24), (24, 36), (36, 48)]
    with pytest.raises(ValueError, match="not divisible"):
        stn.group_boundaries(10, 4)


def block_pair(cu, cd, cout, groups, seed):
    torch.manual_seed(seed)
    block = unet.UNetBlock(cu + cd, cout, 8, groups, eps=0.0).double()
    emb = torch.randn(2, 8, generator=gen(seed), dtype=torch.float64)
    u = torch.randn(2, cu, 6, 6, generator=gen(seed + 1), dtype=torch.float64)
    d = torch.randn(2, cd, 6, 6, generator=gen(seed + 2), dtype=torch.float64)
    return block, emb, u, d


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_paths_the_scaling_survives_on(seed):
    """EDM's decoder block on cat([u, rho d]): with aligned groups and eps = 0 the only path that sees rho is the 1x1
    residual conv, so (i) zeroing that conv makes the block exactly invariant, and (ii) rescaling the conv's d columns
    by rho reproduces the tuned block exactly (the tuning is absorbed). With a straddling group neither holds."""
    rho = 0.6
    block, emb, u, d = block_pair(8, 8, 12, 4, seed)  # 16 channels, groups of 4: aligned
    tuned = block(torch.cat([u, rho * d], 1), emb)
    plain = block(torch.cat([u, d], 1), emb)
    assert (tuned - plain).abs().max() > 1e-3  # the tuning does something
    absorbed = unet.UNetBlock(16, 12, 8, 4, eps=0.0).double()
    absorbed.load_state_dict(block.state_dict())
    with torch.no_grad():
        absorbed.skip.weight[:, 8:] *= rho
    assert torch.allclose(absorbed(torch.cat([u, d], 1), emb), tuned, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        block.skip.weight.zero_()
        block.skip.bias.zero_()
    assert torch.allclose(block(torch.cat([u, rho * d], 1), emb), block(torch.cat([u, d], 1), emb), rtol=1e-12, atol=1e-12)
    # a straddling group: 6 + 10 channels, groups of 4 -> group 1 (channels 4-7) straddles
    block, emb, u, d = block_pair(6, 10, 12, 4, seed)
    with torch.no_grad():
        block.skip.weight.zero_()
        block.skip.bias.zero_()
    gap = (block(torch.cat([u, rho * d], 1), emb) - block(torch.cat([u, d], 1), emb)).abs().max().item()
    assert gap > 1e-3


def test_straddling_group_is_not_absorbed_by_a_fit():
    """C24.3 where it holds: with a straddling group the closed-form absorption (the 1x1 columns rescaled by rho)
    leaves the straddling group's part of the effect (here 18%), and fitting every weight of the block from there to
    the tuned block's outputs (150 Adam steps) shrinks it but leaves a residual on fresh inputs (a fit, not a proof:
    longer fits shrink it slowly; 6x6 images, 64 of them: 3.5% after 300 steps, 2.9% after 1000)."""
    rho = 0.5
    torch.manual_seed(0)
    block = unet.UNetBlock(16, 12, 8, 4).double()  # cat([u (6 ch), d (10 ch)]): group 1 straddles
    emb = torch.randn(1, 8, generator=gen(0), dtype=torch.float64)

    def data(seed, n=32):
        g = gen(seed)
        return torch.randn(n, 6, 4, 4, generator=g, dtype=torch.float64), torch.randn(n, 10, 4, 4, generator=g, dtype=torch.float64)

    def target(u, d):
        with torch.no_grad():
            return block(torch.cat([u, rho * d], 1), emb.expand(u.shape[0], -1))

    fit = unet.UNetBlock(16, 12, 8, 4).double()
    fit.load_state_dict(block.state_dict())
    with torch.no_grad():
        fit.skip.weight[:, 6:] *= rho
    u2, d2 = data(2)

    def rms(a, b):
        with torch.no_grad():
            return (a - b).pow(2).mean().sqrt().item()

    effect = rms(target(u2, d2), block(torch.cat([u2, d2], 1), emb.expand(32, -1)))
    start = rms(fit(torch.cat([u2, d2], 1), emb.expand(32, -1)), target(u2, d2))
    assert 0.05 * effect <= start <= 0.3 * effect, (start, effect)
    u, d = data(1)
    y = target(u, d)
    opt = torch.optim.Adam(fit.parameters(), lr=1e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = (fit(torch.cat([u, d], 1), emb.expand(32, -1)) - y).pow(2).mean()
        loss.backward()
        opt.step()
    residual = rms(fit(torch.cat([u2, d2], 1), emb.expand(32, -1)), target(u2, d2))
    assert 0.01 * effect <= residual < start, (residual, start, effect)


# --- the wrapper ------------------------------------------------------------------------------------------
def tiny_denoiser():
    torch.manual_seed(0)
    return unet.EDMDenoiser(unet.UNet(channels=8, channel_mult=(1, 2), groups=2), 0.5)


def test_skip_tuned_uses_the_schedule_bottom_first():
    D = tiny_denoiser()
    tuned = stn.SkipTuned(D, rho_bottom=0.4)
    assert tuned.k == 3 and tuned.scales(torch.ones(2)) == stn.rho_schedule(3, 0.4)
    x = torch.randn(2, 1, 8, 8, generator=gen(1))
    want = D(x, torch.full((2,), 0.7), skip_scales=[0.4, 0.6, 0.8, 1.0])
    assert torch.equal(tuned(x, 0.7), want) and tuned.nfe == 1
    # the convention: the first scale (rho_bottom) reaches the first popped skip, the deepest
    rec = []
    D.net(x, torch.zeros(2), skip_scales=tuned.scales(torch.ones(2)), record=rec)
    plain = []
    D.net(x, torch.zeros(2), record=plain)
    assert rec[0][0] == "enc1.0" and torch.allclose(rec[0][2], 0.4 * plain[0][2])
    assert rec[-1][0] == "conv_in"  # rho_top = 1 for the skip nearest the input
    assert torch.equal(stn.SkipTuned(D, 1.0)(x, 0.7), D(x, 0.7))


def test_time_dependent_rho_window():
    D = tiny_denoiser()
    rho = stn.window_rho(0.5, 0.1, 1.0)
    assert rho(torch.tensor([0.05, 0.1, 0.5, 1.0, 5.0])).tolist() == [1.0, 0.5, 0.5, 1.0, 1.0]
    tuned = stn.SkipTuned(D, rho_bottom=rho)
    x = torch.randn(2, 1, 8, 8, generator=gen(2))
    assert torch.allclose(tuned(x, 0.5), stn.SkipTuned(D, 0.5)(x, 0.5), rtol=1e-6, atol=1e-7)  # float32 rho tensors
    assert not torch.allclose(tuned(x, 0.5), D(x, 0.5), rtol=1e-3)
    assert torch.equal(tuned(x, 2.0), D(x, 2.0))
    with pytest.raises(ValueError, match="sigma_lo"):
        stn.window_rho(0.5, 1.0, 0.1)
    with pytest.raises(ValueError, match="sigma_lo"):
        stn.window_rho(0.5, 0.0, 0.1)  # the window must start above 0
    with pytest.raises(ValueError, match="rho"):
        stn.window_rho(0.0, 0.1, 1.0)
    # a one-element sigma tensor is one level for the whole batch, as a number is
    assert torch.equal(tuned(x, torch.tensor([0.5])), tuned(x, 0.5))
    with pytest.raises(ValueError, match="rho_bottom"):
        stn.SkipTuned(D, rho_bottom=lambda s: -s)(x, 1.0)
    with pytest.raises(ValueError, match="EDMDenoiser"):
        stn.SkipTuned(lambda x, s: x)


def test_norm_ratios_against_the_recorded_tensors():
    D = tiny_denoiser()
    x = torch.randn(4, 1, 8, 8, generator=gen(3))
    ratios = stn.norm_ratios(D, x, 0.5)
    assert [n for n, _ in ratios] == ["enc1.0", "down1", "enc0.0", "conv_in"]
    rec = []
    s = math.sqrt(0.25 + 0.25)
    D.net(x / s, torch.full((4,), math.log(0.5) / 4), record=rec)
    u, d = rec[2][1], rec[2][2]
    want = sum(d[i].norm() / u[i].norm() for i in range(4)) / 4
    assert ratios[2][1] == pytest.approx(want.item(), rel=1e-5)


def test_gradient_norms_equal_the_hutchinson_sum_on_the_dense_jacobian():
    """gradient_norms draws its probes v_p from ``generator`` in order; with the same draws, sqrt(mean_p ||J_i^T v_p||^2)
    computed from the dense Jacobian (autograd.functional, c_noise = log(sigma)/4 written out here) must match per
    image to float32 precision."""
    D = tiny_denoiser()
    x = torch.randn(3, 1, 8, 8, generator=gen(9))
    got = stn.gradient_norms(D, x, 0.8, 0.5, probes=3, generator=gen(10))
    scales = stn.rho_schedule(3, 0.5)
    g = gen(10)
    probes = [torch.randn(3, 1, 8, 8, generator=g) for _ in range(3)]
    for i in range(3):
        J = torch.autograd.functional.jacobian(
            lambda z: D.net(z, torch.full((1,), math.log(0.8) / 4), scales), x[i: i + 1], vectorize=True).reshape(64, 64)
        want = math.sqrt(sum((J.T @ v[i].reshape(64)).pow(2).sum().item() for v in probes) / 3)
        assert got[i].item() == pytest.approx(want, rel=1e-4)


def test_gradient_norm_against_the_dense_jacobian():
    """The Hutchinson estimate of ||J||_F against the dense Jacobian (autograd.functional), per image; the estimate
    is unbiased in ||J||_F^2 with relative sd at most sqrt(2/probes) per image (Gaussian probes), so about half that
    for the norm; the mean over 3 images is allowed 5 times that (a missing square root or a wrong probe count
    is off by far more)."""
    D = tiny_denoiser()
    x = torch.randn(3, 1, 8, 8, generator=gen(4))
    est = stn.gradient_norm(D, x, 0.8, 0.5, probes=64, generator=gen(5))
    scales = stn.rho_schedule(3, 0.5)
    norms = []
    for i in range(3):
        J = torch.autograd.functional.jacobian(
            lambda z: D.net(z, torch.full((1,), math.log(0.8) / 4), scales), x[i: i + 1], vectorize=True)
        norms.append(J.reshape(64, 64).norm().item())
    exact = sum(norms) / 3
    assert est == pytest.approx(exact, rel=5 * math.sqrt(2 / 64) / 2 / math.sqrt(3))
    with pytest.raises(ValueError, match="probes"):
        stn.gradient_norm(D, x, 0.8, 0.5, probes=0)


def test_absorbed_denoiser_matches_an_aligned_network():
    """C24.3: with every decoder concatenation aligned to its groups, rescaling the 1x1 columns by rho_j reproduces the
    Skip-Tuned network (to GroupNorm's eps and float32 rounding); with straddling groups it does not; the copy leaves the original alone."""
    def gap(net, rho=0.6):
        D = unet.EDMDenoiser(net, 0.5)
        absorbed = stn.absorbed_denoiser(D, rho).net
        x = torch.randn(4, 1, 8, 8, generator=gen(8))
        c = torch.zeros(4)
        with torch.no_grad():
            tuned, plain = net(x, c, stn.rho_schedule(net.n_skips - 1, rho)), net(x, c)
            return ((tuned - absorbed(x, c)).norm() / (tuned - plain).norm()).item()

    torch.manual_seed(1)
    aligned = unet.UNet(channels=8, channel_mult=(1, 1), groups=8)
    before = [p.clone() for p in aligned.parameters()]
    assert 1e-5 <= gap(aligned) <= 3e-3  # GroupNorm's eps = 1e-5 against small group variances
    for m in aligned.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.eps = 0.0
    assert gap(aligned) <= 3e-5  # float32 rounding
    assert all(torch.equal(a, b) for a, b in zip(before, aligned.parameters()))
    torch.manual_seed(1)
    straddling = unet.UNet(channels=8, channel_mult=(1, 2), groups=2)  # 16 + 8 channels in groups of 12
    assert gap(straddling) >= 0.05


def test_ramp_rho_is_linear_in_log_sigma():
    r = stn.ramp_rho(0.6, 1.0, 0.01, 100.0)  # strongest at high noise
    got = r(torch.tensor([0.001, 0.01, 1.0, 100.0, 1e4], dtype=torch.float64)).tolist()
    assert got == pytest.approx([1.0, 1.0, 0.8, 0.6, 0.6], abs=1e-12)  # log-midpoint of [0.01, 100] is 1
    mid = r(torch.tensor([10.0], dtype=torch.float64)).item()
    assert mid == pytest.approx(1.0 - 0.4 * 0.75, abs=1e-12)  # log10: three quarters of the way
    with pytest.raises(ValueError, match="sigma_min"):
        stn.ramp_rho(0.6, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="rho_low"):
        stn.ramp_rho(0.6, 0.0, 0.01, 1.0)


@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([2, 3]), st.sampled_from([1, 2, 4]), st.floats(0.05, 2.0),
       st.integers(0, 10**6))
def test_rescaled_residual_weights_absorb_rho_property(u_groups, d_groups, widen, size, rho, seed):
    """C24.3 on random EDM blocks whose GroupNorm groups are aligned with the boundary (channels multiples of the group
    size), eps = 0, float64: the block on cat(u, rho d) equals the block with its 1x1 residual columns for d multiplied
    by rho, on cat(u, d); and it differs from the untuned block (rho != 1), so the comparison is not empty. (The
    output's channels differ from the input's, as in EDM's decoder, so the residual path is a 1x1 convolution.)"""
    groups = u_groups + d_groups
    cu, cd = u_groups * size, d_groups * size
    cout = widen * (cu + cd)
    torch.manual_seed(seed)
    block = unet.UNetBlock(cu + cd, cout, 8, groups, eps=0.0).double()
    g = gen(seed)
    emb = torch.randn(2, 8, generator=g, dtype=torch.float64)
    u = torch.randn(2, cu, 4, 4, generator=g, dtype=torch.float64)
    d = torch.randn(2, cd, 4, 4, generator=g, dtype=torch.float64)
    absorbed = unet.UNetBlock(cu + cd, cout, 8, groups, eps=0.0).double()
    absorbed.load_state_dict(block.state_dict())
    with torch.no_grad():
        absorbed.skip.weight[:, cu:] *= rho
        tuned = block(torch.cat([u, rho * d], 1), emb)
        assert torch.allclose(absorbed(torch.cat([u, d], 1), emb), tuned, rtol=1e-10, atol=1e-10)
        if abs(rho - 1) > 0.05:
            assert (tuned - block(torch.cat([u, d], 1), emb)).abs().max() > 1e-6
