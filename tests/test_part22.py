"""Part 22 (SNR and resolution): property tests and independent checks of diffmath.snr and the shifts."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import resolution as res
from diffmath import output_law, snr
from diffmath import strategies as dst
from diffmath.images import GaussianImage
from diffmath.schedules import LogSNRCosine


def gen(seed):
    return torch.Generator().manual_seed(seed)


@given(size=dst.image_sizes(factors=(2, 3, 4)), seed=st.integers(0, 2**16))
def test_pooled_white_noise_covariance_property(size, seed):
    """C22.1: the covariance of pooled white noise, computed by pooling each pair of basis images, is I/s^2."""
    H, W, s = size
    basis = torch.eye(H * W, dtype=torch.float64).reshape(H * W, H, W)
    pooled = res.pool(basis, s).reshape(H * W, -1)  # row i: D e_i
    cov = pooled.T @ pooled  # sum_i (D e_i)(D e_i)^T = D D^T
    assert torch.allclose(cov, torch.eye(cov.shape[0], dtype=torch.float64) / s**2, rtol=0, atol=1e-15)


@given(size=dst.image_sizes(factors=(2, 4)), seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0))
def test_pooling_gain_bounds_property(size, seed, scale):
    """C22.2: 0 <= g <= s^2 for any image; g = s^2 for block-constant images; scale-free."""
    H, W, s = size
    x = torch.randn(4, H, W, dtype=torch.float64, generator=gen(seed))
    g = res.pooling_gain(x, s)
    assert ((g >= 0) & (g <= s * s * (1 + 1e-12))).all()
    assert torch.allclose(res.pooling_gain(scale * x, s), g, rtol=1e-12)
    block = res.upsample(torch.randn(4, H // s, W // s, dtype=torch.float64, generator=gen(seed + 1)), s)
    assert torch.allclose(res.pooling_gain(block, s), torch.full((4,), float(s * s), dtype=torch.float64), rtol=1e-12)


def test_expected_gain_matches_monte_carlo():
    """C22.2: the expected gain of a power-law field (spectra) against samples (ratio of means, 5 SE)."""
    law = GaussianImage.power_law(16, 16, 3.0, mean=0.0)
    g = snr.expected_pooling_gain(law, 4)
    x = law.sample(3000, generator=gen(7))
    hi, lo = res.signal_power(x).reshape(-1), res.signal_power(res.pool(x, 4)).reshape(-1)
    ratio = 16 * lo.mean() / hi.mean()
    resid = 16 * lo - ratio * hi
    se = resid.std() / math.sqrt(len(resid)) / hi.mean()
    assert abs(ratio - g) <= 5 * se
    assert 1.0 < g < 16.0


@given(a=st.floats(0.001, 0.999), s=st.floats(1.0, 16.0))
def test_aligned_alpha_property(a, s):
    """C22.3: the solution satisfies (5) and VP, has alpha_hi <= alpha_lo for s >= 1, and log-SNR shift -2 log s."""
    ah, sh = snr.aligned_alpha(a, s)
    assert abs(ah.item() ** 2 + sh.item() ** 2 - 1) < 1e-14
    lhs = s * s * ah.item() ** 2 / sh.item() ** 2
    rhs = a * a / (1 - a * a)
    assert abs(lhs - rhs) <= 1e-11 * rhs
    assert ah.item() <= a * (1 + 1e-15)
    assert abs(math.log(ah.item() ** 2 / sh.item() ** 2) - math.log(rhs) + 2 * math.log(s)) < 1e-9


@given(size=dst.image_sizes(factors=(2, 4)), seed=st.integers(0, 2**16))
def test_multiscale_loss_property(size, seed):
    """C22.4: L_s <= L always; equality for block-constant errors."""
    H, W, s = size
    e = torch.randn(3, 1, H, W, dtype=torch.float64, generator=gen(seed))
    z = torch.zeros_like(e)
    assert (snr.multiscale_loss(e, z, s) <= snr.full_loss(e, z) * (1 + 1e-12)).all()
    b = res.project(e, s)
    assert torch.allclose(snr.multiscale_loss(b, z, s), snr.full_loss(b, z), rtol=1e-12)


@given(C=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), p=st.sampled_from([1, 2, 3]))
def test_patchify_is_a_permutation_property(C, h, w, p):
    """C22.5: patchify moves every pixel exactly once; patch (a, b) is the block at (pa, pb)."""
    x = torch.arange(C * h * p * w * p, dtype=torch.float64).reshape(C, h * p, w * p)
    y = snr.patchify(x, p)
    assert y.shape == (h, w, C * p * p)
    assert torch.equal(y.reshape(-1).sort().values, x.reshape(-1))
    assert torch.equal(y[h - 1, w - 1], x[:, (h - 1) * p :, (w - 1) * p :].reshape(-1))


def test_sampler_law_matches_monte_carlo():
    """C22.8: the exact output law of a sampler (impulse responses) against sampled outputs: the power at
    every frequency within 5 SE, the mean within 5 SE."""
    from diffmath import samplers
    from diffmath.denoisers import eps_to_denoiser, exact_eps_model
    from diffmath.schedules import ShiftedSchedule

    law = GaussianImage.power_law(8, 8, 2.0, mean=0.3)
    sch = ShiftedSchedule(LogSNRCosine(), 2.0)
    out = output_law.sampler_law(law, sch, "dpmpp_2m", 6)
    sig = output_law.time_grid_sigmas(sch, 6)
    x = law.diffuse(1.0, sig[0].item()).sample(6000, generator=gen(11))
    y = samplers.sample_dpmpp_2m(eps_to_denoiser(exact_eps_model(law, sch), sch), x, sig)
    power = torch.fft.fft2(y - out.mean, norm="ortho").abs() ** 2  # (n, 1, 8, 8)
    se = power.std(0) / math.sqrt(len(y))
    assert ((power.mean(0)[0] - out.power_spectrum()).abs() / se[0]).max() < 5
    zm = ((y.mean(0) - out.mean) / (y.std(0) / math.sqrt(len(y)))).abs().max()
    assert zm < 5
    # and the discretisation error is real: the output law is not the data law
    assert (out.power_spectrum() / law.eigenvalues - 1).abs().max() > 0.05


def test_shift_experiment_is_json():
    result = snr.shift_experiment({"resolutions": [8, 16], "base": 8, "nfe": [4], "samplers": ["euler"]})
    text = json.dumps(result)
    rows = json.loads(text)["rows"]
    assert {(r["resolution"], r["shifted"]) for r in rows} == {(8, False), (16, False), (16, True)}
    assert all(r["w2"] > 0 and r["w2_base"] > 0 for r in rows)


def test_bad_input():
    with pytest.raises(ValueError, match="alpha_low"):
        snr.aligned_alpha(1.5, 2.0)
    with pytest.raises(ValueError, match="s must"):
        snr.aligned_alpha(0.5, -1.0)
    with pytest.raises(ValueError, match="one shape"):
        snr.full_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="p = 3"):
        snr.patchify(torch.zeros(3, 8, 8), 3)
    with pytest.raises(ValueError, match="one-evaluation"):
        output_law.sampler_law(GaussianImage.power_law(4, 4, 1.0), LogSNRCosine(), "heun", 3)


def test_chapter_sentences_about_the_shift_experiment():
    """The prose of book/snr-resolution.md, against the experiment it describes (default configuration):
    pooled quality constant across resolutions with the shift and growing without it, for both samplers
    at 10 NFE; at full resolution the shift helps Euler and hurts DPM-Solver++(2M) at 64x64."""
    from diffmath import experiments

    rows = experiments.result("resolution-shift")["rows"]

    def get(R, shifted, sampler, key, n=10):
        return next(r[key] for r in rows if r["resolution"] == R and r["shifted"] == (shifted and R != 16)
                    and r["sampler"] == sampler and r["nfe"] == n)

    for sampler in ("euler", "dpmpp_2m"):
        shifted = [get(R, True, sampler, "w2_base") for R in (16, 32, 64)]
        assert max(shifted) / min(shifted) < 1.1
        assert get(64, False, sampler, "w2_base") > 1.4 * get(16, False, sampler, "w2_base")
    assert get(64, True, "euler", "w2") < get(64, False, "euler", "w2")
    assert get(64, True, "dpmpp_2m", "w2") > get(64, False, "dpmpp_2m", "w2")
    assert get(64, True, "euler", "log_spectrum") > get(64, False, "euler", "log_spectrum")
