# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Skip-Tuning on a trained toy U-Net
#
# A companion to the book's chapter on article 24. The model is a small EDM U-Net trained on a mixture of three
# Gaussian image laws (16×16), whose exact denoiser the library knows (`diffmath.skip_toy`); the weights ship
# with the code (experiment `skip-unet`). `SkipTuned(D, rho_bottom)` scales the decoder's skips by the linear
# schedule from `rho_bottom` (the deepest skip) to 1 (the skip nearest the input).
#
# Change the **knobs** and re-run: every measurement compares with the exact law, not with reference samples.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

from diffmath import samplers
from diffmath import skip_sweep as sw
from diffmath import skip_toy
from diffmath.denoisers import edm_denoiser
from diffmath.skip_tuning import SkipTuned, norm_ratios, rho_schedule

# %% knobs
SAMPLER = "euler"          # euler, heun, dpmpp_2m, ipndm, ...
NFE = 9                    # evaluations (heun: odd)
RHOS = [0.4, 1.0, 1.3]
POINTS = 128               # images per measurement
SEED = 0

# %% [markdown]
# ## The law and the model
# Exact samples of the three components, and the trained denoiser's error against the exact one (from the
# stored training result).

# %%
law = skip_toy.toy_law()
D = sw.load_model()
g = torch.Generator().manual_seed(SEED)
x = law.sample(8, generator=g)
fig, axes = plt.subplots(1, 8, figsize=(9, 1.4))
for ax, im in zip(axes, x[:, 0]):
    ax.imshow(im, cmap="gray")
    ax.axis("off")
fig.suptitle("exact samples", fontsize=9)

# %%
from diffmath import experiments

print(skip_toy.training_markdown(experiments.result("skip-unet")))

# %% [markdown]
# ## The schedule and the skip/backbone norm ratios
# The decoder pops the deepest skip first; `rho_schedule` lists the scales in that order.

# %%
print("rho_i, bottom to top:", [round(r, 3) for r in rho_schedule(D.net.n_skips - 1, 0.7)])
for name, ratio in norm_ratios(D, law.sample(32, generator=g), 1.0):
    print(f"  skip {name:8s}  ||d|| / ||u|| = {ratio:.3f}")

# %% [markdown]
# ## Sampling with and without Skip-Tuning
# The same starting noise for every ρ (common random numbers), so differences between ρ's are paired.

# %%
sigmas = sw.sigmas_for(sw.DEFAULTS, SAMPLER, NFE)
noise = sw.DEFAULTS["sigma_max"] * torch.randn(POINTS, 1, 16, 16, generator=g, dtype=torch.float64)
sample = samplers.get_sampler(SAMPLER)
ref = sw.reference()
rows = {"exact D": sw.sample_metrics(sample(edm_denoiser(law), noise, sigmas), ref)}
images = {}
for rho in RHOS:
    out = sample(SkipTuned(D, rho), noise, sigmas)
    images[rho] = out[:6, 0]
    rows[f"rho = {rho:g}"] = sw.sample_metrics(out, ref)
print(f"{SAMPLER}, NFE {NFE}, {POINTS} images")
print(f"{'':>12} {'FD (features)':>14} {'spectrum':>9} {'high-freq':>10} {'modes':>6}")
for name, m in rows.items():
    print(f"{name:>12} {m['fd']:14.4f} {m['spectrum']:9.4f} {m['high']:10.4f} {m['mode']:6.3f}")

# %%
fig, axes = plt.subplots(len(RHOS), 6, figsize=(6, 1.1 * len(RHOS)))
for row, rho in zip(axes, RHOS):
    for ax, im in zip(row, images[rho]):
        ax.imshow(im, cmap="gray")
        ax.axis("off")
    row[0].set_title(f"rho = {rho:g}", fontsize=8, loc="left")
fig.tight_layout()
