"""diffmath.sampler_table's pieces, each against something computed another way: the step plans against the closed
forms of the NFE counts, the grid against EDM's formula, the t-interval against scipy, the Fréchet distance against
the 1-D closed form and scipy's matrix square root, and the ranking/summary helpers on hand-made tables whose
answers are known. (The whole table runs in the slow tier: tests/test_amed.py and tests/test_browser.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from diffmath import samplers as S
from diffmath import sampler_table as T
from diffmath.toys import random_mixture

F64 = torch.float64


@pytest.mark.parametrize("nfe", range(1, 13))
def test_plan_spends_exactly_the_budget(nfe):
    for name, spec in S.SPECS.items():
        if spec.evaluations == 1:
            assert T.plan(name, nfe, False) == (nfe, False)  # one evaluation per step
            assert T.plan(name, nfe, True) == (nfe + 1, True)  # the analytic first step is free
        else:  # two per step on a grid stopping at sigma_min; odd budgets use the analytic first step
            expected = ((nfe + 1) // 2, True) if nfe % 2 else (nfe // 2, False)
            assert T.plan(name, nfe, None) == expected
            assert T.plan(name, nfe, nfe % 2 == 0) is None  # the other parity cannot spend it exactly


@pytest.mark.parametrize("n", [1, 3, 9])
def test_grid_is_edm_rho_grid(n):
    i = np.arange(n + 1)
    top, bottom = T.SIGMA_MAX ** (1 / T.RHO), T.SIGMA_MIN ** (1 / T.RHO)
    expected = (top + i / n * (bottom - top)) ** T.RHO
    assert np.allclose(T.grid(n).numpy(), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("values", [[1.0, 2.0], [0.3, 0.1, 0.25, 0.4], list(np.linspace(-1, 5, 9))])
def test_interval_is_scipy_t_interval(values):
    r = T.interval(values)
    lo, hi = scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert r["mean"] == pytest.approx(0.5 * (lo + hi), rel=1e-14, abs=1e-15)
    assert r["half"] == pytest.approx(0.5 * (hi - lo), rel=1e-12)
    assert r["values"] == pytest.approx(values)
    with pytest.raises(ValueError, match="at least two"):
        T.interval([1.0])


def test_frechet_distance_closed_forms():
    g = torch.Generator().manual_seed(3)
    x = 1.5 + 0.7 * torch.randn(50, 1, generator=g, dtype=F64)
    m, s = x.mean().item(), x.std(unbiased=True).item()
    # 1-D: the W2 distance of two Gaussians is sqrt((m1 - m2)^2 + (s1 - s2)^2)
    got = T.frechet_distance(x, torch.tensor([0.5], dtype=F64), torch.tensor([[4.0]], dtype=F64))
    assert got == pytest.approx(math.sqrt((m - 0.5) ** 2 + (s - 2.0) ** 2), rel=1e-12)
    # d = 3 against scipy's matrix square root (FID's formula)
    y = torch.randn(40, 3, generator=g, dtype=F64) @ torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.8, -0.2], [0.0, 0.0, 1.4]], dtype=F64)
    mean, cov = torch.tensor([0.1, -0.2, 0.3], dtype=F64), torch.tensor([[2.0, 0.5, 0.1], [0.5, 1.0, 0.0], [0.1, 0.0, 0.7]], dtype=F64)
    C = np.cov(y.numpy().T)
    cross = scipy.linalg.sqrtm(scipy.linalg.sqrtm(C) @ cov.numpy() @ scipy.linalg.sqrtm(C)).real
    w2sq = ((y.numpy().mean(0) - mean.numpy()) ** 2).sum() + np.trace(C) + np.trace(cov.numpy()) - 2 * np.trace(cross)
    assert T.frechet_distance(y, mean, cov) == pytest.approx(math.sqrt(w2sq), rel=1e-10)


def test_frechet_column_on_a_small_mixture():
    """Each entry is the interval of the Fréchet distances of the sampler's output from noises seeded 100, 101, ...;
    "exact samples" are draws of the law at sigma_min seeded 200, 201, ... (recomputed here by direct calls)."""
    gm = random_mixture(3, 2, seed=2)
    D = T.edm_denoiser(gm)
    sig = T.grid(4)
    col = T.frechet_column(gm, D, [("euler", 4, "euler", sig, False, None)], seeds=2, points=32, device="cpu")
    end = gm.diffuse(1.0, T.SIGMA_MIN)
    mean, cov = end.mean(), end.covariance()
    vals = []
    for s in range(2):
        x = T.SIGMA_MAX * torch.randn(32, 2, generator=torch.Generator().manual_seed(100 + s), dtype=F64)
        vals.append(T.frechet_distance(S.sample_euler(D, x, sig, require_zero=False), mean, cov))
    assert col["euler"]["4"]["values"] == pytest.approx(vals, rel=1e-12)
    exact = [T.frechet_distance(end.sample(32, torch.Generator().manual_seed(200 + s)), mean, cov) for s in range(2)]
    assert col["exact samples"]["4"]["values"] == pytest.approx(exact, rel=1e-12)


def _results():
    """A hand-made results dict: d=2 at NFE 3 and 5 (plus an NFE 15 column where AMED is absent)."""
    rows = [label for label, _, _ in T.ROWS]
    nfes = [3, 5, 15]
    tab = {lab: {str(n): 1.0 + 0.01 * i + 0.1 * j for j, n in enumerate(nfes)} for i, lab in enumerate(rows)}
    tab["euler"].update({"3": 0.5, "5": 0.9})  # DDIM beats Heun and DPM-2 at NFE 3, not at 5
    tab["heun"].update({"3": 0.8, "5": 0.7, "15": 0.05})
    tab["dpm_solver_2"].update({"3": 0.9, "5": 0.6})
    tab["amed"].update({"3": 0.2, "5": 0.95, "15": None})  # AMED best at 3 (without AFS)
    tab["amed_plugin"].update({"15": None})
    tab["ipndm+afs"].update({"3": 0.1})  # ... but an AFS row is best overall at 3
    tab["ipndm"].update({"5": 0.3})  # iPNDM best at 5
    median = {lab: dict(v) for lab, v in tab.items()}
    median["amed"]["5"] = 0.01  # under the median AMED wins at 5 too
    frechet = {lab: {k: None if v is None else {"mean": v, "half": 0.05} for k, v in r.items()} for lab, r in tab.items()}
    frechet["exact samples"] = {k: {"mean": 0.0, "half": 0.01} for k in ("3", "5", "15")}
    frechet["amed"]["5"] = {"mean": 0.32, "half": 0.05}  # within the intervals of iPNDM's 0.3
    return {"setting": "hand-made", "nfe": nfes, "rows": rows, "tables": {"d=2": tab}, "median": {"d=2": median},
            "frechet": {"d=2": frechet}, "flips": {"d=2": {"heun": {"3": 2}}}, "train_seconds": {"d=2": {"amed": {"3": 1.5, "5": 2.5}}},
            "device": "cpu"}


def test_best_and_compare():
    r = _results()
    plain = [lab for lab, _, afs in T.ROWS if afs is not True]
    assert T.best(r, "d=2", 3) == "ipndm+afs"
    assert T.best(r, "d=2", 3, plain) == "amed"
    assert T.best(r, "d=2", 5, plain) == "ipndm"
    assert T.best(r, "d=2", 5, plain, measure="median") == "amed"
    assert T.best(r, "d=2", 3, measure="frechet") == "ipndm+afs"  # the exact-samples row (0.0) is not a sampler
    assert T.best(r, "d=2", 3, ["nothing"]) is None
    assert T.compare(r, "tables", "d=2", 5, "ipndm", "amed") == "better"
    assert T.compare(r, "tables", "d=2", 5, "amed", "ipndm") == "worse"
    assert T.compare(r, "frechet", "d=2", 5, "amed", "ipndm") == "overlap"  # |0.32 - 0.3| <= 0.05 + 0.05
    assert T.compare(r, "frechet", "d=2", 3, "amed", "dpm_solver_2") == "better"  # |0.2 - 0.9| > 0.1
    assert T.compare(r, "frechet", "d=2", 3, "dpm_solver_2", "amed") == "worse"
    assert T.compare(r, "tables", "d=2", 15, "amed", "ipndm") is None and T.compare(r, "nope", "d=2", 3, "amed", "heun") is None


def test_orderings():
    o = {x["nfe"]: x for x in T.orderings(_results())}
    assert o[3]["ddim<heun,dpm2"] is True and o[5]["ddim<heun,dpm2"] is False and "ddim<heun,dpm2" not in o[15]
    assert o[3]["amed_best"] is True and o[3]["best"] == "amed"
    assert o[5]["amed_best"] is False and o[5]["best"] == "ipndm"
    assert "amed_best" not in o[15]


def test_markdown_marks_winners_and_flips():
    md = T.markdown(_results())
    lines = md.splitlines()
    heun = next(line for line in lines if line.startswith(f"| {T.LABELS['heun']} |"))
    assert "[2]" in heun and heun.count("[") == 1  # two flipped points at NFE 3, none elsewhere
    assert f"**{0.05:.3g}**" in heun  # Heun is best at NFE 15 (AMED absent there)
    afs = next(line for line in lines if line.startswith(f"| {T.LABELS['ipndm']} + AFS |"))
    assert f"**{0.1:.3g}**" in afs
    header = next(line for line in lines if line.startswith("| sampler |"))
    assert header == "| sampler | NFE 3 | NFE 5 | NFE 15 |"
    assert lines[lines.index(header) + 1] == "|---|" + "---:|" * 3
    assert "median per-point error" in md and "Fréchet distance to the exact law" in md
    assert f"{0.32:.3g} ± {0.05:.2g}" in md
    amed = next(line for line in lines if line.startswith(f"| {T.LABELS['amed']} |"))
    assert "| — |" in amed and "**—**" not in md  # a missing entry, never bold
    assert heun.count("**") == 2  # exactly one bold cell (NFE 15) in Heun's RMS row


def test_summary_sentences_are_computed():
    s = T.summary(_results())
    assert "holds at 1 of 2 (mixture, budget) pairs; fails at d=2 NFE 5." in s
    assert f"Heun's error is {0.8 / 0.5:.3g} times DDIM's at NFE 3; Heun is first better at NFE 5." in s
    assert "an AMED sampler has the smallest error at 1 of 2 (mixture, budget) pairs up to NFE 5" in s
    assert f"the best elsewhere: d=2 NFE 5 ({T.LABELS['ipndm']})" in s
    assert f"an AFS row is best at 1 of those pairs: d=2 NFE 3 ({T.LABELS['ipndm']} + AFS)" in s
    assert f"pathwise RMS: {T.LABELS['amed']} beats {T.LABELS['ipndm']} at 1 of 2 of those pairs." in s
    assert f"median error: {T.LABELS['amed']} beats {T.LABELS['ipndm']} at 2 of 2 of those pairs." in s
    assert (f"Fréchet distance: {T.LABELS['amed']} beats {T.LABELS['ipndm']} at 1 of 2 of those pairs "
            "(worse at 0, within each other's 95% intervals at 1).") in s
    assert "AMED training: 2 predictors, 1.5 to 2.5 s each" in s
    r = _results()
    for lab in r["tables"]["d=2"]:
        r["tables"]["d=2"][lab]["15"] = r["tables"]["d=2"][lab]["3"] = None
    r["tables"]["d=2"]["heun"]["5"] = 2.0
    assert "Heun is never better in this table." in T.summary(r)


def test_run_on_a_tiny_setting_without_amed():
    """run() end to end on d = 2 at NFE 3 and 4 (no AMED training: amed_max_nfe = 0): every row spends exactly its budget
    (run raises otherwise), the RMS and median columns are the errors against the same-noise reference recomputed
    here, and the Fréchet column has an interval per run and the exact-samples floor."""
    res = T.run(dims=(2,), nfes=(3, 4), points=8, train_points=4, amed_max_nfe=0, frechet_seeds=2, frechet_points=16)
    tab = res["tables"]["d=2"]
    assert set(tab) == {label for label, _, _ in T.ROWS}
    assert all(tab[n]["3"] is None and tab[n]["4"] is None for n in ("amed", "amed_plugin"))
    gm = random_mixture(T.K, 2, seed=2)
    D = T.edm_denoiser(gm)
    x = T.SIGMA_MAX * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = T.solve_pf_ode(gm.denoise, x, T.SIGMA_MAX, T.SIGMA_MIN, rtol=1e-8, atol=1e-8)
    out = S.sample_heun(D, x, T.grid(2), afs=True, require_zero=False)  # NFE 3: two steps, the first analytic
    assert tab["heun"]["3"] == pytest.approx((out - ref).pow(2).mean().sqrt().item(), rel=1e-9)
    assert res["median"]["d=2"]["heun"]["3"] == pytest.approx((out - ref).pow(2).mean(-1).sqrt().median().item(), rel=1e-9)
    fr = res["frechet"]["d=2"]
    assert len(fr["exact samples"]["3"]["values"]) == 2 and fr["heun"]["4"]["half"] >= 0
    assert res["seconds"]["d=2"] > 0 and res["device"] == "cpu"


def test_orderings_budget_limits():
    """The DDIM ordering is checked up to NFE 5 and AMED's up to NFE 9, the paper's ranges: at NFE 6 and 10 they are absent."""
    r = _results()
    r["nfe"] = [3, 5, 6, 9, 10, 15]
    for lab, row in r["tables"]["d=2"].items():
        for k in ("6", "9", "10"):
            row[k] = 1.0 + 0.01 * len(lab) + 0.001 * int(k)
    o = {x["nfe"]: x for x in T.orderings(r)}
    assert "ddim<heun,dpm2" in o[5] and "ddim<heun,dpm2" not in o[6]
    assert "amed_best" in o[9] and "amed_best" not in o[10]


def test_run_reports_flips_and_frechet_up_to_the_dimension_limit():
    """Mode flips recomputed here (largest responsibility of the law at sigma_min, output against reference); the Fréchet
    column exists when d <= frechet_max_dim (here equal) and the timings are durations."""
    res = T.run(dims=(2,), nfes=(3,), points=8, train_points=4, amed_max_nfe=0, frechet_seeds=2, frechet_points=16, frechet_max_dim=2)
    assert "d=2" in res["frechet"] and 0 < res["seconds"]["d=2"] < 600
    gm = random_mixture(T.K, 2, seed=2)
    end = gm.diffuse(1.0, T.SIGMA_MIN)
    x = T.SIGMA_MAX * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = T.solve_pf_ode(gm.denoise, x, T.SIGMA_MAX, T.SIGMA_MIN, rtol=1e-8, atol=1e-8)
    out = S.sample_euler(T.edm_denoiser(gm), x, T.grid(3), require_zero=False)
    flips = int((end.responsibilities(out).argmax(-1) != end.responsibilities(ref).argmax(-1)).sum())
    assert res["flips"]["d=2"]["euler"]["3"] == flips
    assert 0 < flips < 8  # a 3-step Euler run on 8 points flips some, not all (else the count could not tell)
    res1 = T.run(dims=(2,), nfes=(3,), points=4, train_points=4, amed_max_nfe=0, frechet_seeds=2, frechet_points=8, frechet_max_dim=1)
    assert res1["frechet"] == {}


def test_summary_counts_overlaps():
    r = _results()
    fr = r["frechet"]["d=2"]
    fr["amed"]["3"] = {"mean": fr["ipndm"]["3"]["mean"] + 0.01, "half": 0.05}  # now both pairs overlap
    s = T.summary(r)
    assert (f"Fréchet distance: {T.LABELS['amed']} beats {T.LABELS['ipndm']} at 0 of 2 of those pairs "
            "(worse at 0, within each other's 95% intervals at 2).") in s
