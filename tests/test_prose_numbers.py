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
