"""The ``skip-tuning`` experiment's tables as Markdown (chapter 24). Presentation only: nothing here computes, so
it is not part of the result's code key (:func:`diffmath.skip_sweep.markdown` loads it by name)."""

from __future__ import annotations


def _cells(res: dict) -> tuple[list, list, dict]:
    rhos = sorted({r["rho"] for r in res["grid"]})
    keys = sorted({(r["sampler"], r["nfe"]) for r in res["grid"]})
    cells = {(r["sampler"], r["nfe"], r["rho"]): r for r in res["grid"]}
    return rhos, keys, cells


def _pm(v: dict, fmt: str = "{:.3f}") -> str:
    return fmt.format(v["mean"]) + f" ± {v['half']:.2g}"


def grid_table(res: dict, metric: str = "fd") -> list[str]:
    """Per (sampler, NFE): the metric by rho (best in bold), and the exact denoiser's value with the same sampler."""
    rhos, keys, cells = _cells(res)
    lines = ["| sampler | NFE | " + " | ".join(f"ρ = {r:g}" for r in rhos) + " | exact D |",
             "|---|---|" + "---|" * (len(rhos) + 1)]
    for s, n in keys:
        vals = {r: cells[(s, n, r)][metric] for r in rhos}
        best = min(rhos, key=lambda r: vals[r]["mean"])
        row = [("**" + _pm(vals[r]) + "**") if r == best else _pm(vals[r]) for r in rhos]
        lines.append(f"| {s} | {n} | " + " | ".join(row) + f" | {cells[(s, n, rhos[0])]['exact_denoiser'][metric]['mean']:.3f} |")
    return lines


def paired_table(res: dict, metric: str = "fd") -> list[str]:
    """Per (sampler, NFE): the change of the metric from rho = 1, paired over the shared noises (95% interval)."""
    rhos, keys, cells = _cells(res)
    others = [r for r in rhos if r != 1.0]
    lines = ["| sampler | NFE | " + " | ".join(f"ρ = {r:g}" for r in others) + " |", "|---|---|" + "---|" * len(others)]
    for s, n in keys:
        row = []
        for r in others:
            v = cells[(s, n, r)]["vs_rho1"][metric]
            text = f"{v['mean']:+.4f} ± {v['half']:.1g}"
            row.append(f"**{text}**" if abs(v["mean"]) > v["half"] else text)
        lines.append(f"| {s} | {n} | " + " | ".join(row) + " |")
    return lines


def markdown(res: dict) -> str:
    rhos, keys, cells = _cells(res)
    floor = res["floor"]
    out = [
        "**Fréchet distance of the samples' 4×4 block means to the exact law** (mean ± 95% interval over the seeds; "
        f"best ρ in bold; exact samples of the same size give {floor['fd']['mean']:.3f}, the floor of this estimate; last "
        "column: the exact denoiser with the same sampler and NFE)", "",
        *grid_table(res, "fd"), "",
        "**Change of that distance from ρ = 1**, paired over the shared starting noises (bold: the interval excludes 0)", "",
        *paired_table(res, "fd"), "",
        f"**Power-spectrum error** (mean |log P̂/P| over radial bands; exact samples give {floor['spectrum']['mean']:.3f})", "",
        *grid_table(res, "spectrum"), "",
        "**High-frequency power**, mean log P̂/P over the bands of 6 cycles and more (negative: too smooth; "
        f"exact samples give {floor['high']['mean']:+.3f})", "",
        *grid_table(res, "high"), "",
    ]
    losses = res["losses"]
    out += ["**Denoising losses** (EDM-weighted, per pixel / per feature; the exact denoiser's in the last row; "
            "changes from ρ = 1 paired, ± one standard error)", "",
            "| ρ | pixel loss | change | feature loss | change |", "|---|---|---|---|---|"]
    for r in losses:
        out.append(f"| {r['rho']:g} | {r['pixel']:.5f} | {r['pixel_vs_rho1']:+.2e} ± {r['pixel_vs_rho1_se']:.0e} | "
                   f"{r['feature']:.5f} | {r['feature_vs_rho1']:+.2e} ± {r['feature_vs_rho1_se']:.0e} |")
    out += [f"| exact | {losses[0]['exact_pixel']:.5f} | | {losses[0]['exact_feature']:.5f} | |", ""]
    sig = sorted({r["sigma"] for r in res["denoiser"]})
    drho = sorted({r["rho"] for r in res["denoiser"]})
    den = {(r["rho"], r["sigma"]): r for r in res["denoiser"]}
    out += ["**The tuned denoiser against the exact one**: E‖D_ρ − D*‖² / pixel, as a share of the Bayes error, and "
            "(in brackets) the share of the tuning's effect the 1×1-rescaled network does not reproduce", "",
            "| ρ | " + " | ".join(f"σ = {s:g}" for s in sig) + " |", "|---|" + "---|" * len(sig)]
    for rho in drho:
        cells_ = []
        for s in sig:
            r = den[(rho, s)]
            extra = f" ({r['not_absorbed'] / r['effect']:.2f})" if r["effect"] > 0 else ""
            cells_.append(f"{r['gap'] / r['mse_exact']:.4f}{extra}")
        out.append(f"| {rho:g} | " + " | ".join(cells_) + " |")
    out.append("")
    comp = res["complexity"]
    grho = sorted(comp[0]["grad"], key=float)
    out += ["**Complexity proxy** E‖∇ₓU‖ (Frobenius norm of the network's Jacobian) by noise level and ρ", "",
            "| σ | " + " | ".join(f"ρ = {float(r):g}" for r in grho) + " | mean ‖d‖/‖u‖ at ρ = 1 |", "|---|" + "---|" * (len(grho) + 1)]
    for r in comp:
        ratio = sum(v for _, v in r["ratios"]) / len(r["ratios"])
        out.append(f"| {r['sigma']:g} | " + " | ".join(f"{r['grad'][k]:.3f}" for k in grho) + f" | {ratio:.3f} |")
    out.append("")
    out += ["**Time windows** (Euler, 9 NFE, ρ_bottom = 0.6 inside the window, 1 outside): changes from ρ = 1, paired", "",
            "| where | steps inside | FD change | spectrum-error change | high-frequency change |", "|---|---|---|---|---|"]
    for r in res["windows"]:
        where = r["window"] if isinstance(r["window"], str) else f"{r['window'][0]:g} ≤ σ < {r['window'][1]:g}"
        v = r["vs_rho1"]
        out.append(f"| {where} | {r.get('steps_inside', '')} | {v['fd']['mean']:+.4f} ± {v['fd']['half']:.1g} | "
                   f"{v['spectrum']['mean']:+.4f} ± {v['spectrum']['half']:.1g} | {v['high']['mean']:+.4f} ± {v['high']['half']:.1g} |")
    return "\n".join(out) + "\n"
