r"""Error vs NFE of every sampler in diffmath.samplers on exact Gaussian mixtures (issue 5).

Setting: mixtures ``random_mixture(K, d, seed=d)`` with K = 8 and d = 2, 16, 256 (full covariances,
float64); ``--points`` starting noises :math:`x_T = 80\,\varepsilon` per mixture (fixed seed); EDM's
ρ = 7 grid from :math:`\sigma_{\max} = 80` to :math:`\sigma_{\min} = 0.002`, then 0.

Steps for a given NFE: single-evaluation samplers (Euler = DDIM, DPM-Solver++(2M), iPNDM and its
variable-step form) take :math:`n = \mathrm{NFE}` steps, or :math:`\mathrm{NFE}+1` with the analytic
first step (``+afs``); Heun and DPM-Solver-2 take :math:`n = (\mathrm{NFE}+1)/2` (their last step to 0
is Euler), so odd NFEs only.

Reference: :func:`diffmath.flows.solve_pf_ode` from the same noise to :math:`\sigma_{\min}` (rtol =
atol = 1e-8 by default, ``--ref-tol``: it differs from an rtol = 1e-11 solve by about 3e-9 RMS on these mixtures, far below every entry), then the exact last step to 0, :math:`x_{\rm ref} = D(x(\sigma_{\min}), \sigma_{\min})`
— the Euler step to 0 every sampler's grid ends with, taken from the exact state.
Error: RMS over points and coordinates, :math:`\sqrt{\mathrm{mean}\,(x - x_{\rm ref})^2}` (per
coordinate, so different d compare).

    python benchmarks/bench_samplers.py [--dims 2 16 256] [--nfe 3 5 7 9 15 25] [--points 64]
                                        [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from diffmath import samplers as S
from diffmath.denoisers import edm_denoiser
from diffmath.flows import solve_pf_ode
from diffmath.schedules import edm_rho_grid
from diffmath.toys import random_mixture

SIGMA_MAX, SIGMA_MIN, RHO, K = 80.0, 0.002, 7.0, 8

# (label, sampler name, options): the rows of the table
ROWS = [(name, name, {}) for name in S.SAMPLERS] + [
    (f"{name}+afs", name, {"afs": True}) for name in ("euler", "dpmpp_2m", "ipndm", "ipndm_v")
]


def steps_for(name: str, nfe: int, afs: bool):
    """Steps n with ``S.nfe(name, n, afs=afs) == nfe``, or None when there is no such n."""
    for n in range(1, nfe + 3):
        if S.nfe(name, n, afs=afs) == nfe:
            return n
    return None


def grid(n: int) -> torch.Tensor:
    levels = edm_rho_grid(n, SIGMA_MIN, SIGMA_MAX, RHO) if n > 1 else torch.tensor([SIGMA_MAX], dtype=torch.float64)
    return torch.cat([levels, levels.new_zeros(1)])


def run(dims=(2, 16, 256), nfes=(3, 5, 7, 9, 15, 25), points=64, seed=0, ref_tol=1e-8) -> dict:
    results = {
        "setting": (
            f"K={K} full-covariance mixtures (random_mixture, seed=d), {points} points, EDM rho={RHO:g} grid "
            f"{SIGMA_MAX:g} -> {SIGMA_MIN:g} -> 0; reference: solve_pf_ode (rtol = atol = {ref_tol:g}) to sigma_min "
            "then D(x, sigma_min); "
            "error: RMS per coordinate"
        ),
        "nfe": list(nfes),
        "tables": {},
    }
    for d in dims:
        t0 = time.perf_counter()
        gm = random_mixture(K, d, seed=d)
        D = edm_denoiser(gm)
        x = SIGMA_MAX * torch.randn(points, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        ref = solve_pf_ode(gm.denoise, x, SIGMA_MAX, SIGMA_MIN, rtol=ref_tol, atol=ref_tol)
        ref = gm.denoise(ref, 1.0, SIGMA_MIN)
        table = {}
        for label, name, opts in ROWS:
            row = {}
            for nfe in nfes:
                n = steps_for(name, nfe, opts.get("afs", False))
                if n is None:
                    row[str(nfe)] = None
                    continue
                D.reset()
                out = S.get_sampler(name)(D, x, grid(n), **opts)
                assert D.nfe == nfe, (label, nfe, D.nfe)
                row[str(nfe)] = (out - ref).pow(2).mean().sqrt().item()
            table[label] = row
        results["tables"][f"d={d}"] = table
        results.setdefault("seconds", {})[f"d={d}"] = time.perf_counter() - t0
    return results


def markdown(results: dict) -> str:
    lines = [f"Setting: {results['setting']}.", ""]
    for key, table in results["tables"].items():
        lines += [f"**{key}**", "", "| sampler | " + " | ".join(f"NFE {n}" for n in results["nfe"]) + " |"]
        lines.append("|---|" + "---|" * len(results["nfe"]))
        for label, row in table.items():
            cells = ["—" if row[str(n)] is None else f"{row[str(n)]:.3g}" for n in results["nfe"]]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 16, 256])
    p.add_argument("--nfe", type=int, nargs="+", default=[3, 5, 7, 9, 15, 25])
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--ref-tol", type=float, default=1e-8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    results = run(args.dims, args.nfe, args.points, args.seed, args.ref_tol)
    text = markdown(results)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
