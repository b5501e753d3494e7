"""diffmath.upsample_guidance: the convolutional model, kernel embedding, the error functionals against
dense matrices and Monte Carlo, and the end-to-end experiment."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffmath import resolution as res
from diffmath import upsample_guidance as ug
from diffmath.denoisers import exact_eps_model
from diffmath.images import GaussianImage
from diffmath.schedules import EDM, LogSNRCosine, VPCosine


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_convolutional_model_is_exact_at_its_own_size():
    sch = VPCosine()
    law = GaussianImage.power_law(8, 12, 2.5, mean=0.3, channels=2)
    model, exact = ug.convolutional_eps_model(law, sch), exact_eps_model(law, sch)
    x = torch.randn(3, 2, 8, 12, dtype=torch.float64, generator=gen(0))
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(model(x, t), exact(x, t), rtol=1e-12, atol=1e-12)
    big = model(torch.randn(1, 2, 16, 24, dtype=torch.float64, generator=gen(1)), 0.5)
    assert big.shape == (1, 2, 16, 24)


@given(h=st.integers(2, 7), w=st.integers(2, 7), extra=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_embed_kernel_keeps_taps_property(h, w, extra, seed):
    """Embedding keeps the kernel's sum, its symmetry, and is the identity at the same size; convolving a
    delta with the embedded kernel reproduces the taps at their signed offsets."""
    k = torch.randn(h, w, dtype=torch.float64, generator=gen(seed))
    k = 0.5 * (k + torch.roll(torch.flip(k, (0, 1)), (1, 1), (0, 1)))  # symmetric: k(-d) = k(d)
    big = ug.embed_kernel(k, h + extra, w + extra)
    assert abs(big.sum().item() - k.sum().item()) < 1e-12
    assert torch.allclose(big, torch.roll(torch.flip(big, (0, 1)), (1, 1), (0, 1)), atol=1e-14)
    assert torch.equal(ug.embed_kernel(k, h, w), k)
    if extra and h > 2 and w > 2:
        assert big[1, 1] == k[1, 1] and big[-1, -1] == k[-1, -1]


def test_main_term_error_matches_dense():
    """The operator-form error equals the same quantity from dense matrices, and Monte Carlo over x_t."""
    sch = VPCosine()
    law = GaussianImage.power_law(8, 8, 2.0).pinched(2, 0.6)
    t, s = 0.35, 2
    err = ug.main_term_error(law, sch, t, s)
    a, sg = sch.alpha(t).item(), sch.sigma(t).item()
    C = law.covariance_dense()
    D = res.pool_matrix(8, 8, 2)
    Ct = a * a * C + sg * sg * torch.eye(64, dtype=torch.float64)
    B = D @ (sg * torch.linalg.inv(Ct))
    rho = math.sqrt(a * a + sg * sg / 4)
    at, st_ = a / rho, sg / (2 * rho)
    A = 0.5 * st_ * torch.linalg.inv(at * at * D @ C @ D.T + st_ * st_ * torch.eye(16, dtype=torch.float64)) @ D / rho
    dense = math.sqrt((torch.trace((A - B) @ Ct @ (A - B).T) / torch.trace(B @ Ct @ B.T)).item())
    assert abs(err - dense) < 1e-12
    frob = math.sqrt(((A - B) ** 2).sum().item() / (B**2).sum().item())
    assert abs(ug.main_term_error(law, sch, t, s, metric="frobenius") - frob) < 1e-12
    # Monte Carlo with the library's guided main term and exact model on samples of x_t
    guided = ug.UpsampleGuidance(exact_eps_model(law.pool(2), sch), sch, 2)
    x0 = law.sample(20000, generator=gen(2))
    xt = a * x0 + sg * torch.randn(x0.shape, dtype=torch.float64, generator=gen(3))
    diff = (guided.main_term(xt, t) - res.pool(exact_eps_model(law, sch)(xt, t), 2)).pow(2).sum((1, 2, 3))
    ref = res.pool(exact_eps_model(law, sch)(xt, t), 2).pow(2).sum((1, 2, 3))
    ratio = diff.mean() / ref.mean()
    resid = diff - ratio * ref
    se = resid.std() / math.sqrt(len(resid)) / ref.mean()
    assert abs(ratio.item() - err**2) < 5 * se.item()


def test_detail_term_error_matches_monte_carlo():
    """C23.6: the detail-term error of the convolutional low-resolution model, against samples."""
    sch = VPCosine()
    law = GaussianImage.power_law(16, 16, 1.0)
    t = 0.4
    err = ug.detail_term_error(law, sch, t, 2)
    model = ug.convolutional_eps_model(law.pool(2), sch)
    a, sg = sch.alpha(t).item(), sch.sigma(t).item()
    x0 = law.sample(8000, generator=gen(4))
    xt = a * x0 + sg * torch.randn(x0.shape, dtype=torch.float64, generator=gen(5))
    exact = exact_eps_model(law, sch)(xt, t)
    approx = model(xt, t)
    detail = lambda v: v - res.project(v, 2)  # noqa: E731
    num = detail(approx - exact).pow(2).sum((1, 2, 3))
    den = detail(exact).pow(2).sum((1, 2, 3))
    ratio = num.mean() / den.mean()
    resid = num - ratio * den
    se = resid.std() / math.sqrt(len(resid)) / den.mean()
    assert abs(ratio.item() - err**2) < 5 * se.item()


def test_low_resolution_time_outside_a_capped_schedule():
    """LogSNRCosine caps the SNR: near its data end no tau exists; clamp=True takes the nearest end."""
    sch = LogSNRCosine()
    with pytest.raises(ValueError, match="clamp=True"):
        ug.low_resolution_time(sch, 0.0, 2)
    tau, rho = ug.low_resolution_time(sch, 0.0, 2, clamp=True)
    assert tau.item() == 0.0 and abs(rho.item() ** 2 - (sch.alpha(0.0) ** 2 + sch.sigma(0.0) ** 2 / 4).item()) < 1e-15
    tau, rho = ug.low_resolution_time(EDM(), 3.0, 2)
    assert abs(tau.item() - 1.5) < 1e-15 and rho.item() == 1.0  # VE: sigma/s, no power correction


def test_guidance_experiment_is_json():
    r = ug.guidance_experiment({"factors": [2], "train": 8, "nfe": 6, "w": [-1.0, 0.2], "eta": [1.0, 0.5]})
    rows = json.loads(json.dumps(r))["rows"]
    methods = [row["method"] for row in rows]
    assert methods.count("exact") == 1 and methods.count("naive") == 1 and methods.count("guided") == 3
    naive = next(x for x in rows if x["method"] == "naive")
    unguided = next(x for x in rows if x["method"] == "guided" and x["w"] == -1.0)
    assert abs(naive["w2"] - unguided["w2"]) < 1e-10  # w = -1 switches guidance off
    assert next(x for x in rows if x["method"] == "guided" and x["w"] == 0.2 and x["eta"] == 1.0)["cost"] == 1.25


def test_guided_sampler_law_matches_monte_carlo():
    """C23.7: the exact output law of the guided sampler (s-periodic, from s^2 impulses) against sampled
    outputs: the second moments in polyphase-Fourier blocks within 5 SE."""
    from diffmath import samplers
    from diffmath.denoisers import eps_to_denoiser
    from diffmath.output_law import sampler_law, time_grid_sigmas

    sch = LogSNRCosine()
    truth = GaussianImage.power_law(8, 8, 2.0, reference=(4, 4))
    model = ug.convolutional_eps_model(truth.pool(2), sch)
    g = ug.UpsampleGuidance(model, sch, 2, w=0.5)
    out = sampler_law(truth, sch, "euler", 5, s=2, model=g)
    sig = time_grid_sigmas(sch, 5)
    x = truth.diffuse(1.0, sig[0].item()).sample(6000, generator=gen(9))
    y = samplers.sample_euler(eps_to_denoiser(g, sch), x, sig)
    yc = (y - out.mean)[:, 0]
    ps = torch.fft.fft2(yc.reshape(-1, 4, 2, 4, 2).permute(0, 2, 4, 1, 3).reshape(-1, 4, 4, 4), norm="ortho")
    prods = ps[:, :, None] * ps[:, None, :].conj()  # (n, r, r', h, w)
    M = out.blocks().permute(2, 3, 0, 1)
    se_re = prods.real.std(0) / math.sqrt(len(y))
    se_im = prods.imag.std(0) / math.sqrt(len(y))
    z_re = ((prods.real.mean(0) - M.real) / se_re.clamp_min(1e-12)).abs().max()
    mask = se_im > 1e-12
    z_im = ((prods.imag.mean(0) - M.imag)[mask] / se_im[mask]).abs().max()
    assert z_re < 5 and z_im < 5
    # guidance makes the law non-stationary: its blocks are not those of any stationary law
    stationary = GaussianImage.stationary(out.power_spectrum()).blocks(2)
    assert (out.blocks() - stationary).abs().max() > 1e-3


def test_bad_input():
    sch = VPCosine()
    with pytest.raises(ValueError, match="stationary"):
        ug.convolutional_eps_model(GaussianImage.power_law(4, 4, 1.0).pinched(2, 0.0), sch)
    with pytest.raises(ValueError, match="constant mean"):
        ug.convolutional_eps_model(GaussianImage.power_law(4, 4, 1.0, mean=torch.arange(16.0).reshape(4, 4)), sch)
    model = ug.convolutional_eps_model(GaussianImage.power_law(4, 4, 1.0), sch)
    with pytest.raises(ValueError, match="H >= 4"):
        model(torch.zeros(1, 1, 2, 2), 0.5)
    with pytest.raises(ValueError, match="s must"):
        ug.low_resolution_time(sch, 0.5, 0.5)
    with pytest.raises(ValueError, match="metric"):
        ug.main_term_error(GaussianImage.power_law(4, 4, 1.0), sch, 0.5, 2, metric="max")
    with pytest.raises(ValueError, match="at least"):
        ug.embed_kernel(torch.zeros(4, 4), 2, 4)


def test_chapter_sentences_about_the_guidance_experiment():
    """The prose of book/upsample-guidance.md, against the default experiment: upsampling has a far smaller
    pooled distance than the naive model and the worst full one; guidance beats the naive model and
    upsampling at every eta for w = 0.2; the best w of the sweep is a little above 0.2; the exact model
    stays best."""
    from diffmath import experiments

    rows = experiments.result("upsample-guidance")["rows"]
    for s in (2, 4):
        mine = [r for r in rows if r["factor"] == s]
        one = lambda m: next(r for r in mine if r["method"] == m)  # noqa: E731
        guided = [r for r in mine if r["method"] == "guided"]
        assert one("upsampled")["w2_low"] < one("naive")["w2_low"] / 3
        assert one("upsampled")["w2"] > max(one("naive")["w2"], max(r["w2"] for r in guided if r["w"] <= 1.0))
        at02 = [r for r in guided if r["w"] == 0.2]
        assert all(r["w2"] < min(one("naive")["w2"], one("upsampled")["w2"]) for r in at02)
        best = min((r for r in guided if r["eta"] == 1.0), key=lambda r: r["w2"])
        assert 0.2 <= best["w"] <= 1.0
        assert one("exact")["w2"] < min(r["w2"] for r in guided)
        # "near its best w it even matches the pooled image better than upsampling"
        assert min(r["w2_low"] for r in guided) < one("upsampled")["w2_low"]
        # "the first 60% of the steps costs almost nothing; the first 30% visibly more" (w = 0.2)
        by_eta = {r["eta"]: r["w2"] for r in at02}
        assert by_eta[0.6] <= 1.05 * by_eta[1.0] and by_eta[0.3] >= 1.1 * by_eta[1.0]
