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
# # Playing with the exact toy lab
#
# A companion to the book's *exact toy lab* chapter. Everything below is computed in closed form
# by `diffmath`: the noised density of a Gaussian mixture, its score, the exact denoiser
# $\mathbb E[x_0 \mid x_t]$, and probability-flow ODE trajectories from the reference solver.
#
# Change the cell marked **knobs** — the mixture, the schedule, the noise level — and re-run
# everything. The whole notebook runs in a few seconds on a CPU.
#
# Convention: $x_t = \alpha_t x_0 + \sigma_t \varepsilon$, data at $t = 0$ (see the book's notation
# chapter for how this maps onto DDPM, EDM and the rectified-flow articles).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

import diffmath as dm


def f64(v):
    return torch.tensor(v, dtype=torch.float64)


# %% [markdown]
# ## Knobs

# %%
weights = [0.6, 0.4]
means = [[-1.5, 0.0], [2.0, 1.0]]
covs = [[0.4, 0.1], [0.2, 0.6]]  # diagonal variances; try isotropic [0.3, 0.1] or full (K, d, d)
schedule = dm.schedules.VPCosine()  # or dm.schedules.RectifiedFlow(), dm.schedules.VPLinear()
t = 0.4  # the noise level to look at, in the schedule's own time (0 = data)
n_paths = 12  # PF-ODE trajectories to draw
seed = 0

# %%
gm = dm.GaussianMixture(weights, means, covs)
alpha, sigma = schedule.alpha(f64(t)), schedule.sigma(f64(t))
gt = gm.diffuse(alpha, sigma)  # the exact law of x_t: again a mixture
print(gm)
print(f"t = {t}: alpha = {alpha:.4f}, sigma = {sigma:.4f}, log-SNR = {schedule.log_snr(f64(t)):.3f}")

# %% [markdown]
# ## Score and denoiser at a few points
#
# Tweedie's formula ties them together: $\nabla \log p_t(x) = (\alpha\, \mathbb E[x_0 \mid x_t = x] - x)/\sigma^2$.

# %%
gen = torch.Generator().manual_seed(seed)
x = gt.sample(5, generator=gen)
score = gt.score(x)
denoised = gm.denoise(x, alpha, sigma)
tweedie = (alpha * denoised - x) / sigma**2
for xi, si, di in zip(x, score, denoised):
    print(f"x = {xi.numpy().round(3)}  score = {si.numpy().round(3)}  E[x0|x] = {di.numpy().round(3)}")
print("largest |score - Tweedie|:", float((score - tweedie).abs().max()))

# %% [markdown]
# ## The picture at noise level t

# %%
lim = 4.5
g = np.linspace(-lim, lim, 120)
X, Y = np.meshgrid(g, g)
grid = f64(np.stack([X.ravel(), Y.ravel()], axis=-1))
logp = gt.log_prob(grid).reshape(X.shape).numpy()

q = np.linspace(-lim, lim, 17)
QX, QY = np.meshgrid(q, q)
pts = f64(np.stack([QX.ravel(), QY.ravel()], axis=-1))
s_field = gt.score(pts).numpy()
d_shift = (gm.denoise(pts, alpha, sigma) - pts).numpy()

fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax in axes:
    ax.contourf(X, Y, np.exp(logp), levels=12, cmap="Blues")
    ax.set_aspect("equal")
axes[0].quiver(QX, QY, s_field[:, 0], s_field[:, 1], color="k")
axes[0].set_title("score of $p_t$")
axes[1].quiver(QX, QY, d_shift[:, 0], d_shift[:, 1], angles="xy", scale_units="xy", scale=1, color="k")
axes[1].set_title(r"$x \to \mathbb{E}[x_0 \mid x_t = x]$")
fig.tight_layout()

# %% [markdown]
# ## Probability-flow trajectories from noise to data
#
# The reference solver works in EDM variables ($x/\alpha$ against $\sigma/\alpha$), where every
# schedule gives the same ODE; `dm.flows.solve_schedule` maps in and out of a schedule's own time.

# %%
t_start, t_end = 0.95, 0.02
times = np.linspace(t_start, t_end, 30)
x_path = [gm.diffuse(schedule.alpha(f64(t_start)), schedule.sigma(f64(t_start))).sample(n_paths, generator=gen)]
for t0, t1 in zip(times[:-1], times[1:]):
    x_path.append(dm.flows.solve_schedule(schedule, gm.denoise, x_path[-1], f64(t0), f64(t1), rtol=1e-8, atol=1e-8))
x_path = torch.stack(x_path).numpy()

fig, ax = plt.subplots(figsize=(5, 4.6))
ax.contour(X, Y, gm.log_prob(grid).reshape(X.shape).numpy(), levels=10, colors="0.6", linewidths=0.7)
for i in range(n_paths):
    ax.plot(x_path[:, i, 0], x_path[:, i, 1], lw=1)
ax.scatter(*x_path[0].T, c="tab:red", s=12, label=f"t = {t_start}")
ax.scatter(*x_path[-1].T, c="k", s=12, label=f"t = {t_end}")
ax.set_aspect("equal")
ax.legend(fontsize=8)
ax.set_title(f"PF-ODE, {type(schedule).__name__}")
fig.tight_layout()

# %% [markdown]
# ## Exactness check: a single Gaussian
#
# For one Gaussian the PF-ODE has a closed-form solution (`dm.flows.gaussian_flow`); the reference
# solver should agree with it to about float64 precision.

# %%
g1 = dm.GaussianMixture([1.0], [means[0]], [covs[0]])
a0, s0 = schedule.alpha(f64(t_start)), schedule.sigma(f64(t_start))
a1, s1 = schedule.alpha(f64(t_end)), schedule.sigma(f64(t_end))
x_start = g1.diffuse(a0, s0).sample(50, generator=gen)
exact = dm.flows.gaussian_flow(g1.means[0], g1.covariances()[0], x_start, a0, s0, a1, s1)
solved = dm.flows.solve_schedule(schedule, g1.denoise, x_start, f64(t_start), f64(t_end))
print("largest |solver - closed form|:", float((solved - exact).abs().max()))
