"""Monte Carlo estimates with their standard errors, estimated from the same samples.

The suite's rule (DESIGN.md): a Monte Carlo check passes when
:math:`|\\hat\\mu - \\mu| \\le 5\\,\\widehat{\\mathrm{SE}}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffmath._validation import as_tensor

Z_BOUND = 5.0
"""How many standard errors a Monte Carlo estimate may stray from the truth."""


@dataclass(frozen=True)
class Estimate:
    value: torch.Tensor
    se: torch.Tensor

    def z(self, truth) -> torch.Tensor:
        """:math:`|\\hat\\mu-\\mu|/\\widehat{\\mathrm{SE}}`, elementwise (0 where the samples are constant
        and equal to the truth, ``inf`` where they are constant and differ from it)."""
        gap = (self.value - torch.as_tensor(truth, dtype=self.value.dtype, device=self.value.device)).abs()
        inf = torch.full_like(gap, float("inf"))
        return torch.where(self.se > 0, gap / self.se, torch.where(gap == 0, torch.zeros_like(gap), inf))


def mean(samples: torch.Tensor) -> Estimate:
    """Sample mean over axis 0 and its standard error :math:`s/\\sqrt n`."""
    samples = as_tensor(samples, "samples")
    if samples.ndim == 0:
        raise ValueError("samples must have shape (n, ...), got a number")
    n = samples.shape[0]
    if n < 2:
        raise ValueError(f"samples must hold at least 2 samples for a standard error, got {n}")
    return Estimate(samples.mean(0), samples.std(0, unbiased=True) / n**0.5)


def self_normalised(values: torch.Tensor, log_weights: torch.Tensor) -> Estimate:
    """Self-normalised importance-sampling estimate of :math:`E_w[\\text{values}]`, with the
    delta-method standard error :math:`\\sqrt{\\sum_i \\bar w_i^2 (v_i - \\hat\\mu)^2}` (weights normalised).
    ``values`` (n, ...) and ``log_weights`` (n,), finite except for ``-inf`` (a zero weight), not all ``-inf``.
    """
    values = as_tensor(values, "values")
    if values.ndim == 0:
        raise ValueError("values must have shape (n, ...), got a number")
    lw = log_weights if isinstance(log_weights, torch.Tensor) else torch.as_tensor(log_weights, dtype=torch.float64)
    if lw.is_meta or lw.is_complex() or lw.dtype == torch.bool:
        as_tensor(lw, "log_weights")  # raises the library's message for a meta, complex or boolean tensor
    if tuple(lw.shape) != (values.shape[0],):
        raise ValueError(f"log_weights must have shape (n,) with n = {values.shape[0]} the number of values, got {tuple(lw.shape)}")
    if torch.isnan(lw).any() or (lw == torch.inf).any():
        raise ValueError("log_weights contains NaN or +Inf")
    if (lw == -torch.inf).all():
        raise ValueError("log_weights are all -inf: every weight is 0")
    w = torch.softmax(lw, 0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    est = (w.reshape(shape) * values).sum(0)
    se = torch.sqrt(((w.reshape(shape) ** 2) * (values - est) ** 2).sum(0))
    return Estimate(est, se)
