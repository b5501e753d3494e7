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
# # Playing with ReFlow on exact mixtures
#
# A companion to the book's chapter on part 17. Pick a mixture, a coupling of data and noise
# (independent, correlated, or deterministic within each component) and an interpolant; the
# notebook draws the exact ReFlow field $v^*(x,t)=\mathbb E[\dot a x_0+\dot b x_1\mid x_t=x]$,
# trains a small network on the regression loss (5) and compares its loss with the floor
# $\mathbb E\,\mathrm{tr}\,\mathrm{Cov}(u\mid x_t)$, then runs one rectification between two Gaussians.
#
# Convention: data at $t=0$, noise $x_1\sim\mathcal N(0,I)$ at $t=1$; $x_t=a(t)x_0+b(t)x_1$.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from diffmath import montecarlo
from diffmath import reflow as rf
from diffmath.toys import random_mixture

# %% [markdown]
# ## Knobs

# %%
K, d = 3, 2
rho = 0.5                                  # 0: independent; |rho| <= 1; 1: deterministic within components
interp = rf.Interpolant.linear()           # or rf.Interpolant.trigonometric()
t_train = 0.5                              # the time at which the regression is fitted
gm = random_mixture(K, d, seed=4)
coupling = rf.Coupling.root(gm, rho, rf.rotation2(0.8)) if rho else rf.Coupling.independent(gm)
print(coupling)

# %% [markdown]
# ## The exact field at one time

# %%
grid = np.linspace(-6, 6, 21)
X, Y = np.meshgrid(grid, grid)
pts = torch.tensor(np.stack([X.ravel(), Y.ravel()], 1))
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
for ax, t in zip(axes, (0.2, 0.5, 0.8)):
    v = coupling.velocity(interp, pts, t).numpy()
    dens = coupling.log_density(interp, pts, t).exp().numpy().reshape(X.shape)
    ax.contourf(X, Y, dens, levels=12, cmap="Greys")
    ax.quiver(X, Y, v[:, 0].reshape(X.shape), v[:, 1].reshape(X.shape), color="tab:blue", scale=80)
    ax.set_title(f"t = {t}: v* over the density of x_t", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ## Training on the loss (5): the floor cannot be crossed
#
# A small network fitted at one time. Its loss approaches, but never goes below, the conditional
# variance of the path velocity; the remaining gap is its distance to $v^*$ (Pythagoras, claim C17.1).

# %%
net = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.Tanh(), torch.nn.Linear(64, d)).double()
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
model = lambda x, t: net(x)
hist = []
for step in range(400):
    terms = coupling.regression_terms(interp, model, t_train, 512, torch.Generator().manual_seed(step))
    opt.zero_grad()
    terms["loss"].mean().backward()
    opt.step()
    hist.append((terms["loss"].mean().item(), terms["excess"].mean().item()))
with torch.no_grad():
    final = coupling.regression_terms(interp, model, t_train, 50_000, torch.Generator().manual_seed(10_000))
floor = montecarlo.mean(final["crossing"])
print(f"floor E tr Cov(u | x_t) = {floor.value.item():.4f} ± {floor.se.item():.4f}")
print(f"final loss {final['loss'].mean().item():.4f}, excess E||v - v*||^2 = {final['excess'].mean().item():.4f}")

fig, ax = plt.subplots(figsize=(6.0, 3.4))
ax.plot([h[0] for h in hist], label="minibatch loss")
ax.plot([h[1] for h in hist], label="E||v - v*||^2 (minibatch)")
ax.axhline(floor.value.item(), color="k", ls="--", label="floor")
ax.set_xlabel("step")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## One rectification between Gaussians
#
# Change the angle to make the covariances commute (0 or pi/2) or not.

# %%
S0 = torch.diag(torch.tensor([0.3, 2.0], dtype=torch.float64))
R = rf.rotation2(0.6)
S1 = R @ torch.diag(torch.tensor([4.0, 0.2], dtype=torch.float64)) @ R.T
r = rf.rectify_gaussians(torch.zeros(2), S0, torch.zeros(2), S1)
print(f"rectified cost {r.cost:.4f}, W2^2 {r.w2_squared:.4f}, independent {r.cost_independent:.4f}")
print("rectified map:\n", r.map.M)
