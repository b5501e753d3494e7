r"""Skip-Tuning on the trained toy (chapter 24): sample quality against the exact law, by ρ, NFE and sampler.

The model is the trained toy U-Net of :mod:`diffmath.skip_toy` (experiment ``skip-unet``), tuned by
:class:`diffmath.skip_tuning.SkipTuned`. Sample quality is measured against the exact law, not against
reference samples (:func:`sample_metrics`):

- the Fréchet distance in the *feature space* :math:`f(x)=` the 4×4 average-pooled image (16 numbers: the
  coarse structure a classifier's features respond to; FID's analogue), to the exact moments of the pooled
  law;
- the power-spectrum error: the mean over radial frequency bins of :math:`|\log(\hat P_r/P_r)|`, with
  :math:`P_r` the exact :math:`\mathbb E|\hat x(f)|^2` (means included) averaged over the bin;
- the high-frequency power: the signed mean of :math:`\log(\hat P_r/P_r)` over the radial bins
  :math:`r\ge` ``HIGH`` (positive: more fine detail or noise than the law has; negative: too smooth);
- the mode error: the total variation between the components' weights and the share of samples whose
  largest exact responsibility is that component's.
"""

from __future__ import annotations

import functools
import importlib
import sys

import torch

from diffmath import samplers as smp
from diffmath.denoisers import edm_denoiser
from diffmath.images import ImageMixture
from diffmath.output_law import radial_profile
from diffmath.resolution import pool
from diffmath.schedules import edm_rho_grid
from diffmath.sampler_table import frechet_distance, interval
from diffmath.skip_toy import SIZE, TRAIN_DEFAULTS, denoiser_errors, law_moments, model_from_result, toy_law
from diffmath.skip_tuning import SkipTuned, absorbed_denoiser, gradient_norms, norm_ratios, ramp_rho, window_rho
from diffmath.unet import EDMDenoiser, edm_loss_weight, edm_preconditioning

POOL = 4
"""The feature map's pooling factor: :math:`f(x)` is the (16/POOL)² average-pooled image."""
HIGH = 6
"""The first radial frequency bin (cycles per image) counted as high frequency (the 16×16 grid reaches 11)."""

DEFAULTS = {
    "seed": 0,
    "samplers": ["euler", "heun", "dpmpp_2m", "ipndm"],
    "nfe": [5, 9, 17],
    "rho_bottom": [0.3, 0.6, 0.8, 1.0, 1.2],
    "seeds": 4,
    "points": 384,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "grid_rho": 7.0,
    "loss_points": 4096,
    "eval_sigmas": [0.02, 0.1, 0.5, 2.0, 10.0],
    "eval_points": 512,
    "grad_points": 32,
    "grad_probes": 4,
    "window_rho": 0.6,
    "window_edges": [0.002, 0.05, 0.3, 1.5, 8.0, 80.0],
    "window_sampler": "euler",
    "window_nfe": 9,
}
"""The sweep's configuration: a 4 x 3 x 5 grid of (sampler, NFE, rho_bottom), ``seeds`` sets of ``points`` starting
noises shared by every cell (common random numbers: the differences between cells are paired)."""


def load_model(device: str = "cpu") -> EDMDenoiser:
    """The trained toy model, from the experiment ``skip-unet`` (stored with the code; trained when absent).

    :mod:`diffmath.experiments` is loaded by name: imported plainly, its registry would pull every other experiment's
    code (the sampler bench, the sampler table, ...) into this sweep's cache key, and an edit to any of them would
    make the stored sweep stale. What the sweep depends on is the trained weights, whose own key covers the training
    code (:mod:`diffmath.skip_toy` and its imports, which this module imports too), and ``experiments.py`` itself,
    which is in every experiment's key."""
    experiments = importlib.import_module("diffmath.experiments")
    return model_from_result(experiments.result("skip-unet"), device)


def features(x: torch.Tensor) -> torch.Tensor:
    r"""The feature map :math:`f(x)`: the ``POOL``×``POOL`` block means (:func:`diffmath.resolution.pool`), flattened
    ((n, 16))."""
    return pool(x.reshape(-1, 1, SIZE, SIZE), POOL).flatten(1)


def exact_power(law: ImageMixture) -> torch.Tensor:
    r""":math:`\mathbb E|\hat x(f)|^2` of the law (orthonormal DFT, means included), (H, W)."""
    return sum(w * (c.power_spectrum() + torch.fft.fft2(c.mean[0], norm="ortho").abs() ** 2)
               for w, c in zip(law.weights, law.components))


class QualityReference:
    """What :func:`sample_metrics` compares with, computed once per law."""

    def __init__(self, law: ImageMixture):
        self.law = law
        pooled = law.pool(POOL)
        self.feature_mean, self.feature_cov = law_moments(pooled)
        self.radii, self.power = radial_profile(exact_power(law))


def sample_metrics(x: torch.Tensor, ref: QualityReference) -> dict:
    """Fréchet distance in feature space, power-spectrum error, high-frequency log power ratio and mode error of samples
    ``x`` (n, 1, H, W) (see the module docstring)."""
    x = x.to("cpu", torch.float64)
    fd = frechet_distance(features(x), ref.feature_mean, ref.feature_cov)
    _, p = radial_profile((torch.fft.fft2(x[:, 0], norm="ortho").abs() ** 2).mean(0))
    log_ratio = (p / ref.power).log()
    spectrum = log_ratio.abs().mean().item()
    high = log_ratio[ref.radii >= HIGH].mean().item()
    r = ref.law.responsibilities(x)
    share = torch.bincount(r.argmax(-1), minlength=ref.law.n_components).to(torch.float64) / x.shape[0]
    mode = 0.5 * (share - ref.law.weights).abs().sum().item()
    return {"fd": fd, "spectrum": spectrum, "high": high, "mode": mode}


# --- the sweep ---------------------------------------------------------------------------------------------
def steps_for(sampler: str, nfe: int) -> int:
    """The number of steps that spends exactly ``nfe`` evaluations (ValueError when none does)."""
    for n in range(1, nfe + 1):
        if smp.nfe(sampler, n) == nfe:
            return n
    raise ValueError(f"no step count gives {sampler} exactly {nfe} evaluations")


def sigmas_for(cfg: dict, sampler: str, nfe: int) -> torch.Tensor:
    """EDM's rho-grid for ``nfe`` evaluations of ``sampler``, ending at 0."""
    grid = edm_rho_grid(steps_for(sampler, nfe), cfg["sigma_min"], cfg["sigma_max"], cfg["grid_rho"])
    return torch.cat([grid, grid.new_zeros(1)])


def noises(cfg: dict) -> list[torch.Tensor]:
    """The shared starting points sigma_max n, one (points, 1, 16, 16) float64 set per seed."""
    g = torch.Generator().manual_seed(cfg["seed"] + 1000)
    return [cfg["sigma_max"] * torch.randn(cfg["points"], 1, SIZE, SIZE, generator=g, dtype=torch.float64) for _ in range(cfg["seeds"])]


def run_cell(D, sampler: str, sigmas, xs) -> list[dict]:
    ref = reference()
    return [sample_metrics(smp.get_sampler(sampler)(D, x, sigmas), ref) for x in xs]


@functools.lru_cache(maxsize=1)
def reference() -> "QualityReference":
    """The quality reference of the chapter's law (computed once)."""
    return QualityReference(toy_law())


def summarise(runs: list[dict]) -> dict:
    """Per metric: mean and 95% interval over the seeds."""
    return {m: interval([r[m] for r in runs]) for m in runs[0]}


def paired(runs: list[dict], base: list[dict]) -> dict:
    """Per metric: the seed-paired difference run - base, mean and 95% interval."""
    return {m: interval([r[m] - b[m] for r, b in zip(runs, base)]) for m in runs[0]}


def _progress(what: str) -> None:
    sys.stderr.write(f"  skip-tuning sweep: {what}\n")
    sys.stderr.flush()


def grid_sweep(D, cfg: dict, xs) -> list[dict]:
    rows = []
    for sampler in cfg["samplers"]:
        for nfe in cfg["nfe"]:
            _progress(f"{sampler}, NFE {nfe}")
            sig = sigmas_for(cfg, sampler, nfe)
            exact = run_cell(edm_denoiser(reference().law.to(xs[0].device)), sampler, sig, xs)
            base = run_cell(SkipTuned(D, 1.0), sampler, sig, xs)
            for rho in cfg["rho_bottom"]:
                runs = base if rho == 1.0 else run_cell(SkipTuned(D, rho), sampler, sig, xs)
                rows.append({"sampler": sampler, "nfe": nfe, "rho": rho, **summarise(runs),
                             "vs_rho1": paired(runs, base), "exact_denoiser": summarise(exact)})
    return rows


def loss_sweep(D, cfg: dict) -> list[dict]:
    r"""C24.7: per rho, EDM's pixel loss :math:`\mathbb E\lambda(\sigma)\|D_\rho-x_0\|^2/d` and the feature loss
    :math:`\mathbb E\lambda(\sigma)\|f(D_\rho)-f(x_0)\|^2/16`, on one fixed set of (x0, sigma, noise) with sigma from
    the training distribution; the exact denoiser's values beside them, and each loss's difference from rho = 1's,
    paired draw by draw, with its standard error."""
    law = reference().law
    g = torch.Generator().manual_seed(cfg["seed"] + 2000)
    n = cfg["loss_points"]
    x0 = law.sample(n, generator=g)
    sigma = torch.exp(TRAIN_DEFAULTS["p_mean"] + TRAIN_DEFAULTS["p_std"] * torch.randn(n, generator=g, dtype=torch.float64))
    x = x0 + sigma.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    w = edm_loss_weight(sigma, D.sigma_data)

    def losses(out):
        return w * (out - x0).flatten(1).pow(2).mean(1), w * (features(out) - features(x0)).pow(2).mean(1)

    ex_pixel, ex_feature = losses(law.denoise(x, 1.0, sigma))
    per = {}
    for rho in sorted(set(cfg["rho_bottom"]) | {1.0}):
        dev = next(D.net.parameters()).device
        out = torch.cat([SkipTuned(D, rho)(x[i: i + 512].to(dev), sigma[i: i + 512].to(dev)).to("cpu", torch.float64)
                         for i in range(0, n, 512)])
        per[rho] = losses(out)
    rows = []
    for rho, (pixel, feature) in per.items():
        dp, df = pixel - per[1.0][0], feature - per[1.0][1]
        rows.append({"rho": rho, "pixel": pixel.mean().item(), "feature": feature.mean().item(),
                     "pixel_vs_rho1": dp.mean().item(), "pixel_vs_rho1_se": (dp.std() / n**0.5).item(),
                     "feature_vs_rho1": df.mean().item(), "feature_vs_rho1_se": (df.std() / n**0.5).item(),
                     "exact_pixel": ex_pixel.mean().item(), "exact_feature": ex_feature.mean().item()})
    return rows


def denoiser_sweep(D, cfg: dict) -> list[dict]:
    """Per rho and sigma: the tuned denoiser's error against the exact one, and how much of the tuning's effect the
    absorbed model (the 1x1 skip columns rescaled, no skip scaled: C24.3) reproduces."""
    law = reference().law
    rows = []
    for rho in sorted(set(cfg["rho_bottom"]) | {1.0}):
        dev = next(D.net.parameters()).device
        errs = denoiser_errors(SkipTuned(D, rho), law, cfg["eval_sigmas"], cfg["eval_points"], cfg["seed"] + 3000, dev)
        g = torch.Generator().manual_seed(cfg["seed"] + 4000)
        absorbed = absorbed_denoiser(D, rho)
        for e in errs:
            s = e["sigma"]
            x = law.sample(cfg["eval_points"], generator=g)
            x = x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
            x = x.to(dev)
            with torch.no_grad():
                tuned, plain = SkipTuned(D, rho)(x, s).cpu().double(), D(x, s).cpu().double()
                ab = absorbed(x, s).cpu().double()
            effect = (tuned - plain).pow(2).mean().sqrt().item()
            e["rho"] = rho
            e["effect"] = effect
            e["not_absorbed"] = (tuned - ab).pow(2).mean().sqrt().item()
        rows += errs
    return rows


def complexity_sweep(D, cfg: dict) -> list[dict]:
    """C24.4: the complexity proxy E||grad_x U|| per rho and sigma, with its difference from rho = 1's (the same images
    and probes: paired, with a standard error over the images), and the norm ratios prop_i at rho = 1."""
    law = reference().law
    rows = []
    for s in cfg["eval_sigmas"]:
        g = torch.Generator().manual_seed(cfg["seed"] + 5000)
        x = law.sample(cfg["grad_points"], generator=g)
        x = x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)
        _, _, c_in, _ = edm_preconditioning(torch.tensor(s, dtype=torch.float64), D.sigma_data)
        per = {rho: gradient_norms(D, c_in * x, s, rho, probes=cfg["grad_probes"],
                                   generator=torch.Generator().manual_seed(cfg["seed"] + 6000))
               for rho in sorted(set(cfg["rho_bottom"]) | {1.0})}
        n = cfg["grad_points"]
        rows.append({"sigma": s, "ratios": norm_ratios(D, x, s),
                     "grad": {str(rho): v.mean().item() for rho, v in per.items()},
                     "grad_vs_rho1": {str(rho): [(v - per[1.0]).mean().item(), ((v - per[1.0]).std() / n**0.5).item()]
                                      for rho, v in per.items()}})
    return rows


def window_sweep(D, cfg: dict, xs) -> list[dict]:
    """C24.6 (reduced): Skip-Tuning at ``window_rho`` inside one sigma-window only, per window; with rho everywhere
    beside them, and the two log-sigma ramps between ``window_rho`` and 1 (strongest at high noise, or at low noise);
    one sampler and NFE; each compared with rho = 1, paired."""
    sampler, nfe, rho = cfg["window_sampler"], cfg["window_nfe"], cfg["window_rho"]
    sig = sigmas_for(cfg, sampler, nfe)
    base = run_cell(SkipTuned(D, 1.0), sampler, sig, xs)
    edges = cfg["window_edges"]
    rows = [{"window": "everywhere", **summarise(r := run_cell(SkipTuned(D, rho), sampler, sig, xs)), "vs_rho1": paired(r, base)}]
    for lo, hi in zip(edges, edges[1:]):
        hi_incl = hi * (1 + 1e-9) if hi == edges[-1] else hi  # sigma_max belongs to the last window
        runs = run_cell(SkipTuned(D, window_rho(rho, lo, hi_incl)), sampler, sig, xs)
        rows.append({"window": [lo, hi], "steps_inside": sum(1 for v in sig.tolist() if lo <= v < hi_incl),
                     **summarise(runs), "vs_rho1": paired(runs, base)})
    for name, (high, low) in (("ramp, strongest at high noise", (rho, 1.0)), ("ramp, strongest at low noise", (1.0, rho))):
        runs = run_cell(SkipTuned(D, ramp_rho(high, low, cfg["sigma_min"], cfg["sigma_max"])), sampler, sig, xs)
        rows.append({"window": name, **summarise(runs), "vs_rho1": paired(runs, base)})
    return rows


def run(cfg: dict, device: str) -> dict:
    """The ``skip-tuning`` experiment (see :data:`DEFAULTS`) on ``device`` (the noises are drawn on the CPU, the same
    on every device; the exact law's samples and the metrics are computed on the CPU)."""
    D = load_model(device)
    xs = [x.to(device) for x in noises(cfg)]
    law = reference().law
    g = torch.Generator().manual_seed(cfg["seed"] + 7000)
    floor = summarise([sample_metrics(law.sample(cfg["points"], generator=g), reference()) for _ in range(cfg["seeds"])])
    return {
        "floor": floor,
        "grid": grid_sweep(D, cfg, xs),
        "losses": loss_sweep(D, cfg),
        "denoiser": denoiser_sweep(D, cfg),
        "complexity": complexity_sweep(D, cfg),
        "windows": window_sweep(D, cfg, xs),
    }


def markdown(res: dict) -> str:
    """The sweep's tables: rendered by :mod:`diffmath.skip_report`, loaded by name so that the presentation is not
    part of the result's code key (editing a table's layout must not recompute the sweep)."""
    return importlib.import_module("diffmath.skip_report").markdown(res)
