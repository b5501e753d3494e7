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
# # Playing with GANs as gradient flows
#
# A companion to the book's chapter on part 19. Pick a Gaussian data law, a starting generator and
# MonoFlow's $h$; the notebook moves a particle cloud with velocity $h'(\log r)\nabla\log r$, where
# $\log r$ is the exact log-ratio between the data and the cloud's own Gaussian fit (a law-dependent
# velocity), and compares the KL curves of the three classic losses. It then draws the generator loss
# against a frozen discriminator, to see why many generator steps go wrong.
#
# Convention (the article's): the generator's law is at $t=0$ and flows to the data as $t$ grows;
# $D$ is the logit.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

from diffmath import gan, gradient_flows as gf

# %% [markdown]
# ## Knobs

# %%
m, s = 3.0, 0.6         # data N(m, s^2)
m0, s0 = -3.0, 0.8      # generator at t = 0 (far away: the minimax loss hardly moves)
n, t1, steps = 4000, 6.0, 300

# %% [markdown]
# ## Particles under MonoFlow's family

# %%
def velocity(h):
    def v(x):
        mq, vq = x.mean(), x.var(unbiased=False)
        log_ratio = lambda y: gf.log_normal_1d(y, m, s) - gf.log_normal_1d(y, mq, vq.sqrt())
        return gan.monoflow_velocity(x, log_ratio, h)
    return v


x0 = m0 + s0 * torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for h in gan.H_FAMILY:
    traj = gf.simulate_particles(x0, velocity(h), t1, steps)
    kl = [gf.gaussian_kl_1d(x.mean(), x.std(unbiased=False), m, s).item() for x in traj]
    ax.semilogy(np.linspace(0, t1, steps + 1), kl, label=f"h = {h}")
ax.set_xlabel("flow time t")
ax.set_ylabel(r"KL$(\hat q_t\|p)$ (Gaussian fit of the cloud)")
ax.legend()
ax.set_title("every increasing h descends, but minimax barely moves when the fakes are far away", fontsize=9)

# %% [markdown]
# ## The generator loss against a frozen discriminator
#
# $D^*$ frozen at the generator $\mathcal N(\mu_k,\sigma_k^2)$: the expected loss $-D^*$ as a function of
# the new $(\mu,\sigma)$. With $\sigma_k<s$ it falls without bound as $\sigma$ grows.

# %%
mu_k, sig_k = 0.0, 0.4
mus, sigs = np.meshgrid(np.linspace(-2, 5, 120), np.linspace(0.05, 3, 120))
vals = gan.frozen_generator_objective(torch.tensor(mus), torch.tensor(sigs), mu_k, sig_k, m, s).numpy()
fig, ax = plt.subplots(figsize=(6, 4))
cs = ax.contourf(mus, sigs, vals, levels=30, cmap="viridis")
fig.colorbar(cs, ax=ax)
ax.plot(mu_k, sig_k, "r*", ms=12, label=r"current $(\mu_k,\sigma_k)$")
ax.set_xlabel(r"$\mu$")
ax.set_ylabel(r"$\sigma$")
ax.legend()
