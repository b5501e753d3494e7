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
# # SNR and resolution, on images whose scores are exact
#
# A companion to the book's chapter on article 22. The image laws are Gaussian fields with a
# $1/|f|^\alpha$ power spectrum (`diffmath.images.GaussianImage`): their score, denoiser and noise
# prediction are exact at every noise level and every resolution, for the cost of an FFT.
#
# Change the **knobs** and re-run: the spectral exponent, the resolutions, the sampler and the budget.
# Everything is exact (no Monte Carlo in the distances), and runs in seconds on a CPU.
#
# Convention: $x_t=\alpha_tx_0+\sigma_t\varepsilon$ (Su's $\bar\alpha_t,\bar\beta_t$), data at $t=0$.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

from diffmath import resolution as res
from diffmath import snr
from diffmath.images import GaussianImage
from diffmath.output_law import radial_profile, sampler_law, w2_per_pixel
from diffmath.schedules import LogSNRCosine, ShiftedSchedule

# %% [markdown]
# ## Knobs

# %%
alpha = 2.0  # spectral exponent: 0 = white noise, 2 = natural images
base = 16  # the resolution the schedule is tuned for
resolutions = [16, 32, 64]
sampler = "euler"  # one-evaluation samplers: "euler" (DDIM), "dpmpp_2m", "ipndm"
nfe = 10
seed = 0

# %% [markdown]
# ## Noise hides less of a large image
#
# One field at three resolutions, the same noise variance added; pooled back to the base resolution
# the larger images are cleaner. The expected gain in signal-to-noise power is between 1 (white
# images) and $s^2$ (block-constant ones).

# %%
g = torch.Generator().manual_seed(seed)
fig, axes = plt.subplots(2, len(resolutions), figsize=(2.6 * len(resolutions), 5.0))
for j, R in enumerate(resolutions):
    law = GaussianImage.power_law(R, R, alpha, reference=(base, base))
    xt = law.diffuse(1.0, 1.0).sample(1, generator=g)
    axes[0, j].imshow(xt[0, 0], cmap="gray")
    axes[0, j].set_title(f"{R}x{R}, sigma = 1", fontsize=9)
    axes[1, j].imshow(res.pool(xt, R // base)[0, 0], cmap="gray")
    gain = snr.expected_pooling_gain(law, R // base) if R > base else 1.0
    axes[1, j].set_title(f"pooled; expected gain {gain:.2f}", fontsize=9)
for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# ## The shift, at every resolution
#
# For each resolution: the exact law of the sampler's output (from its impulse responses) under the
# schedule tuned at `base`, and under that schedule shifted by $s = R/\text{base}$.

# %%
rows = []
fig, ax = plt.subplots(figsize=(6, 3.6))
for R, colour in zip(resolutions, ("k", "tab:blue", "tab:red")):
    law = GaussianImage.power_law(R, R, alpha, reference=(base, base))
    r, p = radial_profile(law.power_spectrum())
    ax.loglog(r[1:], p[1:], color=colour, lw=2, alpha=0.4)
    for shifted, style in ((False, "--"), (True, "-")):
        sch = ShiftedSchedule(LogSNRCosine(), R / base) if shifted else LogSNRCosine()
        out = sampler_law(law, sch, sampler, nfe)
        q = R // base
        rows.append((R, shifted, w2_per_pixel(out, law), w2_per_pixel(out.pool(q), law.pool(q))))
        r, p = radial_profile(out.power_spectrum())
        ax.loglog(r[1:], p[1:], style, color=colour, lw=1, label=f"{R}: {'shifted' if shifted else 'unshifted'}")
ax.set_xlabel("|f|"), ax.set_ylabel("power"), ax.legend(fontsize=7)
ax.set_title(f"{sampler}, {nfe} NFE: thick = truth", fontsize=9)
fig.tight_layout()
print(f"{'R':>3} {'shifted':>8} {'W2/pixel':>9} {'W2 pooled to base':>18}")
for R, shifted, w, wb in rows:
    print(f"{R:>3} {str(shifted):>8} {w:9.4f} {wb:18.4f}")

# %% [markdown]
# ## Try it
#
# * Set `alpha = 0` (white images): pooling then gains nothing, and the shift no longer matches the
#   data — does it still help?
# * Raise `nfe`: both schedules converge to the truth; how fast?
# * Replace the constant shift by simple diffusion's interpolated one,
#   `ShiftedSchedule(LogSNRCosine(), (R / 256, R / 32))`, or by your own.
