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
# # Playing with the W-distance bound (part 16)
#
# A companion to the book's chapter *The W-distance is bounded by score matching*. Two toys where
# everything is exact:
#
# 1. the **counterexample** to the ODE lemma as written: $f(x) = -Kx + \delta$, $g(y) = -Ky$, both
#    flows started from the same sample at $t = T$ and run back to $t = 0$;
# 2. the **running example**: 1-D Gaussian-mixture data, a VP schedule, and a score model that is the
#    score of a (deliberately wrong) Gaussian, so the model sampler is affine, its output law is a
#    mixture, and the true $\mathcal W_2$ is a 1-D quadrature.
#
# Change the cells marked **knobs** and re-run. Convention (article 16, also the library's): data at
# $t = 0$, noise at $t = T$, samplers run backward from $T$ to $0$, fields written as forward-time
# velocities.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from diffmath import schedules
from diffmath import wasserstein as wd
from diffmath import wbound as wb
from diffmath.claims import part16

torch.set_default_dtype(torch.float64)

# %% [markdown]
# ## 1. The counterexample — knobs

# %%
K = 2.0  # contraction rate of the model field g(y) = -K y (try K < 0: then (10) and the backward condition swap roles)
delta = 0.1  # constant offset between the two fields
T = 3.0  # horizon

# %%
v = part16.counterexample_values(K, T, delta)
print(f"true W2[p0, q0]              = {v['w2']:.6g}   (closed form delta (e^KT - 1)/K = {delta * math.expm1(K * T) / K:.6g})")
print(f"bound with L = -K (from (10)) = {v['literal']:.6g}")
print(f"bound with L = 0              = {v['zero']:.6g}")
print(f"bound with L = K (backward)   = {v['corrected']:.6g}")

Ts = np.linspace(0.05, T, 40)
vals = [part16.counterexample_values(K, t, delta) for t in Ts]
fig, ax = plt.subplots(figsize=(6, 3.8))
for key, style, label in (("w2", "k-", "true W2"), ("corrected", "g.", "corrected bound"), ("literal", "r-", "literal bound")):
    ax.plot(Ts, [x[key] for x in vals], style, label=label)
ax.set_yscale("log")
ax.set_xlabel("T")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 2. The running example — knobs

# %%
weights, means, variances = [0.3, 0.7], [-2.0, 1.5], [0.3, 0.5]  # the data mixture
beta = 6.0  # VP with constant beta on [0, 1]
shift, scale = 0.3, 1.2  # the model's Gaussian: data mean + shift, data variance * scale

# %%
data = wd.gaussian_mixture_1d(weights, means, variances)
model = wb.MixtureGaussianModel.moment_matched(data, schedules.VPLinear(beta, beta), shift=shift, scale=scale)
print(f"model Gaussian: mean {model.model_mean:.3f}, variance {model.model_var:.3f}")
w2 = model.w2()
bounds = {k: model.bound(k) for k in wb.BOUND_KINDS}
print(f"true W2[p0, q0] (ODE sampler) = {w2:.4f}")
for k, b in bounds.items():
    flag = "holds" if b >= w2 else "FAILS"
    print(f"  bound {k:9s} = {b:.4f}  ({flag})")
print(f"true W2 of the model's reverse SDE = {model.w2_sde():.4f}, SDE-form bound = {model.bound_kwon_sde():.4f}")

# %% [markdown]
# The synchronous coupling, measured on sample paths: exact samples of $p_T$ pushed to $t = 0$ by
# the true probability-flow ODE (reference solver, exact mixture score) and by the model's flow.
# On the line this coupling is optimal, so its cost matches $\mathcal W_2^2$.

# %%
z, x0, y0 = model.paths(2000, seed=0)
d2 = (x0 - y0) ** 2
print(f"Wtilde^2 = {d2.mean():.4f} ± {d2.std() / math.sqrt(len(d2)):.4f}   vs   W2^2 = {w2 ** 2:.4f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
grid = torch.linspace(-5, 5, 400)
axes[0].plot(grid, data.log_prob(grid[:, None]).exp(), label="data $p_0$")
axes[0].plot(grid, model.model_output().log_prob(grid[:, None]).exp(), label="ODE model $q_0$")
axes[0].plot(grid, model.sde_output().log_prob(grid[:, None]).exp(), "--", label="SDE model $q_0$")
axes[0].legend()
ts = np.linspace(0, 1, 201)
axes[1].plot(ts, model.score_gap(ts), label=r"score error $\epsilon_t$")
axes[1].plot(ts, model.L_corrected(ts), label=r"backward $L_t$")
axes[1].plot(ts, model.L_literal(ts), label=r"literal $L_t$ (sign of (10))")
axes[1].axhline(0, color="0.6", lw=0.8)
axes[1].legend()
axes[1].set_xlabel("t")
fig.tight_layout()

# %% [markdown]
# ## 3. The SDE obstruction (26) — knobs

# %%
theta = math.pi / 3  # rotation angle of the synchronous coupling x = z, y = R z
S1 = torch.tensor([[1.0, 0.5], [0.5, 0.8]])  # two Gaussians for the optimal coupling
S2 = torch.tensor([[0.3, 0.0], [0.0, 2.0]])

# %%
eye, zero = torch.eye(2), torch.zeros(2)
rot = wb.obstruction_samples(zero, eye, zero, eye, 50_000, coupling="rotation", rotation=wb.rotation(2, theta))
print(f"synchronous (rotation): mean {rot.mean():.4f}, exact -4(1 - cos theta) = {-4 * (1 - math.cos(theta)):.4f}")
ot = wb.obstruction_samples(zero, S1, zero, S2, 50_000)
print(f"optimal coupling:       mean {ot.mean():.4f}, exact tr(A + A^-1 - 2I) = {wb.ot_obstruction(S1, S2):.4f}")
