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
# # Playing with ReFlow → WGAN-GP
#
# A companion to the book's chapter on part 20. Pick a generator law $p_0$ and a data law $p_1$
# (1-D Gaussian mixtures). The notebook draws the time-averaged density of the interpolants
# $\rho=\int_0^1p_t\,dt$ and the optimal critic slope $D^{*\prime}=(F_0-F_1)/\rho$, trains a small critic
# on the zero-centred critic loss, and runs the article's two generator schemes on an affine Gaussian
# generator.
#
# Convention (article 20): $x_0\sim p_0$ (generator) at $t=0$, $x_1\sim p_1$ (data) at $t=1$,
# $x_t=(1-t)x_0+tx_1$; in the library's convention this is the rectified-flow line with $s=1-t$.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from diffmath import montecarlo, wgan
from diffmath.wasserstein import gaussian_mixture_1d

# %% [markdown]
# ## Knobs

# %%
p0 = gaussian_mixture_1d([1.0], [0.0], [1.0])                       # the generator's law
p1 = gaussian_mixture_1d([0.4, 0.6], [-2.0, 2.0], [0.25, 0.4])      # the data
critic_steps = 150                                                  # Adam steps for the fitted critic
eps, rounds = 0.1, 60                                               # generator step and number of rounds

# %% [markdown]
# ## The optimal critic and a trained one

# %%
x = torch.linspace(-5, 5, 801, dtype=torch.float64)
rho = wgan.time_averaged_density_1d(p0, p1, x)
u = wgan.optimal_critic_gradient_1d(p0, p1, x)
D = wgan.fit_critic(p0, p1, steps=critic_steps, batch=512, seed=0)
gD = wgan.critic_gradient(D, x[:, None], create_graph=False)[:, 0]
Jstar = wgan.optimal_critic_value_1d(p0, p1).item()
J, excess = wgan.critic_objective_1d(D, p0, p1)
print(f"J* = {Jstar:.4f}   J(trained) = {J.item():.4f}   excess = {excess.item():.2e}")

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(x, u, "k", label="optimal slope (F0 - F1)/rho")
ax.plot(x, gD, "--", label="trained critic slope")
ax.plot(x, rho / rho.max() * u.abs().max(), ":", label="rho (rescaled)")
ax.legend(fontsize=8)
ax.set_xlabel("x")

# %% [markdown]
# ## The two schemes on an affine generator
#
# With a Gaussian data law the averaged scheme converges exactly; with the bimodal data above an
# affine Gaussian generator can only reach a compromise, while the $t=0$ scheme still collapses.

# %%
t0 = wgan.scheme_t0(0.0, 1.0, p1, eps, rounds)
avg = wgan.scheme_averaged(0.0, 1.0, p1, eps, rounds, nodes=24, panels=2)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
axes[0].plot(t0[:, 0], label="t = 0 field")
axes[0].plot(avg[:, 0], label="time-averaged gradient")
axes[0].set_title("mean")
axes[1].plot(np.abs(t0[:, 1]), label="t = 0 field")
axes[1].plot(np.abs(avg[:, 1]), label="time-averaged gradient")
axes[1].axhline(p1.covariance()[0, 0].sqrt().item(), color="k", ls=":", label="data std")
axes[1].set_title("std")
axes[1].legend(fontsize=8)
print("final (mean, std): t = 0 scheme", t0[-1].round(4), " averaged", avg[-1].round(4))

# %% [markdown]
# ## The critic loss is the ReFlow loss, on average over t
#
# The per-sample difference of the two losses is not zero; its mean over $t\sim U[0,1]$ is.

# %%
g = torch.Generator().manual_seed(1)
x0, x1 = p0.sample(20_000, generator=g), p1.sample(20_000, generator=g)
t = torch.rand(20_000, generator=g, dtype=torch.float64)
per = (wgan.reflow_gradient_loss(D, x0, x1, t) - wgan.critic_loss(D, x1, x0, t) - 0.5 * ((x1 - x0) ** 2).sum(-1)).detach()
est = montecarlo.mean(per)
print(f"mean {est.value.item():.4f} ± {est.se.item():.4f}, per-sample std {per.std().item():.3f}")
