"""diffmath.skip_toy and diffmath.skip_sweep: the chapter-24 toy (its law's moments against Monte Carlo, the
stored model's quality against the exact denoiser, training's determinism) and the sample-quality measures
(features, spectrum, modes) against computations written out here."""

import math

import pytest
import torch

from diffmath import montecarlo
from diffmath import skip_sweep as sw
from diffmath import skip_toy
from diffmath.denoisers import CountingDenoiser, edm_denoiser


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def law():
    return skip_toy.toy_law()


def test_law_moments_and_sigma_data_against_monte_carlo(law):
    x = law.sample(20000, generator=gen(0)).reshape(20000, -1)
    mean, cov = skip_toy.law_moments(law)
    assert (montecarlo.mean(x).z(mean) <= montecarlo.Z_BOUND).all()
    # the per-pixel variance, averaged over pixels: sigma_data^2
    centred_sq = ((x - mean) ** 2).mean(1)
    assert montecarlo.mean(centred_sq).z(skip_toy.sigma_data(law) ** 2).item() <= montecarlo.Z_BOUND
    # a few covariance entries (pixel (0,0) with its neighbours and a far pixel)
    for j in (0, 1, 16, 136):
        prod = (x[:, 0] - mean[0]) * (x[:, j] - mean[j])
        assert montecarlo.mean(prod).z(cov[0, j]).item() <= montecarlo.Z_BOUND


def test_toy_law_is_not_gaussian(law):
    """The three components are told apart by the exact responsibilities: the law is a genuine mixture."""
    x = law.sample(3000, generator=gen(1))
    r = law.responsibilities(x)
    assert r.max(-1).values.mean().item() > 0.95


def test_stored_model_meets_the_reported_quality(law):
    """The stored float16 weights, loaded and evaluated afresh against the exact denoiser (independent draws): the gap
    E||D_theta - D*||^2 stays within 6% of the Bayes error at every tested level (the chapter reports <= 4.6%), and
    the MSE decomposes as Bayes error + gap (orthogonality of the posterior mean), within 5 standard errors."""
    D = sw.load_model()
    g = gen(2)
    for s in (0.05, 1.0, 10.0):
        x0 = law.sample(256, generator=g)
        x = x0 + s * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
        exact = law.denoise(x, 1.0, s)
        got = D(x, s)
        gap = (got - exact).flatten(1).pow(2).mean(1)
        bayes = (exact - x0).flatten(1).pow(2).mean(1)
        assert gap.mean() <= 0.06 * bayes.mean(), s
        diff = (got - x0).flatten(1).pow(2).mean(1) - bayes - gap  # = 2 <D - D*, D* - x0>: mean 0
        assert montecarlo.mean(diff).z(0.0).item() <= montecarlo.Z_BOUND


def test_training_is_deterministic_and_reports_progress(capsys):
    cfg = dict(skip_toy.TRAIN_DEFAULTS, steps=2, batch=4, warmup=1)
    a, log_a = skip_toy.train(cfg, progress=True)
    b, _ = skip_toy.train(cfg, progress=False)
    assert skip_toy.encode_weights(a.net) == skip_toy.encode_weights(b.net)
    assert "training the toy U-Net" in capsys.readouterr().err
    assert len(log_a["loss"]) == 0 and log_a["train_seconds"] > 0
    # the weights round-trip through their float16 text
    flat = skip_toy.decode_weights(skip_toy.encode_weights(a.net))
    want = torch.cat([p.detach().reshape(-1) for p in a.net.parameters()])
    assert torch.equal(flat, want.to(torch.float16).to(torch.float32))


def test_model_from_result_uses_the_recorded_configuration():
    from diffmath import experiments

    res = experiments.result("skip-unet")
    D = skip_toy.model_from_result(res)
    assert D.sigma_data == res["sigma_data"] and sum(p.numel() for p in D.net.parameters()) == res["parameters"]
    assert res["config"] == experiments.config_of("skip-unet")


# --- sample quality ------------------------------------------------------------------------------------
def test_features_are_block_means():
    x = torch.randn(3, 1, 16, 16, generator=gen(3), dtype=torch.float64)
    f = sw.features(x)
    assert f.shape == (3, 16)
    assert f[1, 5].item() == pytest.approx(x[1, 0, 4:8, 4:8].mean().item(), rel=1e-14)  # block (1, 1) of the 4x4 grid


def test_exact_power_against_monte_carlo(law):
    x = law.sample(4000, generator=gen(4))[:, 0]
    p = torch.fft.fft2(x, norm="ortho").abs() ** 2
    want = sw.exact_power(law)
    z = montecarlo.mean(p.reshape(4000, -1)).z(want.reshape(-1))
    assert (z <= montecarlo.Z_BOUND).all()


def test_sample_metrics_on_exact_and_wrong_samples(law):
    ref = sw.reference()
    exact = sw.sample_metrics(law.sample(2000, generator=gen(5)), ref)
    assert exact["mode"] <= 0.05 and exact["spectrum"] <= 0.05 and abs(exact["high"]) <= 0.03
    # one component only: the mode error is the total variation 1 - 0.5 (its weight)
    only = sw.sample_metrics(law.components[0].sample(500, generator=gen(6)), ref)
    assert only["mode"] == pytest.approx(0.5, abs=1e-12)
    # shrunk samples: the spectrum error sees the lost power, about |log 0.8^2| in every band the mean does not dominate,
    # and the high bands (where the means have almost no power) read log 0.64 with its sign
    shrunk = sw.sample_metrics(0.8 * law.sample(2000, generator=gen(7)), ref)
    assert shrunk["spectrum"] >= 0.3 and shrunk["fd"] > exact["fd"]
    assert shrunk["high"] == pytest.approx(math.log(0.64), abs=0.03)


def test_steps_and_grids_spend_the_stated_nfe(law):
    cfg = sw.DEFAULTS
    for sampler in cfg["samplers"]:
        for nfe in cfg["nfe"]:
            sig = sw.sigmas_for(cfg, sampler, nfe)
            assert sig[-1] == 0 and sig[0] == cfg["sigma_max"] and sig[-2] == pytest.approx(cfg["sigma_min"])
            D = CountingDenoiser(edm_denoiser(law))
            from diffmath.samplers import get_sampler

            get_sampler(sampler)(D, torch.randn(2, 1, 16, 16, dtype=torch.float64), sig)
            assert D.nfe == nfe, (sampler, nfe)
    with pytest.raises(ValueError, match="exactly"):
        sw.steps_for("heun", 4)


def test_interval_helpers():
    runs = [{"fd": 1.0}, {"fd": 2.0}, {"fd": 3.0}]
    s = sw.summarise(runs)["fd"]
    assert s["mean"] == 2.0 and s["half"] == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3), rel=1e-9)
    p = sw.paired(runs, [{"fd": 0.5}, {"fd": 1.5}, {"fd": 2.5}])["fd"]
    assert p["mean"] == pytest.approx(0.5) and p["half"] == pytest.approx(0.0, abs=1e-12)


def test_report_tables_follow_the_result():
    """diffmath.skip_report's tables against the stored sweep: one row per (sampler, NFE), the bold entry of the FD
    table is each row's minimum, and a paired change is bold exactly when its interval excludes 0."""
    import re

    from diffmath import experiments, skip_report

    res = experiments.result("skip-tuning")
    lines = skip_report.grid_table(res, "fd")
    rows = {(r["sampler"], r["nfe"]) for r in res["grid"]}
    assert len(lines) == 2 + len(rows)
    rhos = sorted({r["rho"] for r in res["grid"]})
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        s, n = cells[0], int(cells[1])
        values = [next(r for r in res["grid"] if (r["sampler"], r["nfe"], r["rho"]) == (s, n, rho))["fd"]["mean"] for rho in rhos]
        bold = [i for i, c in enumerate(cells[2:-1]) if c.startswith("**")]
        assert bold == [values.index(min(values))]
        assert float(re.search(r"[\d.]+", cells[2 + bold[0]]).group(0)) == pytest.approx(min(values), abs=5e-4)
    for line, (s, n) in zip(skip_report.paired_table(res, "fd")[2:], sorted(rows)):
        cells = [c.strip() for c in line.strip("|").split("|")][2:]
        others = [r for r in sorted({r["rho"] for r in res["grid"]}) if r != 1.0]
        for c, rho in zip(cells, others):
            v = next(r for r in res["grid"] if (r["sampler"], r["nfe"], r["rho"]) == (s, n, rho))["vs_rho1"]["fd"]
            assert c.startswith("**") == (abs(v["mean"]) > v["half"])
    text = skip_report.markdown(res)
    assert text.count("| sampler | NFE |") == 4 and "Time windows" in text
