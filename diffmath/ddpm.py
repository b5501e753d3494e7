r"""DDPM's ancestral step in Su's notation (article 3; restated as article 23, eq. 1).

Su writes the cumulative coefficients :math:`\bar\alpha_t, \bar\beta_t` (:math:`\bar\alpha^2+\bar\beta^2=1`;
the library's :math:`\alpha_t, \sigma_t`) and the one-step ones :math:`\alpha_t = \bar\alpha_t/\bar\alpha_{t-1}`,
:math:`\beta_t = \sqrt{1-\alpha_t^2}`, so that :math:`\bar\beta_t^2 = \beta_t^2 + \alpha_t^2\bar\beta_{t-1}^2`.
(DDPM's code stores :math:`\bar\alpha_t^2` as ``alphas_cumprod`` and :math:`\beta_t^2` as ``betas``.)

* :func:`posterior` — :math:`q(x_{t-1}\mid x_t, x_0) = \mathcal N(\tilde\mu, \tilde\sigma^2 I)` with
  :math:`\tilde\mu = \frac{\bar\alpha_{t-1}\beta_t^2}{\bar\beta_t^2}x_0 + \frac{\alpha_t\bar\beta_{t-1}^2}{\bar\beta_t^2}x_t`,
  :math:`\tilde\sigma = \bar\beta_{t-1}\beta_t/\bar\beta_t` (Ho et al. 2020, eq. 7);
* :func:`step_mean` — the mean of eq. (1), :math:`\frac1{\alpha_t}\big(x_t - \frac{\beta_t^2}{\bar\beta_t}\epsilon\big)`,
  which is :math:`\tilde\mu` with :math:`x_0 = (x_t-\bar\beta_t\epsilon)/\bar\alpha_t` (claim C23.1);
* :func:`step` — eq. (1) with the noise scale :math:`\tilde\sigma` or :math:`\beta_t`.
"""

from __future__ import annotations

from typing import Optional

import torch

from diffmath._validation import as_tensor


def coefficients(alpha_bar_t, alpha_bar_prev) -> dict:
    r"""Su's one-step coefficients from the cumulative :math:`\bar\alpha_t < \bar\alpha_{t-1}\le 1`:
    ``alpha`` :math:`=\bar\alpha_t/\bar\alpha_{t-1}`, ``beta``, ``beta_bar`` :math:`=\sqrt{1-\bar\alpha_t^2}`,
    ``beta_bar_prev``."""
    a = as_tensor(alpha_bar_t, "alpha_bar_t")
    ap = as_tensor(alpha_bar_prev, "alpha_bar_prev", dtype=a.dtype)
    if (a <= 0).any() or (ap > 1).any() or (a >= ap).any():
        raise ValueError("need 0 < alpha_bar_t < alpha_bar_prev <= 1 (the signal decays with t)")
    alpha = a / ap
    return {
        "alpha": alpha,
        "beta": torch.sqrt(1 - alpha**2),
        "beta_bar": torch.sqrt(1 - a**2),
        "beta_bar_prev": torch.sqrt(1 - ap**2),
        "alpha_bar": a,
        "alpha_bar_prev": ap,
    }


def posterior(x0, x_t, alpha_bar_t, alpha_bar_prev) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and standard deviation of :math:`q(x_{t-1}\mid x_t, x_0)` (Ho et al. 2020, eq. 7)."""
    c = coefficients(alpha_bar_t, alpha_bar_prev)
    x0, x_t = as_tensor(x0, "x0"), as_tensor(x_t, "x_t")
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 must have x_t's shape {tuple(x_t.shape)}, got {tuple(x0.shape)}")
    bb2 = c["beta_bar"] ** 2
    mean = (c["alpha_bar_prev"] * c["beta"] ** 2 / bb2) * x0 + (c["alpha"] * c["beta_bar_prev"] ** 2 / bb2) * x_t
    return mean, c["beta_bar_prev"] * c["beta"] / c["beta_bar"]


def step_mean(x_t, eps, alpha_bar_t, alpha_bar_prev) -> torch.Tensor:
    r"""The mean of article 23's eq. (1): :math:`\frac1{\alpha_t}\big(x_t-\frac{\beta_t^2}{\bar\beta_t}\epsilon\big)`."""
    c = coefficients(alpha_bar_t, alpha_bar_prev)
    x_t, eps = as_tensor(x_t, "x_t"), as_tensor(eps, "eps")
    if eps.shape != x_t.shape:
        raise ValueError(f"eps must have x_t's shape {tuple(x_t.shape)}, got {tuple(eps.shape)}")
    return (x_t - c["beta"] ** 2 / c["beta_bar"] * eps) / c["alpha"]


def step(
    x_t, eps, alpha_bar_t, alpha_bar_prev, *, noise: str = "posterior", generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    r"""One ancestral step, eq. (1): :func:`step_mean` plus :math:`\sigma_t z`, with
    :math:`\sigma_t = \bar\beta_{t-1}\beta_t/\bar\beta_t` (``noise="posterior"``) or :math:`\beta_t` (``"beta"``)."""
    if noise not in ("posterior", "beta"):
        raise ValueError(f"noise must be 'posterior' or 'beta', got {noise!r}")
    c = coefficients(alpha_bar_t, alpha_bar_prev)
    mean = step_mean(x_t, eps, alpha_bar_t, alpha_bar_prev)
    scale = c["beta_bar_prev"] * c["beta"] / c["beta_bar"] if noise == "posterior" else c["beta"]
    z = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device, generator=generator)
    return mean + scale * z
