"""diffmath.sampler_bench: the book's table of the ecosystem's samplers.

A small run has the shape the chapter reads; the floor of the final denoising step is checked against the Gaussian
closed form; the chapter's statements about the stored table are asserted on the stored result (they are measured,
so a re-measurement that changes them fails here and the prose must change with it)."""

import math

import pytest
import torch

pytest.importorskip("diffusers")

from diffmath import experiments  # noqa: E402
from diffmath import sampler_bench as SB  # noqa: E402
from diffmath.flows import gaussian_flow  # noqa: E402
from diffmath.mixture import GaussianMixture  # noqa: E402


def test_a_small_run_and_its_tables():
    cfg = dict(SB.DEFAULTS, laws=["mixture-2d"], samplers=["diffusers:ddim", "diffmath:euler", "diffusers:ddpm"],
               budgets=[4, 8], seeds=1, points=8, order_budgets=2)
    res = SB.run(cfg, progress=False)
    table = res["laws"]["mixture-2d"]
    assert set(table) == set(cfg["samplers"]) and table["diffusers:ddpm"]["stochastic"]
    assert table["diffmath:euler"]["order_last"] is not None and table["diffusers:ddpm"]["order_last"] is None
    md = SB.markdown(res)
    assert md.index("`diffusers:ddim`") < md.index("`diffmath:euler`") < md.index("stochastic") < md.index("`diffusers:ddpm`")
    assert res["final_jump"]["mixture-2d"] > 0


def test_final_jump_error_on_a_gaussian():
    """For one Gaussian N(mu, C) the flow is linear (flows.gaussian_flow) and the denoiser is mu + C (C + s^2)^-1 (x - mu):
    the floor computed by the module equals the closed form."""
    mu = torch.tensor([0.5, -1.0], dtype=torch.float64)
    C = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    law = GaussianMixture(torch.ones(1, dtype=torch.float64), mu[None], C[None])
    s = 0.05
    errs = []
    for k in range(2):
        z = torch.randn(16, 2, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        x = gaussian_flow(mu, C, 80 * z, 1.0, 80.0, 1.0, s)
        end = gaussian_flow(mu, C, 80 * z, 1.0, 80.0, 1.0, 0.0)
        D = mu + (x - mu) @ torch.linalg.solve(C + s * s * torch.eye(2, dtype=torch.float64), C)
        errs.append((D - end).pow(2).mean().sqrt().item())
    assert SB.final_jump_error(law, s, 2, 16) == pytest.approx(sum(errs) / 2, rel=1e-7)
    assert SB.SD_SIGMA_MIN == pytest.approx(math.sqrt(0.00085 / (1 - 0.00085)))


# ------------------------------------------------------------------------------------------------
# the chapter's statements, on the stored result
# ------------------------------------------------------------------------------------------------

TERMINAL = ["diffusers:dpm++2m", "diffusers:dpm++3m", "diffusers:dpm++2s", "diffusers:dpm++3s", "diffusers:unipc"]


@pytest.fixture(scope="module")
def stored():
    return experiments.result("sampler-bench")


def _rows(res, law, name):
    return res["laws"][law][name]["rows"]


def test_the_last_step_decides_the_order(stored):
    """Mixture: the five terminal-jump schedulers measure first order, the same 2M algorithm on EDM's grid second;
    c sigma_last^2 predicts their error at the largest budget (mixture: all five; low-rank: all but 2S); with
    Karras sigmas the error stops at the floor; LMS ends far below it."""
    c = {law: stored["final_jump"][law] / SB.SD_SIGMA_MIN**2 for law in stored["laws"]}
    assert 0.05 < c["lowrank-16d"] / c["mixture-2d"] < 0.15  # "ten times smaller"
    mix = stored["laws"]["mixture-2d"]
    assert all(mix[n]["order_last"] < 1.2 for n in TERMINAL) and mix["diffmath:dpmpp_2m"]["order_last"] > 1.8
    for law, names in (("mixture-2d", TERMINAL), ("lowrank-16d", [n for n in TERMINAL if n != "diffusers:dpm++2s"])):
        for n in names:
            last = _rows(stored, law, n)[-1]
            assert last["sigma_end"] == 0
            ratio = last["error"] / (c[law] * last["sigma_last"] ** 2)
            assert 0.7 < ratio < 1.35, (law, n, ratio)
    low = stored["laws"]["lowrank-16d"]
    dpmpp = [low[n]["order_last"] for n in TERMINAL if n != "diffusers:unipc"]
    assert (round(min(dpmpp), 1), round(max(dpmpp), 1)) == (1.3, 2.9)  # "between 1.3 and 2.9"
    assert round(low["diffusers:unipc"]["order_last"], 1) == 1.0
    karras = _rows(stored, "mixture-2d", "diffusers:dpm++2m-karras")
    assert karras[-1]["error"] >= karras[-2]["error"] and 0.7 < karras[-1]["error"] / stored["final_jump"]["mixture-2d"] < 1.3
    for law in stored["laws"]:
        lms = stored["laws"][law]["diffusers:lms"]
        assert lms["order_last"] > 2.5 and lms["rows"][-1]["error"] < stored["final_jump"][law]


def test_flips_nfe_accounting_and_levels(stored):
    ddim = _rows(stored, "lowrank-16d", "diffusers:ddim")
    errs = sorted(ddim[-1]["errors"])
    assert 1 <= ddim[-1]["flips"] <= 3 and round(errs[-1], 2) == 0.14 and errs[-2] < 0.01  # "0.14 ... below 0.01"
    assert ddim[-1]["error"] > 0.8 * ddim[-2]["error"]  # stalled
    assert 1 <= _rows(stored, "lowrank-16d", "diffmath:euler")[-1]["flips"] <= 3
    pndm = stored["laws"]["mixture-2d"]["diffusers:pndm"]
    assert pndm["skipped"] == [5, 10] and all(r["nfe"] == r["steps"] + 9 for r in pndm["rows"])
    assert all(r["sigma_last"] == r["sigma_end"] for r in pndm["rows"])  # the last step has length zero
    for law in stored["laws"]:
        for name, r in stored["laws"][law].items():
            end = r["rows"][0]["sigma_end"]
            above = name in ("diffusers:pndm", "diffusers:pndm-plms", "diffusers:deis", "diffusers:dpm2m", "diffusers:dpm3m")
            assert (end == pytest.approx(SB.SD_SIGMA_MIN, rel=1e-4)) if above else end == 0, (law, name, end)
        starts = {n: stored["laws"][law][n]["rows"][0]["sigma_start"] for n in ("diffusers:ddim", "diffusers:euler")}
        assert starts["diffusers:ddim"] == pytest.approx(5.11, abs=0.01) and starts["diffusers:euler"] == pytest.approx(14.6, abs=0.02)
        ddpm, euler_a = (_rows(stored, law, n)[0]["frechet_flow"] for n in ("diffusers:ddpm", "diffusers:euler-a"))
        assert ddpm > euler_a
    for name in ("diffusers:heun", "diffusers:dpm++sde"):
        assert all(r["nfe"] == 2 * r["steps"] - 1 for r in _rows(stored, "mixture-2d", name))
