r"""The trained toy of chapter 24: a small EDM U-Net (:mod:`diffmath.unet`) trained on a Gaussian-image
mixture whose exact denoiser we know, and the trained denoiser's error against the exact one.

**The law** (:func:`toy_law`): one-channel 16×16 images from a mixture of three stationary Gaussian
fields with different spectra and mean images — a smooth field around 0 (α = 3), a rough faint field
around a bright disc (α = 1) and a mid field around vertical stripes (α = 2) — weights 0.5, 0.3, 0.2.
Its denoiser, score and moments are exact (:class:`diffmath.images.ImageMixture`), and
:math:`\sigma_{data}` is its exact per-pixel standard deviation.

**Training** (:func:`train`): EDM's preconditioning and loss (:mod:`diffmath.unet`) on fresh samples of
the law each step (so the network approximates the population denoiser, not a finite set), Adam with a
linear warm-up and cosine decay, an exponential moving average of the weights (the model is the EMA),
a fixed seed, float32. The result carries the weights rounded to float16 (the model *is* the rounded
weights: every measurement uses them) and the trained denoiser's error against the exact one per noise
level. It is the registered experiment ``skip-unet`` (stored with the code; :func:`diffmath.skip_sweep.load_model`
reads it). This module does not import :mod:`diffmath.experiments`, so that the stored weights depend on the
training code only.

Sample quality is measured in :mod:`diffmath.skip_sweep`.
"""

from __future__ import annotations

import base64
import math
import sys
import time
import numpy as np
import torch

from diffmath.images import GaussianImage, ImageMixture
from diffmath.unet import EDMDenoiser, UNet, count_parameters, edm_loss, load_flat

SIZE = 16

TRAIN_DEFAULTS = {
    "seed": 0, "channels": 16, "channel_mult": [1, 2, 2], "groups": 4, "steps": 1500, "batch": 128,
    "lr": 2e-3, "warmup": 100, "ema": 0.995, "p_mean": -1.2, "p_std": 1.2,
    "eval_sigmas": [0.002, 0.01, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 80.0], "eval_points": 1024,
}


def toy_law(dtype=torch.float64, device=None) -> ImageMixture:
    """The chapter's image law (see the module docstring), 1×16×16."""
    H = W = SIZE
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    disc = 1.5 * (((yy - 7.5) ** 2 + (xx - 7.5) ** 2) <= 16).to(dtype)
    stripes = torch.cos(2 * math.pi * 2 * xx / W)
    comps = [
        GaussianImage.power_law(H, W, 3.0, variance=1.0, f0=1.0, mean=0.0),
        GaussianImage.power_law(H, W, 1.0, variance=0.1, f0=1.0, mean=disc),
        GaussianImage.power_law(H, W, 2.0, variance=0.3, f0=1.0, mean=stripes),
    ]
    law = ImageMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), comps)
    return law if device is None else law.to(device)


def law_moments(law: ImageMixture) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact mean (d,) and covariance (d, d) of a one-channel mixture:
    :math:`\sum_k\pi_k(C_k+\mu_k\mu_k^\top)-\mu\mu^\top`."""
    mus = [c.mean.reshape(-1) for c in law.components]
    mean = sum(w * m for w, m in zip(law.weights, mus))
    second = sum(w * (c.covariance_dense() + torch.outer(m, m)) for w, c, m in zip(law.weights, law.components, mus))
    return mean, second - torch.outer(mean, mean)


def sigma_data(law: ImageMixture) -> float:
    r""":math:`\sigma_{data}`: the law's exact per-pixel standard deviation, :math:`\sqrt{\mathrm{tr}\,\mathrm{Cov}/d}`."""
    _, cov = law_moments(law)
    return math.sqrt(cov.diagonal().mean().item())


def build_net(cfg: dict) -> UNet:
    return UNet(in_channels=1, channels=cfg["channels"], channel_mult=cfg["channel_mult"], groups=cfg["groups"])


def _progress(step: int, total: int, loss: float, start: float) -> None:
    if not sys.stderr.isatty() and step not in (total,) and step % 250:
        return
    done = int(30 * step / total)
    sys.stderr.write(f"\r  training the toy U-Net [{'#' * done}{'.' * (30 - done)}] {step}/{total} "
                     f"loss {loss:.4f} {time.perf_counter() - start:.0f}s")
    if step == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def train(cfg: dict, device: str = "cpu", progress: bool = True) -> tuple[EDMDenoiser, dict]:
    """Train the toy U-Net with ``cfg`` (:data:`TRAIN_DEFAULTS`); returns the EMA model and a log."""
    dev = torch.device(device)
    law = toy_law()
    sd = sigma_data(law)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(cfg["seed"])
        net = build_net(cfg).to(dev)
    ema = build_net(cfg).to(dev)
    ema.load_state_dict(net.state_dict())
    model = EDMDenoiser(net, sd)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    steps, batch, log = cfg["steps"], cfg["batch"], []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        lr = cfg["lr"] * min(1.0, step / cfg["warmup"]) * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        x0 = law.sample(batch, generator=gen).to(torch.float32)
        sigma = torch.exp(cfg["p_mean"] + cfg["p_std"] * torch.randn(batch, generator=gen))
        noise = torch.randn(x0.shape, generator=gen)
        loss = edm_loss(model, x0.to(dev), sigma.to(dev), noise.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1 - cfg["ema"])
        if step % 50 == 0:
            log.append([step, loss.item()])
        if progress:
            _progress(step, steps, loss.item(), start)
    return EDMDenoiser(ema, sd), {"loss": log, "train_seconds": time.perf_counter() - start}


def encode_weights(module: torch.nn.Module) -> str:
    """The parameters as one float16 vector (``named_parameters`` order), base64."""
    flat = torch.cat([p.detach().reshape(-1).to("cpu", torch.float32) for p in module.parameters()])
    return base64.b64encode(flat.to(torch.float16).numpy().tobytes()).decode("ascii")


def decode_weights(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.float16).copy()).to(torch.float32)


def model_from_result(res: dict, device: str = "cpu") -> EDMDenoiser:
    """The model a ``skip-unet`` result describes (its configuration and its float16 weights)."""
    net = build_net(res["config"])
    load_flat(net, decode_weights(res["weights"]))
    return EDMDenoiser(net.to(device).eval(), res["sigma_data"])


def denoiser_errors(model, law: ImageMixture, sigmas, points: int, seed: int, device: str = "cpu") -> list[dict]:
    r"""Per noise level: the trained denoiser's MSE per pixel, the exact (Bayes) MSE, and
    :math:`\mathbb E\|D_\theta-D^*\|^2/d` with its standard error, on ``points`` fresh draws
    :math:`x_\sigma=x_0+\sigma n`. ``model``: any ``D(x, sigma)``."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for s in sigmas:
        x0 = law.sample(points, generator=gen)
        x = x0 + s * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
        exact = law.denoise(x, 1.0, s)
        with torch.no_grad():
            got = model(x.to(device), torch.full((points,), float(s), device=device)).to("cpu", torch.float64)
        gap = (got - exact).flatten(1).pow(2).mean(1)
        rows.append({
            "sigma": float(s),
            "mse_model": (got - x0).flatten(1).pow(2).mean(1).mean().item(),
            "mse_exact": (exact - x0).flatten(1).pow(2).mean(1).mean().item(),
            "gap": gap.mean().item(),
            "gap_se": (gap.std() / math.sqrt(points)).item(),
        })
    return rows


def run_training(cfg: dict, device: str) -> dict:
    """The ``skip-unet`` experiment: train, round the weights, measure the rounded model."""
    model, log = train(cfg, device)
    weights = encode_weights(model.net)
    law = toy_law()
    rounded = model_from_result({"config": cfg, "weights": weights, "sigma_data": model.sigma_data}, device)
    return {
        "config": cfg,
        "sigma_data": model.sigma_data,
        "parameters": count_parameters(model.net),
        "weights": weights,
        "train_seconds": log["train_seconds"],
        "loss": log["loss"],
        "torch": torch.__version__,
        "denoiser_error": denoiser_errors(rounded, law, cfg["eval_sigmas"], cfg["eval_points"], cfg["seed"] + 2, device),
    }


def training_markdown(res: dict) -> str:
    """The ``skip-unet`` result as Markdown: the model, the training time, the error against the exact denoiser."""
    lines = [
        f"{res['parameters']:,} parameters, trained for {res['config']['steps']} steps of {res['config']['batch']} fresh "
        f"images in {res['train_seconds']:.0f} s (torch {res['torch']}); sigma_data = {res['sigma_data']:.4f}.",
        "",
        "| sigma | trained MSE / pixel | exact (Bayes) MSE / pixel | E‖D_θ − D*‖² / pixel | gap / exact MSE |",
        "|---|---|---|---|---|",
    ]
    for r in res["denoiser_error"]:
        lines.append(f"| {r['sigma']:g} | {r['mse_model']:.4g} | {r['mse_exact']:.4g} | {r['gap']:.3g} ± {r['gap_se']:.1g} "
                     f"| {r['gap'] / r['mse_exact']:.3f} |")
    return "\n".join(lines) + "\n"
