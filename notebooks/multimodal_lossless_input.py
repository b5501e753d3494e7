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
# # Lossless input: the information budget of an image, counted exactly
#
# A companion to the book's chapter on Su's multimodal essay (kexue.fm 9984). The essay's eq. (2) says
# that $L$ tokens from a vocabulary of $V$ can code a source of $B$ bits losslessly only if
# $L\log_2V\ge B$. Here the budget is computed in exact integer arithmetic (`diffmath.information`), and
# $B$ is computed for Gaussian image laws quantised to 8 bits, whose entropy has a closed form.
#
# Change the **knobs** and re-run; everything runs in seconds on a CPU.

# %%
# %matplotlib inline
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np

from diffmath import information as info
from diffmath.images import GaussianImage

# %% [markdown]
# ## Knobs

# %%
size = 64  # image side (ImageNet-64: 64)
channels = 3
alpha = 2.0  # spectral exponent: 0 = white noise, 2 = natural images
pixel_std = 57.0  # grey levels
delta = 1.0  # quantiser bin in grey levels (8 bits: 1)
token_lengths = [4096, 1024, 256]
bits_per_subpixel = [Fraction(3), Fraction(344, 100)]  # the essay's figure and the measured one

# %% [markdown]
# ## The essay's budget, exactly
#
# The smallest vocabulary is $\lceil2^{B/L}\rceil$, found by an integer root (no floating point).

# %%
d = size * size * channels
for b in bits_per_subpixel:
    B = d * b
    for L in token_lengths:
        V = info.min_vocabulary(B, L)
        print(f"{float(b):5.2f} bits/subpixel, B = {float(B):9,.1f} bits, L = {L:5d}: log2 V >= {float(B / L):8.3f}, "
              f"smallest V = {float(V):.4e}")

# %% [markdown]
# ## The toy law's entropy at 8 bits
#
# A stationary Gaussian field with a $1/|f|^\alpha$ power spectrum. `lower` $=h-d\log_2\Delta$ holds for
# any bin; `upper` is the entropy of the Gaussian widened by the bin's variance $\Delta^2/12$; they agree
# when the bin is small against a pixel's standard deviation given the others.

# %%
law = GaussianImage.power_law(size, size, alpha, variance=pixel_std**2, channels=channels)
q = info.quantised_entropy_bits(law, delta)
print(f"conditional std of a pixel: {q.conditional_std:.2f} grey levels (bin {delta}); resolved: {q.resolved}")
print(f"bits per subpixel: {q.lower_per_dim:.5f} .. {q.upper_per_dim:.5f}; total {q.upper:,.0f} of a raw {8 * d:,}")
for L in token_lengths:
    print(f"  L = {L:5d}: each token must carry {q.upper / L:8.2f} bits")

# %% [markdown]
# ## The approximation, checked in one dimension
#
# A single Gaussian pixel quantised exactly (bin masses from the normal CDF), against the two numbers.
# The lower bound always holds; the widened Gaussian is accurate once the bin is below the standard
# deviation and fails beyond it.

# %%
deltas = np.logspace(-2, 0.6, 30)
exact = np.array([info.quantised_normal_entropy_bits(1.0, float(x)) for x in deltas])
lower = 0.5 * math.log2(2 * math.pi * math.e) - np.log2(deltas)
upper = 0.5 * np.log2(2 * math.pi * math.e * (1 + deltas**2 / 12)) - np.log2(deltas)
fig, ax = plt.subplots(figsize=(6.0, 3.4))
ax.loglog(deltas, exact - lower, "k", label="exact - lower bound")
ax.loglog(deltas, upper - lower, "--", label="widened Gaussian - lower bound")
ax.loglog(deltas, deltas**2 / (24 * math.log(2)), ":", label=r"$\Delta^2/(24\ln 2)$")
ax.set_xlabel(r"bin width $\Delta/\sigma$")
ax.set_ylabel("bits")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## How the count depends on the spectrum and on the bin

# %%
fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
alphas = np.linspace(0, 4, 17)
per_dim = [info.quantised_entropy_bits(GaussianImage.power_law(size, size, float(a), variance=pixel_std**2), delta).upper_per_dim
           for a in alphas]
axes[0].plot(alphas, per_dim, "o-", ms=3)
axes[0].axhline(3.44, color="k", ls="--", lw=1)
axes[0].set_xlabel(r"$\alpha$")
axes[0].set_ylabel("bits per subpixel")
bins = [1, 2, 4, 8, 16]
axes[1].plot(bins, [info.quantised_entropy_bits(law, b).lower_per_dim for b in bins], "s-")
axes[1].set_xscale("log", base=2)
axes[1].set_xlabel("bin width (grey levels)")
axes[1].set_ylabel("bits per subpixel (lower bound)")
fig.tight_layout()
