"""diffmath.unet: EDM's preconditioning against its derivation (unit variances, the effective target), the
U-Net's skip stack (push and pop order, the scaled tensors), the denoiser's contract, and the weights' round trip."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import unet


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small_net(seed=0, **kw):
    torch.manual_seed(seed)
    return unet.UNet(**{"channels": 8, "channel_mult": (1, 2), "groups": 2, **kw})


# --- preconditioning ---------------------------------------------------------------------------------
def test_preconditioning_derived_from_unit_variance():
    """Karras et al.'s Appendix B.6 derives c_in, c_out, c_skip from three requirements; solve them with sympy and
    compare with the library's numbers: Var(c_in x) = 1, Var(F target) = 1 with c_skip minimising it."""
    s, d, c_in, c_skip = sp.symbols("sigma sigma_d c_in c_skip", positive=True)
    sol_in = sp.solve(sp.Eq(c_in**2 * (s**2 + d**2), 1), c_in)[0]
    # target F = (x0 - c_skip (x0 + s n)) / c_out; its variance times c_out^2 is minimised over c_skip
    var_num = (1 - c_skip) ** 2 * d**2 + c_skip**2 * s**2
    sol_skip = sp.solve(sp.diff(var_num, c_skip), c_skip)[0]
    sol_out = sp.sqrt(var_num.subs(c_skip, sol_skip))
    for sv, dv in ((0.002, 0.5), (0.3, 0.87), (1.0, 0.87), (80.0, 0.5)):
        got = unet.edm_preconditioning(torch.tensor([sv], dtype=torch.float64), dv)
        want = [float(e.subs({s: sv, d: dv})) for e in (sol_skip, sol_out, sol_in)] + [math.log(sv) / 4]
        for g, w in zip(got, want):
            assert g.item() == pytest.approx(w, rel=1e-14)
        # the loss weight makes the effective target's weight 1: lambda c_out^2 = 1
        assert (unet.edm_loss_weight(torch.tensor(sv, dtype=torch.float64), dv) * got[1] ** 2).item() == pytest.approx(1, rel=1e-14)


@given(st.floats(1e-3, 100.0), st.floats(0.1, 2.0))
def test_preconditioned_target_has_unit_variance_property(sigma, sd):
    """Monte Carlo: with x0 ~ N(0, sd^2) the network's input c_in x and its target (x0 - c_skip x)/c_out both have
    variance 1 (within 5 standard errors of the sample variance)."""
    g = gen(int(sigma * 1000) % 9973)
    n = 20000
    x0 = sd * torch.randn(n, generator=g, dtype=torch.float64)
    x = x0 + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    c_skip, c_out, c_in, _ = unet.edm_preconditioning(torch.tensor(sigma, dtype=torch.float64), sd)
    for v in (c_in * x, (x0 - c_skip * x) / c_out):
        var = v.var().item()
        se = math.sqrt(2 / (n - 1)) * var  # Gaussian: sd of the sample variance
        assert abs(var - 1) <= 5 * se


# --- the skip stack ------------------------------------------------------------------------------------
def test_skip_stack_push_and_pop_order():
    net = small_net()
    assert net.skip_names == ("conv_in", "enc0.0", "down1", "enc1.0")
    record = []
    x = torch.randn(3, 1, 8, 8, generator=gen(1))
    net(x, torch.zeros(3), record=record)
    assert [name for name, _, _ in record] == list(reversed(net.skip_names))  # the bottom skip is popped first
    assert [d.shape[1] for _, _, d in record] == list(reversed(net.skip_channels))
    assert record[-1][2].shape[-1] == 8 and record[0][2].shape[-1] == 4  # the top skip is at full resolution


def test_skip_scales_multiply_the_popped_tensor_in_pop_order():
    net = small_net()
    x = torch.randn(2, 1, 8, 8, generator=gen(2))
    plain = []
    net(x, torch.zeros(2), record=plain)
    # scaling changes the up-path u of later blocks, so compare the first popped skip exactly and every skip
    # against an independent forward with only that skip scaled
    for j in range(net.n_skips):
        rho = [1.0] * net.n_skips
        rho[j] = 0.3
        rec = []
        net(x, torch.zeros(2), skip_scales=rho, record=rec)
        assert torch.allclose(rec[j][2], 0.3 * plain[j][2], rtol=1e-6, atol=0)
        assert torch.equal(rec[j][1], plain[j][1])  # the up-path before this block is untouched
    # a per-image rho: image 0 scaled, image 1 not
    rec = []
    net(x, torch.zeros(2), skip_scales=[torch.tensor([0.5, 1.0])] + [1.0] * (net.n_skips - 1), record=rec)
    assert torch.allclose(rec[0][2][0], 0.5 * plain[0][2][0]) and torch.equal(rec[0][2][1], plain[0][2][1])
    with pytest.raises(ValueError, match="skip_scales must have"):
        net(x, torch.zeros(2), skip_scales=[1.0])


def test_rho_one_is_the_plain_network():
    net = small_net()
    x = torch.randn(2, 1, 8, 8, generator=gen(3))
    assert torch.equal(net(x, torch.zeros(2), skip_scales=[1.0] * net.n_skips), net(x, torch.zeros(2)))


def test_smallest_network_and_bad_sizes():
    net = unet.UNet(channels=2, channel_mult=(1,), groups=1)  # two channels, one resolution: still a U-Net
    assert net.n_skips == 2 and net(torch.randn(2, 1, 4, 4), torch.zeros(2)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="even integer"):  # one channel passes the size check; the embedding refuses it
        unet.UNet(channels=1, channel_mult=(1,), groups=1)
    for kw in ({"channels": 0}, {"blocks": 0}, {"channel_mult": ()}, {"channel_mult": (1, 0)}):
        with pytest.raises(ValueError, match=">= 1"):
            unet.UNet(**{"groups": 1, **kw})


def test_block_groups_must_divide_channels():
    with pytest.raises(ValueError, match="not divisible"):
        unet.UNetBlock(6, 8, 16, groups=4)
    with pytest.raises(ValueError, match="even integer"):
        unet.PositionalEmbedding(7)


# --- the preconditioned denoiser ----------------------------------------------------------------------
def test_denoiser_is_the_preconditioned_network():
    """D = c_skip x + c_out F(c_in x, c_noise), with the coefficients written out here from Karras et al.'s Table 1."""
    net = small_net()
    D = unet.EDMDenoiser(net, 0.7)
    x = torch.randn(3, 1, 8, 8, generator=gen(4), dtype=torch.float64)
    sigma = torch.tensor([0.01, 1.0, 30.0])
    got = D(x, sigma)
    assert got.dtype == torch.float64
    for i, s in enumerate(sigma.tolist()):
        xi = x[i: i + 1].to(torch.float32)
        F = net(xi / math.sqrt(s * s + 0.49), torch.tensor([math.log(s) / 4]))
        want = 0.49 / (s * s + 0.49) * xi + s * 0.7 / math.sqrt(s * s + 0.49) * F
        assert torch.allclose(got[i: i + 1].to(torch.float32), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(D(x, 1.0), D(x, torch.ones(3)))


def test_denoiser_rejects_bad_input():
    D = unet.EDMDenoiser(small_net(), 0.5)
    x = torch.randn(2, 1, 8, 8)
    for bad, match in ((torch.randn(2, 8, 8), "shape"), (torch.ones(2, 1, 8, 8, dtype=torch.long), "floating")):
        with pytest.raises(ValueError, match=match):
            D(bad, 1.0)
    with pytest.raises(ValueError, match="> 0"):
        D(x, 0.0)
    with pytest.raises(ValueError, match=r"\(batch,\)"):
        D(x, torch.ones(3))
    with pytest.raises(ValueError, match="sigma_data"):
        unet.EDMDenoiser(small_net(), 0.0)


def test_loss_is_the_weighted_denoising_error():
    """edm_loss against its formula written out with the denoiser's output (weight (s^2 + sd^2)/(s sd)^2)."""
    D = unet.EDMDenoiser(small_net(), 0.5)
    x0 = torch.randn(4, 1, 8, 8, generator=gen(5))
    n = torch.randn(4, 1, 8, 8, generator=gen(6))
    sigma = torch.tensor([0.1, 0.5, 1.0, 5.0])
    out = D(x0 + sigma.reshape(-1, 1, 1, 1) * n, sigma)
    per = ((out - x0) ** 2).flatten(1).mean(1) * (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    assert unet.edm_loss(D, x0, sigma, n).item() == pytest.approx(per.mean().item(), rel=1e-5)


def test_load_flat_round_trip_and_size_check():
    a, b = small_net(0), small_net(1)
    flat = torch.cat([p.detach().reshape(-1) for p in a.parameters()])
    unet.load_flat(b, flat)
    x = torch.randn(2, 1, 8, 8, generator=gen(7))
    assert torch.equal(a(x, torch.zeros(2)), b(x, torch.zeros(2)))
    assert unet.count_parameters(a) == flat.numel()
    with pytest.raises(ValueError, match="parameters"):
        unet.load_flat(b, flat[:-1])
