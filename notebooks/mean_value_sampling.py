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

# %% [markdown]
# ## Train AMED yourself
#
# Distil an AMED predictor on a mixture of your choice and compare it with the samplers it builds on,
# at one budget. (The book's table, `benchmarks/bench_samplers.py`, does this for every budget.)
# Knobs: the mixture's dimension, the budget (odd budgets use the analytic first step), the sampler.

# %%
from diffmath import amed
from diffmath import samplers as S
from diffmath import sampler_table
from diffmath.denoisers import edm_denoiser
from diffmath.flows import solve_pf_ode
from diffmath.toys import random_mixture

d_amed, budget, n_points = 16, 5, 64

gm = random_mixture(8, d_amed, seed=d_amed)
D = edm_denoiser(gm)
x_eval = 80 * torch.randn(n_points, d_amed, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
x_train = 80 * torch.randn(n_points, d_amed, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
ref = solve_pf_ode(gm.denoise, x_eval, 80.0, 0.002, rtol=1e-8, atol=1e-8)
rms = lambda out: (out - ref).pow(2).mean().sqrt().item()

n_two, afs = sampler_table.plan("amed", budget, None)
sig = sampler_table.grid(n_two)
teacher = amed.teacher_trajectory(D, x_train, sig)
errors = {
    "Euler (DDIM)": rms(S.sample_euler(D, x_eval, sampler_table.grid(budget), require_zero=False)),
    "iPNDM": rms(S.sample_ipndm(D, x_eval, sampler_table.grid(budget), require_zero=False)),
    "DPM-Solver-2": rms(S.sample_dpm_solver_2(D, x_eval, sig, afs=afs, require_zero=False)),
}
for name, fn in (("amed", amed.sample_amed), ("amed_plugin", amed.sample_amed_plugin)):
    predictor, losses = sampler_table.train_predictor(name, D, sig, teacher, afs)
    errors[sampler_table.LABELS[name]] = rms(fn(D, x_eval, sig, predictor=predictor, afs=afs, require_zero=False))
    print(f"{name}: training loss {losses[0]:.3g} -> {min(losses):.3g}")
for k, v in errors.items():
    print(f"{k:>22}: RMS error {v:.3g} at NFE {budget}")
