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
# # Testing a sampler against the exact flow
#
# A companion to the book's chapter of the same name. `diffmath.bench` runs a sampler on an exact law at several
# NFE budgets from shared noise and measures it against the exact probability-flow ODE: the error, the NFE it
# really spent, its order, mode flips, and for stochastic samplers a distance to the exact law.
#
# Change the **knobs** and re-run. To bench your own sampler, wrap it: `bench.KSampler(fn)` for a function
# `fn(model, x, sigmas, **kw)` (k-diffusion's convention), `bench.step_sampler(step, name=...)` for one update
# `step(model, x, sigma, sigma_next)`, `diffmath.diffusers_bench.DiffusersSampler(scheduler)` for a diffusers
# scheduler (`pip install "diffmath[bench]"`).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

from diffmath import bench
from diffmath import samplers as S

# %%
# knobs
LAW = "mixture-2d"          # mixture-2d, mixture-16d, lowrank-16d, image-8x8, empirical-2d
BUDGETS = [8, 16, 32]
SEEDS, POINTS = 2, 24

law = bench.named_law(LAW)

# %% [markdown]
# ## Your sampler, written as one step
#
# A midpoint (second-order) step in the noise level, written here from the formula; the bench measures its order.


# %%
def midpoint(model, x, s, s_next):
    sig = lambda v: torch.full((x.shape[0],), v, dtype=x.dtype)  # noqa: E731
    d = (x - model(x, sig(s))) / s
    if s_next == 0:
        return x - s * d                                    # the last step: the denoised estimate
    s_mid = 0.5 * (s + s_next)
    x_mid = x + (s_mid - s) * d
    return x + (s_next - s) * (x_mid - model(x_mid, sig(s_mid))) / s_mid


mine = bench.step_sampler(midpoint, name="my midpoint", evaluations=2)
results = {
    "my midpoint": bench.bench(mine, law, BUDGETS, law_name=LAW, seeds=SEEDS, points=POINTS),
    "diffmath euler": bench.bench(bench.KSampler(S.sample_euler), law, BUDGETS, law_name=LAW, seeds=SEEDS, points=POINTS),
    "diffmath dpm++(2m)": bench.bench(bench.KSampler(S.sample_dpmpp_2m), law, BUDGETS, law_name=LAW, seeds=SEEDS, points=POINTS),
}
for r in results.values():
    print(r.table())

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
for label, r in results.items():
    ax.loglog([row.nfe for row in r.rows], [row.error for row in r.rows], "o-", label=f"{label} (order {r.order:.2f})")
ax.set_xlabel("NFE")
ax.set_ylabel("RMS error vs exact flow")
ax.legend()
plt.show()

# %% [markdown]
# ## As a test in your own suite

# %%
results["my midpoint"].assert_order(2.0, slack=0.4)        # fails if the step is not second order
gap = bench.assert_same(bench.KSampler(S.sample_euler), bench.KSampler(S.sample_euler), law, 10, tol=0.0)
print("a sampler agrees with itself to", gap)
