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
# # Playing with mean-value sampling
#
# A companion to the book's chapter on part 21. Change the knobs: the EDM grid, the isotropic
# Gaussian's scale and step, or the mixture's dimension, and see (i) where the exact mean-value time
# of one AMED step sits, (ii) how much better the AMED step at that time is than Euler and the
# geometric midpoint, and (iii) how flat exact mixture trajectories are.
#
# Convention: EDM/VE time $t\equiv\sigma$, data at $t=0$, $x=x_0+\sigma\varepsilon$, $v=(x-D)/\sigma$.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch

from diffmath import mean_value as mv
from diffmath.claims.part21 import _mixture_trajectories
from diffmath.schedules import edm_rho_grid

# %% [markdown]
# ## Knobs

# %%
sd = 0.5                   # isotropic Gaussian data N(mu, sd^2 I)
n_nodes, rho = 6, 7.0      # EDM grid from 80 to 0.002
d_mix, n_traj = 64, 3      # mixture trajectories (K = 8)

# %% [markdown]
# ## One step per interval: Euler, geometric midpoint, exact mean-value time

# %%
grid = edm_rho_grid(n_nodes, 0.002, 80.0, rho).tolist()
print(f"{'t_(n+1)':>9} {'t_n':>9} {'s*':>10} {'Euler err':>10} {'midpoint err':>12} {'AMED@s* err':>11}")
for t1, t0 in zip(grid[:-1], grid[1:]):
    exact = mv.exact_gain(t0, t1, sd)
    s = mv.mean_value_time(t0, t1, sd)
    mid = math.sqrt(t0 * t1)
    errs = [abs(mv.amed_gain(x, t0, t1, sd) - exact) / exact for x in (t1, mid, s)]
    print(f"{t1:9.4f} {t0:9.4f} {s:10.5f} {errs[0]:10.2e} {errs[1]:12.2e} {errs[2]:11.1e}")

# %% [markdown]
# ## Flatness of exact mixture trajectories

# %%
traj = _mixture_trajectories(d_mix, n_traj, seed=1)
for i, tr in enumerate(traj):
    res, expl = mv.pca_residuals(tr, ks=(1, 2, 3))
    print(f"trajectory {i}: residual k=1,2,3 = {[f'{v:.1e}' for v in res.tolist()]}, top-2 explain {expl[1].item():.7f}")

fig, ax = plt.subplots(figsize=(5.5, 3.2))
for tr in traj:
    c = tr - tr.mean(0)
    _, _, Vh = torch.linalg.svd(c, full_matrices=False)
    p = c @ Vh[:2].T
    ax.plot(p[:, 0].numpy(), p[:, 1].numpy(), ".-")
ax.set_xlabel("PC 1")
ax.set_ylabel("PC 2")
ax.set_title("trajectories in their own top-2 PCA plane", fontsize=9)
fig.tight_layout()
