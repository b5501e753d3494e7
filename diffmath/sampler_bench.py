r"""The book's table of the ecosystem's samplers against the exact flow (chapter "Testing a sampler against the exact
flow"): every diffusers scheduler of :data:`diffmath.diffusers_bench.SCHEDULERS`, the library's own samplers and
k-diffusion's samplers that the library does not have (both on EDM's grid), benched by :func:`diffmath.bench.bench` on the laws of :data:`DEFAULTS` at
the same budgets from the same noise.

The measured order is the slope fitted over the three largest budgets (:meth:`~diffmath.bench.BenchResult.order_over`):
at small budgets every sampler is pre-asymptotic, and the slope over the whole range mixes regimes. The result records
diffusers' version: the table describes that release.
"""

from __future__ import annotations

import math
import time

import torch

from diffmath import bench as B

DEFAULTS = {
    "laws": ["mixture-2d", "lowrank-16d"],
    "budgets": [5, 10, 20, 40, 80, 160],
    "seeds": 3,
    "points": 128,
    "samplers": [
        "diffusers:ddim", "diffusers:euler", "diffusers:heun", "diffusers:lms", "diffusers:pndm", "diffusers:pndm-plms",
        "diffusers:dpm++2m", "diffusers:dpm++2m-karras", "diffusers:dpm++3m", "diffusers:dpm2m", "diffusers:dpm3m", "diffusers:dpm++2s",
        "diffusers:dpm++3s", "diffusers:unipc", "diffusers:deis",
        "diffusers:ddpm", "diffusers:euler-a", "diffusers:dpm++sde", "diffusers:dpm++2m-sde",
        "diffmath:euler", "diffmath:heun", "diffmath:dpm_solver_2", "diffmath:dpmpp_2m", "diffmath:ipndm",
        "k-diffusion:lms", "k-diffusion:euler_ancestral", "k-diffusion:dpm_2_ancestral", "k-diffusion:dpmpp_2s_ancestral",
        "k-diffusion:dpmpp_sde", "k-diffusion:dpmpp_2m_sde", "k-diffusion:dpmpp_3m_sde",
    ],
    "order_budgets": 3,
}


def run(cfg: dict, device: str = "cpu", progress: bool = True) -> dict:
    """Bench every sampler on every law; a JSON-ready dict ``{"laws": {law: {sampler: BenchResult.to_dict()}}}``."""
    import diffusers

    from diffmath import kdiffusion

    out = {"setting": {k: v for k, v in cfg.items()}, "diffusers": diffusers.__version__, "k-diffusion": kdiffusion.version(),
           "laws": {}, "seconds": {}}
    for law_name in cfg["laws"]:
        law = B.named_law(law_name)
        t0 = time.perf_counter()
        table, references = {}, {}
        for name in cfg["samplers"]:
            s = B.named_sampler(name)
            res = B.bench(s, law, cfg["budgets"], law_name=law_name, seeds=cfg["seeds"], points=cfg["points"], references=references)
            d = res.to_dict()
            d["order_last"] = res.order_over(cfg["order_budgets"])
            table[name] = d
            if progress:
                print(f"[sampler-bench] {law_name} {name}: order {d['order_last']}", flush=True)
        out["laws"][law_name] = table
        out.setdefault("final_jump", {})[law_name] = final_jump_error(law, SD_SIGMA_MIN, cfg["seeds"], cfg["points"])
        out["seconds"][law_name] = time.perf_counter() - t0
    return out


#: the smallest level of the shared schedule (timestep 0): sqrt(beta_0 / (1 - beta_0)) with beta_0 = 0.00085
SD_SIGMA_MIN = math.sqrt(0.00085 / (1 - 0.00085))


def final_jump_error(law, sigma: float, seeds: int, points: int) -> float:
    r"""The error of one denoiser step from ``sigma`` to 0 started *on* the exact flow: the RMS of
    :math:`D(\Phi_{80\to\sigma}(x), \sigma) - \Phi_{80\to0}(x)` over the bench's noises (mean over seeds). A sampler
    whose last step jumps from a fixed ``sigma`` to 0 this way carries an error of this size that does not shrink
    with the budget (it may partly cancel against the error of the steps before)."""
    errs = []
    for k in range(seeds):
        z = torch.randn(points, *B.event_shape(law), generator=torch.Generator().manual_seed(k), dtype=law.dtype)
        x = B.exact_flow(law, 80.0 * z, 80.0, sigma)
        end = B.exact_flow(law, x, sigma, 0.0)
        errs.append((law.denoise(x, 1.0, sigma) - end).pow(2).mean().sqrt().item())
    return sum(errs) / len(errs)


def _f(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"


def markdown(res: dict) -> str:
    """Per law: the deterministic samplers' error against the exact flow by budget (the NFE actually spent in brackets
    where it differs), their measured order, the points that end in another component than the exact flow's at the
    largest budget (out of seeds × points), and the levels they run between at the smallest budget; then the
    stochastic samplers' Fréchet distance to the exact law by budget, with the exact flow's from the same starts in
    brackets, beside the exact samples' (the statistic's noise floor). Laws and samplers in the configured order."""
    budgets = res["setting"]["budgets"]
    k = res["setting"]["order_budgets"]
    lines = [f"Measured with diffusers {res['diffusers']} and k-diffusion {res['k-diffusion']}; {res['setting']['seeds']} seeds × "
             f"{res['setting']['points']} points per budget; order: the slope over the {k} largest budgets.\n"]
    jumps = res.get("final_jump", {})
    for law in res["setting"]["laws"]:
        table = res["laws"][law]
        names = [n for n in res["setting"]["samplers"] if n in table]
        lines.append(f"\n**{law}: error against the exact flow (RMS per coordinate, EDM coordinates)**\n")
        lines.append("| sampler | " + " | ".join(f"NFE ≤ {b}" for b in budgets) + " | order | flips | $\\sigma$ start → end |")
        lines.append("|---|" + "---|" * len(budgets) + "---|---|---|")
        for name in names:
            r = table[name]
            if r["stochastic"]:
                continue
            by = {row["budget"]: row for row in r["rows"]}
            cells = []
            for b in budgets:
                row = by.get(b)
                cells.append("–" if row is None else _f(row["error"]) + ("" if row["nfe"] == b else f" ({row['nfe']})"))
            first = r["rows"][0] if r["rows"] else None
            levels = "–" if first is None else f"{first['sigma_start']:.3g} → {first['sigma_end']:.3g}"
            flips = "–" if not r["rows"] or r["rows"][-1]["flips"] is None else str(r["rows"][-1]["flips"])
            lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {_f(r['order_last'])} | {flips} | {levels} |")
        if law in jumps:
            lines.append(f"\nOne denoiser step from the schedule's smallest level $\\sigma = {SD_SIGMA_MIN:.4f}$ to 0, started on the exact "
                         f"flow, is off by {_f(jumps[law])}.\n")
        lines.append(f"\n**{law}: stochastic samplers, Fréchet distance to the exact law at the end level (exact flow from the same "
                     "starts)**\n")
        lines.append("| sampler | " + " | ".join(f"NFE ≤ {b}" for b in budgets) + " | exact samples |")
        lines.append("|---|" + "---|" * len(budgets) + "---|")
        for name in names:
            r = table[name]
            if not r["stochastic"]:
                continue
            by = {row["budget"]: row for row in r["rows"]}
            cells = [f"{_f(by[b]['frechet'])} ({_f(by[b]['frechet_flow'])})" if b in by else "–" for b in budgets]
            lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {_f(r['rows'][-1]['frechet_exact'])} |")
    return "\n".join(lines) + "\n"
