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
# # Playing with score matching and conditional score matching
#
# A companion to the book's chapter on part 18. Pick a mixture, a noise level and a score model;
# the notebook estimates both losses on the same (paired) samples, their difference, and the
# constant $C_t=\frac{\alpha^2}{\sigma^4}\mathbb E\,\mathrm{tr}\,\mathrm{Cov}(x_0\mid x_t)$ it should equal,
# then trains the model a few steps on each loss and compares the gradients.
#
# Convention: $x_t=\alpha x_0+\sigma\varepsilon$, data at $t=0$; the conditional score is $-\varepsilon/\sigma$.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

from diffmath import montecarlo, score_matching as smod
from diffmath.toys import random_mixture

# %% [markdown]
# ## Knobs

# %%
K, d = 4, 2           # mixture size and dimension
alpha, sigma = 0.9, 0.4
n = 50_000            # paired samples
model = smod.mlp_score(d, width=32, seed=0)   # or smod.AffineScore(d)
gm = random_mixture(K, d, seed=1)

# %% [markdown]
# ## The two losses on paired samples

# %%
x0, eps, xt = smod.sample_pairs(gm, alpha, sigma, n, torch.Generator().manual_seed(0))
with torch.no_grad():
    sm, csm = smod.per_sample_losses(model, gm, alpha, sigma, x0, eps)
gap = smod.gap_per_sample(gm, alpha, sigma, xt)
for name, v in [("L_SM", sm), ("L_CSM", csm), ("L_CSM - L_SM", csm - sm), ("C_t", gap)]:
    est = montecarlo.mean(v)
    print(f"{name:>14}: {est.value.item():9.4f} ± {est.se.item():.4f}")
print("z of (L_CSM - L_SM - C_t):", montecarlo.mean(csm - sm - gap).z(0.0).item())

# %% [markdown]
# ## Training on either loss follows the same gradient
#
# Two copies of the model, one trained on SM (with the exact score) and one on CSM, from the same
# start and with the same minibatches. Their parameters stay close; the CSM losses sit $C_t$ above.

# %%
m_sm, m_csm = smod.mlp_score(d, width=32, seed=0), smod.mlp_score(d, width=32, seed=0)
opt_sm = torch.optim.SGD(m_sm.parameters(), lr=0.01)
opt_csm = torch.optim.SGD(m_csm.parameters(), lr=0.01)
hist = []
for step in range(150):
    idx = torch.randint(0, n, (512,), generator=torch.Generator().manual_seed(step))
    l_sm, _ = smod.per_sample_losses(m_sm, gm, alpha, sigma, x0[idx], eps[idx])
    _, l_csm = smod.per_sample_losses(m_csm, gm, alpha, sigma, x0[idx], eps[idx])
    opt_sm.zero_grad(); l_sm.mean().backward(); opt_sm.step()
    opt_csm.zero_grad(); l_csm.mean().backward(); opt_csm.step()
    dist = sum(((a - b) ** 2).sum() for a, b in zip(m_sm.parameters(), m_csm.parameters())).sqrt().item()
    hist.append((l_sm.mean().item(), l_csm.mean().item(), dist))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
axes[0].plot([h[0] for h in hist], label="SM loss (SM-trained)")
axes[0].plot([h[1] for h in hist], label="CSM loss (CSM-trained)")
axes[0].legend(); axes[0].set_xlabel("step")
axes[1].plot([h[2] for h in hist]); axes[1].set_xlabel("step"); axes[1].set_ylabel("parameter distance")
fig.tight_layout()
