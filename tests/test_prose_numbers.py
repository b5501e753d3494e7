"""Numbers in the chapters' prose, against what computes them (issue 11, section 4).

Each test reads a chapter, finds the sentence by a regular expression (outside code cells and
``{include}`` blocks), and asserts the number it states against the library, the claim registry,
an experiment's configuration or the code cell that draws the figure the sentence describes. Editing
the prose without the number, or the setting without the prose, fails here. Numbers asserted
elsewhere (the sampler table, the shift and guidance experiments' sentences, the literal bound of
part 16) are not repeated.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
WORDS = {"zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def chapter(name: str) -> str:
    return (BOOK / f"{name}.md").read_text()


def prose(name: str) -> str:
    """The chapter without code cells and include blocks, whitespace collapsed (sentences span lines)."""
    return " ".join(FENCE.sub(" ", chapter(name)).split())


def code(name: str) -> str:
    return "\n".join(m.group(0) for m in FENCE.finditer(chapter(name)) if m.group(0).startswith("```{code-cell}"))


def find(pattern: str, text: str) -> re.Match:
    m = re.search(pattern, text)
    assert m, f"sentence not found (was the prose edited?): {pattern}"
    return m


def claims_of(chapter_name: str):
    from diffmath.claims import all_claims

    return [c for c in all_claims() if c.chapter == chapter_name]


# --- w-distance-bound -----------------------------------------------------------------------------
def test_w_distance_bound_prose_numbers():
    """The running example's data and model, and the count of errors and imprecisions, against
    ``wbound.standard_example`` (which ``part16.running_example`` and C16.4-C16.8 use) and the registry."""
    from diffmath import wbound as wb
    from diffmath.claims import Kind

    text = prose("w-distance-bound")
    num = r"(-?[\d.]+)"
    m = find(rf"data \${num}\\,\\mathcal N\({num},{num}\)\+{num}\\,\\mathcal N\({num},{num}\)\$", text)
    w1, m1, v1, w2, m2, v2 = map(float, m.groups())
    ex = wb.standard_example()
    assert ex.data.weights.tolist() == pytest.approx([w1, w2])
    assert ex.data.means[:, 0].tolist() == pytest.approx([m1, m2])
    assert ex.data.covariances()[:, 0, 0].tolist() == pytest.approx([v1, v2])  # N(mean, variance)
    m = find(rf"mean shifted by \${num}\$ and variance inflated by \${num}\$", text)
    shift, scale = map(float, m.groups())
    assert ex.model_mean - ex.data.mean()[0].item() == pytest.approx(shift)
    assert ex.model_var / ex.data.covariance()[0, 0].item() == pytest.approx(scale)
    find(r"a VP schedule with constant \$\\beta\$", text)
    assert ex.schedule.beta_min == ex.schedule.beta_max
    # "turns up one real error ... and one imprecision": the registry's refuted claims and errata
    m = find(r"turns up (\w+) real errors? .* and (\w+) imprecisions?:", text)
    mine = claims_of("w-distance-bound")
    assert sum(c.kind is Kind.REFUTED for c in mine) == WORDS[m.group(1)]
    assert sum(bool(c.erratum) for c in mine) == WORDS[m.group(2)]


# --- reflow ---------------------------------------------------------------------------------------
def test_reflow_prose_numbers():
    """C17.2's tolerance in standard errors; the rectification figure's covariances and what the
    sentence says about them (equality where they commute, strictly above in between, well below
    the independent coupling); no refuted claim."""
    from diffmath import montecarlo
    from diffmath import reflow as rf
    from diffmath.claims import Kind, part17

    text = prose("reflow")
    m = find(r"compares means and covariances within (\w+) standard errors", text)
    assert WORDS[m.group(1)] == part17.Z == montecarlo.Z_BOUND  # the bound of C17.2's z measurements

    m = find(r"S_1=R\(\\theta\)\\,\\mathrm\{diag\}\(([\d.]+),([\d.]+)\)\\,R\(\\theta\)\^\\top\$ against "
             r"\$S_0=\\mathrm\{diag\}\(([\d.]+),([\d.]+)\)\$", text)
    a1, b1, a0, b0 = map(float, m.groups())
    cells = code("reflow")
    assert f"torch.tensor([{a1!r}, {b1!r}]" in cells and f"torch.tensor([{a0!r}, {b0!r}]" in cells
    zero = torch.zeros(2, dtype=torch.float64)
    S0 = torch.diag(torch.tensor([a0, b0], dtype=torch.float64))
    for th in (0.0, math.pi / 4, 0.6, 1.2, math.pi / 2):
        R = rf.rotation2(th)
        S1 = R @ torch.diag(torch.tensor([a1, b1], dtype=torch.float64)) @ R.T
        r = rf.rectify_gaussians(zero, S0, zero, S1, rtol=1e-10, atol=1e-10)
        if th in (0.0, math.pi / 2):  # the covariances commute: the rectified cost meets W2^2
            assert r.cost == pytest.approx(r.w2_squared, rel=1e-8)
        else:
            assert r.cost > 1.05 * r.w2_squared
        assert r.cost < 0.5 * r.cost_independent  # "always well below the independent coupling"

    find(r"None of the article's results is false", text)
    assert not any(c.kind is Kind.REFUTED for c in claims_of("reflow"))


# --- toy-lab --------------------------------------------------------------------------------------
def test_toy_lab_prose_numbers():
    """The trajectory figure's EDM noise levels against its code cell; the tests' Monte Carlo tolerance."""
    from diffmath import montecarlo

    text = prose("toy-lab")
    start = float(find(r"EDM noise level \$\\sigma/\\alpha = ([\d.]+)\$", text).group(1))
    end = float(find(r"down to \$\\sigma/\\alpha = ([\d.]+)\$", text).group(1))
    m = find(r"s_start, s_end = ([\d.]+), ([\d.]+)", code("toy-lab"))
    assert (start, end) == (float(m.group(1)), float(m.group(2)))
    m = find(r"Monte Carlo averages with (\w+)-standard-error tolerances", text)
    assert WORDS[m.group(1)] == montecarlo.Z_BOUND


# --- upsample-guidance ----------------------------------------------------------------------------
def test_upsample_guidance_prose_numbers():
    """The end-to-end experiment's setting as the prose states it, against its default configuration
    (the sentences about its results are asserted by tests/test_upsample_guidance.py)."""
    from diffmath import experiments

    cfg = experiments.config_of("upsample-guidance")
    text = prose("upsample-guidance")
    m = find(r"the true law is a power-law field \(\$\\alpha=([\d.]+)\$\) at \$(\d+)\^2\$ or \$(\d+)\^2\$", text)
    assert float(m.group(1)) == cfg["alpha"]
    assert [int(m.group(2)), int(m.group(3))] == [cfg["train"] * s for s in cfg["factors"]]
    assert int(find(r"the exact model of its pooled law at \$(\d+)\^2\$", text).group(1)) == cfg["train"]
    m = find(r"All samplers are DDIM with (\d+) evaluations", text)
    assert int(m.group(1)) == cfg["nfe"] and cfg["sampler"] == "euler"  # DDIM is Euler in EDM variables
    assert float(find(r"guidance off, \$w=(-?[\d.]+)\$", text).group(1)) in cfg["w"]
    assert float(find(r"a little above Su's ([\d.]+)", text).group(1)) in cfg["w"]
    m = find(r"Guiding only the first (\d+)% of the steps \(\$\\eta=([\d.]+)\$\)", text)
    assert int(m.group(1)) / 100 == float(m.group(2)) and float(m.group(2)) in cfg["eta"]
    assert int(find(r"guiding only the first (\d+)% costs visibly more", text).group(1)) / 100 in cfg["eta"]


# --- snr-resolution -------------------------------------------------------------------------------
def test_snr_resolution_prose_numbers():
    """The shift experiment's setting against its default configuration; the sample figure's
    resolutions against its code cell; the benchmark's image size."""
    from diffmath import experiments

    cfg = experiments.config_of("resolution-shift")
    text = prose("snr-resolution")
    m = find(r"one continuum power-law field \(\$\\alpha=([\d.]+)\$\) seen at \$(\d+)\^2\$, \$(\d+)\^2\$ and \$(\d+)\^2\$", text)
    assert float(m.group(1)) == cfg["alpha"]
    assert [int(g) for g in m.groups()[1:]] == cfg["resolutions"]
    assert int(find(r"cosine schedule tuned at \$(\d+)\^2\$", text).group(1)) == cfg["base"]
    assert int(find(r"shifted by \$s=R/(\d+)\$", text).group(1)) == cfg["base"]
    find(r"DDIM \(Euler\) and DPM-Solver\+\+\(2M\)", text)
    assert cfg["samplers"] == ["euler", "dpmpp_2m"]

    cells = code("snr-resolution")
    m = find(r"seen with \$(\d+)\^2\$, \$(\d+)\^2\$ and \$(\d+)\^2\$ pixels", text)
    assert f"for j, R in enumerate(({', '.join(m.groups())}))" in cells
    m = find(r"average-pooled to \$(\d+)\\times(\d+)\$ \(bottom\)", text)
    assert m.group(1) == m.group(2) and f"R // {m.group(1)}" in cells
    size = int(find(r"on the same \$(\d+)\\times\1\$ law", text).group(1))
    bench = (ROOT / "benchmarks" / "bench_images.py").read_text()
    assert int(find(r'"--size", type=int, default=(\d+)', bench).group(1)) == size


@pytest.mark.slow
def test_snr_resolution_shift_is_r_over_base():
    """"shifted by s = R/16": the shift each row of the experiment used (reads the cached result)."""
    from diffmath import experiments

    result = experiments.result("resolution-shift")
    base = result["config"]["base"]
    shifted = [r for r in result["rows"] if r["shifted"]]
    assert shifted and all(r["shift"] == pytest.approx(r["resolution"] / base) for r in shifted)


# --- gan-as-ode -----------------------------------------------------------------------------------
def test_gan_as_ode_prose_numbers():
    """The discriminator's sample size in the training figure against the code cell that draws it."""
    m = find(r"The discriminator is fitted on ([\d,]+) fresh samples per step", prose("gan-as-ode"))
    n = int(m.group(1).replace(",", ""))
    cell = find(r"P\.gan_training\([^)]*\bn=([\d_]+)", code("gan-as-ode"))
    assert int(cell.group(1).replace("_", "")) == n


# --- reflow-to-wgan -------------------------------------------------------------------------------
def test_reflow_to_wgan_prose_numbers():
    """"a few hundred Adam steps" (the fitted critic's configuration); "One comes out false"."""
    from diffmath.claims import Kind, part20

    text = prose("reflow-to-wgan")
    find(r"a small tanh critic after a few hundred Adam steps", text)
    assert 100 <= part20.FIT["steps"] < 1000
    m = find(r"(\w+) comes out false", text)
    assert sum(c.kind is Kind.REFUTED for c in claims_of("reflow-to-wgan")) == WORDS[m.group(1).lower()]


# --- score-matching -------------------------------------------------------------------------------
def test_score_matching_prose_numbers():
    """The floor sigma^2 C_t climbs to d at small noise and falls to 0 at large noise; the mixture's floor
    (the chapter's mixture, Monte Carlo as in its figure) never rises above the Gaussian one with the same
    covariance, and is clearly below it at moderate noise."""
    from diffmath import montecarlo
    from diffmath import score_matching as smod
    from diffmath.toys import random_mixture

    text = prose("score-matching")
    find(r"the floor climbs to the dimension \$d\$ at small noise and falls to 0 at large noise", text)
    find(r"The mixture's floor never rises above the Gaussian one, and at moderate noise it sits clearly below it", text)
    find(r"At small and large noise the two curves meet, at \$d\$ and at 0", text)
    assert "random_mixture(3, 2, seed=18)" in code("score-matching")

    gm = random_mixture(3, 2, seed=18)
    cov = gm.covariance()
    d = gm.dim

    def floors(s):
        xt = gm.diffuse(1.0, s).sample(20_000, generator=torch.Generator().manual_seed(3))
        mix = montecarlo.mean(s**2 * smod.gap_per_sample(gm, 1.0, s, xt))
        return mix.value.item(), mix.se.item(), (s**2 * smod.gap_gaussian(cov, 1.0, s)).item()

    for s in (1e-3, 1e3):  # the limits d and 0
        mix, se, gauss = floors(s)
        target = d if s < 1 else 0.0
        assert abs(gauss - target) < 1e-4 * d and abs(mix - target) < 1e-4 * d
    for s in np.logspace(-2, 1, 7):  # the figure's range
        mix, se, gauss = floors(float(s))
        assert mix <= gauss + montecarlo.Z_BOUND * se
    mix, se, gauss = floors(1.0)
    assert mix < gauss - 10 * se and gauss - mix > 0.01 * d


# --- multimodal-lossless-input --------------------------------------------------------------------
def test_multimodal_prose_numbers():
    """The essay's arithmetic as the prose restates it, and the toy law's budget, against diffmath.information and
    the chapter's configuration (essay_multimodal.TOY)."""
    from diffmath import information as info
    from diffmath.claims import essay_multimodal as mm

    text = prose("multimodal-lossless-input")
    ids = find(r"claims carry the catalogue's ids M\.(\d)–M\.(\d)", text)
    assert [f"M.{ids.group(1)}", f"M.{ids.group(2)}"] == [claims_of("multimodal-lossless-input")[k].id for k in (0, -1)]
    assert int(find(r"a sentence over a vocabulary of (\d+)", text).group(1)) == 2**8
    assert int(find(r"a factor of (\d+) per side", text).group(1)) == 4  # M.2's f
    assert int(find(r"rounds it down to (\d+) bits per subpixel", text).group(1)) == mm.ARTICLE_BITS_PER_DIM
    m = find(r"at \$(\d+)\\times(\d+)\\times(\d+)\$ a token of a (\d+)-long sequence stands for (\d+) subpixels, "
             r"one of a (\d+)-long sequence for (\d+)", text)
    H, W, C, L1, k1, L2, k2 = map(int, m.groups())
    assert (C, H, W) == mm.IMAGENET64 and (L1, L2) == mm.TOKEN_LENGTHS
    assert (k1, k2) == (H * W * C // L1, H * W * C // L2) and H * W * C % L1 == 0

    # the toy's configuration
    toy = mm.TOY
    m = find(r"at ImageNet-64's size, \$(\d+)\\times(\d+)\\times(\d+)\$, with a pixel standard deviation of (\d+) grey levels", text)
    assert [int(g) for g in m.groups()] == [toy["size"], toy["size"], toy["channels"], toy["pixel_std"]]
    assert float(find(r"\(\$\\alpha=(\d+)\$ for natural images\)", text).group(1)) == toy["alpha"]
    assert float(find(r"bins of \$\\Delta=(\d+)\$ grey level", text).group(1)) == toy["delta"]
    assert "mm.toy_law(alpha=alpha)" in code("multimodal-lossless-input")

    # the table's sentences
    table = {a: info.quantised_entropy_bits(mm.toy_law(alpha=a), toy["delta"]) for a in (0.0, 1.0, 2.0, 3.0)}
    find(r"the bin is at least ten times smaller than the conditional standard deviation", text)
    assert all(q.conditional_std >= 10 * toy["delta"] for q in table.values())
    find(r"the two numbers agree to within a thousandth of a bit per subpixel", text)
    assert all(0 < q.upper_per_dim - q.lower_per_dim < 1e-3 for q in table.values())
    q = table[toy["alpha"]]
    m = find(r"At \$\\alpha=2\$ the toy carries about ([\d.]+) bits per subpixel, ([\d,]+) bits in all: (\d+)% of the raw "
             r"8-bit budget and ([\d.]+) times the essay's ([\d,]+)\.", text)
    per_dim, total, share, times, essay = m.groups()
    raw = 8 * q.dim
    essay_bits = int(essay.replace(",", ""))
    assert essay_bits == q.dim * mm.ARTICLE_BITS_PER_DIM == 36864
    assert round(q.upper_per_dim, 1) == float(per_dim) and round(q.lower_per_dim, 1) == float(per_dim)
    assert round(q.upper, -3) == int(total.replace(",", "")) == round(q.lower, -3)
    assert round(100 * q.upper / raw) == int(share)
    assert round(q.upper / essay_bits, 1) == float(times)
    m = find(r"in (\d+) tokens, each token must carry about (\d+) bits \(\$V\\ge2\^\{(\d+)\}\$\); in (\d+) tokens, about (\d+) "
             r"\(\$V\\ge2\^\{(\d+)\}\$\)", text)
    L1, b1, e1, L2, b2, e2 = map(int, m.groups())
    assert (L1, L2) == mm.TOKEN_LENGTHS and b1 == e1 and b2 == e2
    for L, b in ((L1, b1), (L2, b2)):
        assert round(q.lower / L) == round(q.upper / L) == b
        assert math.log2(info.min_vocabulary(round(q.upper), L)) == pytest.approx(b, abs=0.5)

    # what the toy shows
    law = mm.toy_law()
    find(r"Halving \$\\Delta\$ adds exactly one bit per subpixel to the lower bound", text)
    assert info.quantised_entropy_bits(law, 0.5).lower_per_dim - q.lower_per_dim == pytest.approx(1.0, abs=1e-12)
    m = find(r"coarsening the image to (\d+) grey levels \(\$\\Delta=(\d+)\$\) saves only (\d+) bits per subpixel", text)
    levels, delta, saved = map(int, m.groups())
    coarse = info.quantised_entropy_bits(law, delta)
    assert levels * delta == 256 and coarse.resolved
    assert round(q.upper_per_dim - coarse.upper_per_dim) == saved == math.log2(delta)
    m = find(r"The measured ([\d.]+) bits per subpixel of ImageNet-64 lies below the toy's curve over the whole range plotted", text)
    assert float(m.group(1)) == float(mm.MEASURED_BITS_PER_DIM)
    assert "alphas = np.linspace(0.0, 4.0, 17)" in code("multimodal-lossless-input")
    assert min(info.quantised_entropy_bits(mm.toy_law(alpha=float(a)), 1.0).lower_per_dim for a in np.linspace(0, 4, 17)) > 3.44
    m = find(r"Whether a subpixel is worth (\d+) bits or (\d+), a token that stands for (\d+) or (\d+) subpixels must carry tens "
             r"to hundreds of bits; the codebooks in use are nowhere near \$2\^\{(\d+)\}\$ entries \(the essay's point\), let "
             r"alone \$2\^\{(\d+)\}\$", text)
    lo, hi, k1, k2, e_article, e_toy = map(int, m.groups())
    assert lo == mm.ARTICLE_BITS_PER_DIM and hi == math.floor(q.upper_per_dim) and (k1, k2) == (12, 48)
    assert 10 <= lo * k1 and hi * k2 < 1000  # "tens to hundreds"
    assert e_article == info.min_vocabulary_log2(36864, 1024) and e_toy == round(q.upper / 1024)


# --- skip-tuning ----------------------------------------------------------------------------------
def test_skip_tuning_prose_numbers():
    """The toy network's shape and the sweep's setting as the prose states them, against the stored model and the
    sweep's default configuration (the findings are asserted by claims C24.3-C24.7)."""
    from diffmath import experiments, skip_sweep
    from diffmath.skip_tuning import straddling_groups

    text = prose("skip-tuning")
    net = skip_sweep.load_model().net
    m = find(r"(\w+) resolutions, (\w+) long skips", text)
    assert WORDS.get(m.group(1), m.group(1)) == len(net.channel_mult)
    assert {"six": 6}[m.group(2)] == net.n_skips
    m = find(r"On the trained toy, (\w+) of the (\w+) decoder blocks have a straddling group \(of (\w+)\)", text)
    popped = list(reversed(net.skip_channels))
    straddle = sum(bool(straddling_groups(b.norm0.num_channels - c, c, b.norm0.num_groups)) for b, c in zip(net.dec, popped))
    assert (WORDS[m.group(1)], {"six": 6}[m.group(2)], WORDS[m.group(3)]) == (straddle, len(net.dec), net.dec[0].norm0.num_groups)
    cfg = experiments.config_of("skip-tuning")
    m = find(r"at (\d+), (\d+) and (\d+) evaluations on EDM's grid \(\$\\sigma\$ from (\d+) to ([\d.]+), then 0\)", text)
    assert [int(g) for g in m.groups()[:3]] == cfg["nfe"]
    assert (float(m.group(4)), float(m.group(5))) == (cfg["sigma_max"], cfg["sigma_min"])
    m = find(r"\\rho_\{bottom\}\\in\\\{([\d.,]+)\\\}", text)
    assert [float(v) for v in m.group(1).split(",")] == cfg["rho_bottom"]
    m = find(r"applies \$\\rho_\{bottom\}=([\d.]+)\$ inside one of (\w+) windows", text)
    assert float(m.group(1)) == cfg["window_rho"] and WORDS[m.group(2)] == len(cfg["window_edges"]) - 1
    m = find(r"\(edges ([\d., ]+) and ([\d.]+); the last holds the (\w+) highest levels of the grid\)", text)
    assert [float(v) for v in m.group(1).split(", ")] + [float(m.group(2))] == cfg["window_edges"]
    grid = skip_sweep.sigmas_for(cfg, cfg["window_sampler"], cfg["window_nfe"]).tolist()
    assert WORDS[m.group(3)] == sum(1 for v in grid if v >= cfg["window_edges"][-2])
