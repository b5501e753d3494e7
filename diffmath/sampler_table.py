r"""The error-vs-NFE table of every sampler on exact Gaussian mixtures (article 21, claim C21.12).

Setting (the AMED paper's protocol, Zhou et al. 2024, on toys whose ODE we can solve exactly):
mixtures ``random_mixture(K, d, seed=d)`` with K = 8 full-covariance components, float64; starting
noises :math:`x_T = \sigma_{\max}\varepsilon` (seed 0 for evaluation, seed 1 for AMED's training set);
EDM's :math:`\rho = 7` grid from :math:`\sigma_{\max} = 80` to :math:`\sigma_{\min} = 0.002`, where
sampling stops (diff-sampler's convention: no final denoising call). The reference is
:func:`diffmath.flows.solve_pf_ode` from the same noise to :math:`\sigma_{\min}`; the error is the RMS
over points and coordinates (per coordinate, so different d compare): a *pathwise* error against the
same-noise reference, not the AMED paper's FID on images. Next to it, the number of points that end in
another mixture component than the reference (a *mode flip*: one flipped point moves the RMS error by
about its distance between components over the square root of the number of points, which is what the
plateaus near 0.5 at d = 256 are). Two measures that a flip does not dominate go with it:

* the *median* over points of each point's error (RMS over its coordinates), same runs;
* a *distributional* one, closest in spirit to FID: the Fréchet distance (the W2 distance between
  Gaussians with the same means and covariances, :func:`diffmath.wasserstein.bures_w2`) between the
  samples' mean and covariance and the exact law's at sigma_min (the mixture's, in closed form), for
  d <= ``frechet_max_dim`` only (a 256-dimensional covariance needs far more points), over
  ``frechet_seeds`` independent sets of ``frechet_points`` noises, reported as the mean with a 95%
  Student-t interval. The row "exact samples" is the same statistic for exact draws from the law:
  the floor that finite samples set.

Steps for a budget of NFE evaluations (:func:`diffmath.samplers.nfe` with ``to_zero=False``):
one-evaluation samplers (Euler = DDIM, DPM-Solver++(2M), iPNDM and its variable-step form) take
NFE steps (``+afs`` rows: NFE + 1 steps, the first analytic); two-evaluation samplers (Heun,
DPM-Solver-2, AMED-Solver, AMED-Plugin) take NFE/2 steps at even NFE and (NFE + 1)/2 steps with the
analytic first step at odd NFE — as the paper does for its odd NFEs 3, 5, 7, 9.

AMED's predictors (:class:`diffmath.amed.AMEDPredictor`, 259 parameters) are distilled per mixture
and per NFE (a predictor depends on the grid) with :func:`diffmath.amed.distill`: ``train_points``
noises, 100 Adam iterations at learning rate 0.01, predictor seed 0; AMED-Solver with teacher forcing
(the paper's choice for single-step students), the plugin through its whole rollout. Only NFE
:math:`\le` ``amed_max_nfe`` (default 9, the paper's range) is trained. Every training time is recorded.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import scipy.stats
import torch

from diffmath import amed
from diffmath import samplers as S
from diffmath.denoisers import edm_denoiser
from diffmath.flows import solve_pf_ode
from diffmath.schedules import edm_rho_grid
from diffmath.toys import random_mixture
from diffmath.wasserstein import bures_w2

SIGMA_MAX, SIGMA_MIN, RHO, K = 80.0, 0.002, 7.0, 8
#: the table's configuration as the experiment registry keys it (diffmath.experiments, "sampler-table")
DEFAULTS = {"dims": [2, 16, 256], "nfes": [3, 5, 7, 9, 15, 25], "points": 64, "train_points": 64, "amed_max_nfe": 9, "ref_tol": 1e-8,
            "frechet_max_dim": 16, "frechet_seeds": 5, "frechet_points": 256}
ONE_EVAL = tuple(n for n, spec in S.SPECS.items() if spec.evaluations == 1)  # amed is imported: its samplers are in SPECS
TWO_EVAL = tuple(n for n, spec in S.SPECS.items() if spec.evaluations == 2)
#: (label, sampler, uses afs on every budget): the table's rows, in order
ROWS = tuple((n, n, False) for n in ONE_EVAL) + tuple((f"{n}+afs", n, True) for n in ONE_EVAL) + tuple((n, n, None) for n in TWO_EVAL)
LABELS = {n: spec.label for n, spec in S.SPECS.items()}


def plan(sampler: str, nfe: int, afs: Optional[bool]) -> Optional[tuple[int, bool]]:
    """(steps, afs) spending exactly ``nfe`` evaluations on a grid stopping at sigma_min, or None.

    ``afs=None`` (two-evaluation rows): the analytic first step exactly when ``nfe`` is odd.
    """
    if afs is None:
        afs = nfe % 2 == 1
    for n in range(1, nfe + 2):
        if S.nfe(sampler, n, afs=afs, to_zero=False) == nfe:
            return n, afs
    return None


def grid(n_steps: int) -> torch.Tensor:
    """EDM's rho = 7 grid with ``n_steps`` steps from 80 to 0.002 (no final 0)."""
    return edm_rho_grid(n_steps + 1, SIGMA_MIN, SIGMA_MAX, RHO)


def _run_sampler(name, D, x, sig, afs, predictor):
    extra = {"predictor": predictor} if predictor is not None else {}
    return S.get_sampler(name)(D, x, sig, afs=afs, require_zero=False, **extra)


def train_predictor(name: str, D, sig, teacher, afs: bool, *, iterations: int = 100, lr: float = 0.01, seed: int = 0):
    """A distilled :class:`~diffmath.amed.AMEDPredictor` for ``name`` in ("amed", "amed_plugin")."""
    solver = "amed" if name == "amed" else "plugin"
    p = amed.AMEDPredictor(scale_time_range=0.0 if solver == "amed" else 0.2, seed=seed, dtype=teacher.dtype, device=teacher.device)
    losses = amed.distill(p, D, sig, teacher, solver=solver, iterations=iterations, lr=lr, afs=afs)
    return p, losses


def run(
    dims: Sequence[int] = tuple(DEFAULTS["dims"]),
    nfes: Sequence[int] = tuple(DEFAULTS["nfes"]),
    points: int = DEFAULTS["points"],
    train_points: int = DEFAULTS["train_points"],
    amed_max_nfe: int = DEFAULTS["amed_max_nfe"],
    ref_tol: float = DEFAULTS["ref_tol"],
    frechet_max_dim: int = DEFAULTS["frechet_max_dim"],
    frechet_seeds: int = DEFAULTS["frechet_seeds"],
    frechet_points: int = DEFAULTS["frechet_points"],
    device=None,
) -> dict:
    """Measure every row at every budget; a JSON-ready dict (``tables[f"d={d}"][label][str(nfe)]``)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    results = {
        "setting": (
            f"K={K} full-covariance mixtures (random_mixture, seed=d), {points} evaluation points (seed 0), EDM rho={RHO:g} grid "
            f"{SIGMA_MAX:g} -> {SIGMA_MIN:g}, sampling stops at sigma_min; reference: solve_pf_ode (rtol = atol = {ref_tol:g}); "
            "error: RMS per coordinate; two-evaluation samplers use the analytic first step at odd NFE; "
            f"AMED predictors distilled on {train_points} other noises (seed 1), 100 Adam iterations, for NFE <= {amed_max_nfe}"
        ),
        "nfe": list(nfes),
        "rows": [label for label, _, _ in ROWS],
        "tables": {},
        "median": {},
        "frechet": {},
        "flips": {},
        "train_seconds": {},
        "seconds": {},
        "device": str(device),
    }
    for d in dims:
        t0 = time.perf_counter()
        gm = random_mixture(K, d, seed=d, device=device)
        D = edm_denoiser(gm)
        x = SIGMA_MAX * torch.randn(points, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)
        x_train = SIGMA_MAX * torch.randn(train_points, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
        ref = solve_pf_ode(gm.denoise, x, SIGMA_MAX, SIGMA_MIN, rtol=ref_tol, atol=ref_tol)
        end = gm.diffuse(1.0, SIGMA_MIN)
        ref_mode = end.responsibilities(ref).argmax(-1)
        table, medians, flips, train_s = {}, {}, {}, {}
        teachers = {}  # AMED-Solver and AMED-Plugin share each grid's teacher trajectory
        frechet_runs = []  # (label, nfe, name, sig, afs, predictor) re-run on fresh noises for the Fréchet column
        for label, name, afs_opt in ROWS:
            row = {}
            for nfe in nfes:
                p = plan(name, nfe, afs_opt)
                if p is None or (name.startswith("amed") and nfe > amed_max_nfe):
                    row[str(nfe)] = None
                    continue
                n, afs = p
                sig = grid(n)
                predictor = None
                if name.startswith("amed"):
                    t1 = time.perf_counter()
                    key = tuple(sig.tolist())
                    if key not in teachers:
                        teachers[key] = amed.teacher_trajectory(D, x_train, sig, rtol=ref_tol, atol=ref_tol)
                    teacher = teachers[key]
                    predictor, _ = train_predictor(name, D, sig, teacher, afs)
                    train_s[str(nfe)] = time.perf_counter() - t1
                D.reset()
                out = _run_sampler(name, D, x, sig, afs, predictor)
                if D.nfe != nfe:
                    raise RuntimeError(f"{label} at NFE {nfe} spent {D.nfe} evaluations")
                row[str(nfe)] = (out - ref).pow(2).mean().sqrt().item()
                medians.setdefault(label, {})[str(nfe)] = (out - ref).pow(2).mean(-1).sqrt().median().item()
                flips.setdefault(label, {})[str(nfe)] = int((end.responsibilities(out).argmax(-1) != ref_mode).sum())
                frechet_runs.append((label, nfe, name, sig, afs, predictor))
            table[label] = row
            if train_s:
                results["train_seconds"].setdefault(f"d={d}", {})[label] = train_s
                train_s = {}
        results["tables"][f"d={d}"] = table
        results["median"][f"d={d}"] = {lab: {k: medians.get(lab, {}).get(k) for k in row} for lab, row in table.items()}
        if d <= frechet_max_dim:
            results["frechet"][f"d={d}"] = frechet_column(gm, D, frechet_runs, frechet_seeds, frechet_points, device)
        results["flips"][f"d={d}"] = flips
        results["seconds"][f"d={d}"] = time.perf_counter() - t0
    return results


def interval(values: Sequence[float]) -> dict:
    """Mean and half-width of the two-sided 95% Student-t interval of ``values`` (at least two)."""
    v = torch.tensor(list(values), dtype=torch.float64)
    n = v.numel()
    if n < 2:
        raise ValueError(f"an interval needs at least two values, got {n}")
    t = float(scipy.stats.t.ppf(0.975, n - 1))
    return {"mean": v.mean().item(), "half": t * v.std(unbiased=True).item() / n**0.5, "values": v.tolist()}


def frechet_distance(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    """Fréchet distance between the Gaussian fit of ``samples`` (n, d) and N(mean, cov): the W2 distance
    of the two Gaussians (FID is its square, computed on network features)."""
    m = samples.mean(0)
    c = torch.cov(samples.T).reshape(samples.shape[1], samples.shape[1])
    return bures_w2(m, c, mean, cov).item()


def frechet_column(gm, D, runs, seeds: int, points: int, device) -> dict:
    """The Fréchet distance to the exact law at sigma_min of every (row, NFE) run, over ``seeds`` noise sets
    (seeds 100, 101, ...), and of exact samples ("exact samples"): {label: {nfe: interval}}."""
    end = gm.diffuse(1.0, SIGMA_MIN)
    mean, cov = end.mean(), end.covariance()
    out: dict = {"exact samples": {}}
    noises = [SIGMA_MAX * torch.randn(points, gm.dim, generator=torch.Generator().manual_seed(100 + s), dtype=torch.float64).to(device)
              for s in range(seeds)]
    exact = [frechet_distance(end.sample(points, torch.Generator(device=device).manual_seed(200 + s)), mean, cov) for s in range(seeds)]
    for label, nfe, name, sig, afs, predictor in runs:
        vals = [frechet_distance(_run_sampler(name, D, x, sig, afs, predictor), mean, cov) for x in noises]
        out.setdefault(label, {})[str(nfe)] = interval(vals)
        out["exact samples"][str(nfe)] = interval(exact)
    return out


def best(results: dict, key: str, nfe: int, rows: Optional[Sequence[str]] = None, measure: str = "tables") -> Optional[str]:
    """The label with the smallest error at ``nfe`` in table ``key`` (among ``rows``); ``measure`` is
    "tables" (RMS), "median" or "frechet" (the interval's mean; the exact-samples row excluded)."""
    table = results[measure][key]
    cands = []
    for lab, v in table.items():
        val = v.get(str(nfe))
        if lab == "exact samples" or (rows is not None and lab not in rows) or val is None:
            continue
        cands.append((val["mean"] if isinstance(val, dict) else val, lab))
    return min(cands)[1] if cands else None


def compare(results: dict, measure: str, key: str, nfe: int, a: str, b: str) -> Optional[str]:
    """How row ``a`` ranks against row ``b`` at (key, nfe) under ``measure``: "better" (smaller), "worse", or
    for the Fréchet intervals "overlap" when the two means are closer than the sum of the half-widths
    (no ranking at 95%); None when either entry is missing."""
    tab = results.get(measure, {}).get(key)
    if tab is None or tab.get(a, {}).get(str(nfe)) is None or tab.get(b, {}).get(str(nfe)) is None:
        return None
    va, vb = tab[a][str(nfe)], tab[b][str(nfe)]
    if isinstance(va, dict):
        if abs(va["mean"] - vb["mean"]) <= va["half"] + vb["half"]:
            return "overlap"
        return "better" if va["mean"] < vb["mean"] else "worse"
    return "better" if va < vb else "worse"


def orderings(results: dict) -> list[dict]:
    """The paper's orderings, checked on every table and budget present (NFE <= 5 and <= 9).

    ``ddim<heun,dpm2``: Euler (DDIM) has a smaller error than Heun and than DPM-Solver-2;
    ``amed_best``: an AMED row has the smallest error among the rows *without* ``+afs``
    (the paper's table compares the samplers at their standard settings).
    """
    out = []
    plain = [lab for lab, _, afs in ROWS if afs is not True]
    for key, table in results["tables"].items():
        for nfe in results["nfe"]:
            k = str(nfe)
            e, h, m = table["euler"][k], table["heun"][k], table["dpm_solver_2"][k]
            row = {"table": key, "nfe": nfe}
            if nfe <= 5 and None not in (e, h, m):
                row["ddim<heun,dpm2"] = e < h and e < m
            if nfe <= 9 and table["amed"].get(k) is not None:
                b = best(results, key, nfe, plain)
                row["best"] = b
                row["amed_best"] = b in ("amed", "amed_plugin")
            out.append(row)
    return out


def _name(label: str) -> str:
    return LABELS.get(label.split("+")[0], label) + (" + AFS" if label.endswith("+afs") else "")


def _table(results: dict, key: str, measure: str, fmt) -> list[str]:
    nfes = results["nfe"]
    lines = ["| sampler | " + " | ".join(f"NFE {n}" for n in nfes) + " |", "|---|" + "---:|" * len(nfes)]
    winners = {n: best(results, key, n, measure=measure) for n in nfes}
    for label, row in results[measure][key].items():
        cells = []
        for n in nfes:
            v = row.get(str(n))
            cell = "—" if v is None else fmt(v)
            cells.append(f"**{cell}**" if v is not None and winners[n] == label else cell)
            if measure == "tables":
                flipped = results.get("flips", {}).get(key, {}).get(label, {}).get(str(n), 0)
                cells[-1] += f" [{flipped}]" if flipped else ""
        lines.append(f"| {_name(label)} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict) -> str:
    """The tables as Markdown (per mixture: pathwise RMS, median, Fréchet), best entry per column in bold."""
    lines = [
        f"Setting: {results['setting']}.",
        "",
        "The error is *pathwise*: each sample against the reference ODE solution from the same noise (the AMED paper "
        "reports FID on images instead). Bold: the smallest error in the column, AFS rows included. [k]: k of the points "
        "end in another mixture component than the reference (largest responsibility at sigma_min); one such point "
        "dominates an RMS error, so each mixture has two more tables that a flip does not dominate: the *median* over "
        "points of each point's error, and (d <= 16) the *Fréchet distance* of the samples to the exact law, "
        "mean ± 95% interval over independent noise sets, with the floor that exact samples of the same size reach.",
        "",
    ]
    for key in results["tables"]:
        lines += [f"**{key}: RMS error against the same-noise reference**", ""]
        lines += _table(results, key, "tables", lambda v: f"{v:.3g}")
        if key in results.get("median", {}):
            lines += ["", f"**{key}: median per-point error**", ""]
            lines += _table(results, key, "median", lambda v: f"{v:.3g}")
        if key in results.get("frechet", {}):
            lines += ["", f"**{key}: Fréchet distance to the exact law (mean ± 95% interval)**", ""]
            lines += _table(results, key, "frechet", lambda v: f"{v['mean']:.3g} ± {v['half']:.2g}")
        lines.append("")
    return "\n".join(lines)


def summary(results: dict) -> str:
    """The article's orderings as measured in ``results``, as Markdown bullets (computed, not written)."""
    order = orderings(results)
    low = [o for o in order if "ddim<heun,dpm2" in o]
    amed_rows = [o for o in order if "amed_best" in o]
    lines = []
    if low:
        held = [f"{o['table']} NFE {o['nfe']}" for o in low if o["ddim<heun,dpm2"]]
        failed = [f"{o['table']} NFE {o['nfe']}" for o in low if not o["ddim<heun,dpm2"]]
        lines.append(f"- *DDIM beats Heun and DPM-Solver-2 at NFE <= 5*: holds at {len(held)} of {len(low)} (mixture, budget) pairs"
                     + (f"; fails at {', '.join(failed)}" if failed else "") + ".")
    for key, tab in results["tables"].items():
        nfes = [n for n in results["nfe"] if tab["heun"][str(n)] is not None and tab["euler"][str(n)] is not None]
        if not nfes:
            continue
        ratio = tab["heun"][str(nfes[0])] / tab["euler"][str(nfes[0])]
        cross = next((n for n in nfes if tab["heun"][str(n)] < tab["euler"][str(n)]), None)
        lines.append(f"- {key}: Heun's error is {ratio:.3g} times DDIM's at NFE {nfes[0]}; "
                     + (f"Heun is first better at NFE {cross}." if cross else "Heun is never better in this table."))
    if amed_rows:
        won = [f"{o['table']} NFE {o['nfe']}" for o in amed_rows if o["amed_best"]]
        lost = [f"{o['table']} NFE {o['nfe']} ({LABELS.get(o['best'], o['best'])})" for o in amed_rows if not o["amed_best"]]
        lines.append(f"- *AMED is best at small NFE* (pathwise RMS, rows without AFS as the paper compares them): an AMED "
                     f"sampler has the smallest error at {len(won)} of {len(amed_rows)} (mixture, budget) pairs up to NFE "
                     f"{max(o['nfe'] for o in amed_rows)}" + (f"; the best elsewhere: {', '.join(lost)}" if lost else "") + ".")
        with_afs = [(o, best(results, o["table"], o["nfe"])) for o in amed_rows]
        afs_won = [f"{o['table']} NFE {o['nfe']} ({_name(b)})" for o, b in with_afs if b.endswith("+afs")]
        lines.append(f"- With the AFS rows included, an AFS row is best at {len(afs_won)} of those pairs"
                     + (f": {', '.join(afs_won)}" if afs_won else "") + ".")
        for a, b in (("amed", "dpm_solver_2"), ("amed_plugin", "ipndm"), ("amed", "ipndm")):
            for measure, what in (("tables", "pathwise RMS"), ("median", "median error"), ("frechet", "Fréchet distance")):
                pairs = [ranked for o in amed_rows for ranked in [compare(results, measure, o["table"], o["nfe"], a, b)] if ranked is not None]
                if not pairs:
                    continue
                better = sum(r == "better" for r in pairs)
                overlap = sum(r == "overlap" for r in pairs)
                lines.append(f"- {what}: {LABELS[a]} beats {LABELS[b]} at {better} of {len(pairs)} of those pairs"
                             + (f" (worse at {len(pairs) - better - overlap}, within each other's 95% intervals at {overlap})"
                                if measure == "frechet" else "") + ".")
    times = [t for rows in results.get("train_seconds", {}).values() for by_nfe in rows.values() for t in by_nfe.values()]
    if times:
        lines.append(f"- AMED training: {len(times)} predictors, {min(times):.1f} to {max(times):.1f} s each "
                     f"(the first of the two AMED samplers on a grid includes computing that grid's teacher trajectory; device {results.get('device', 'cpu')}).")
    return "\n".join(lines)
