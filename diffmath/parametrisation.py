r"""Conversions between the five things a diffusion network may predict, in one place.

With :math:`x = \alpha x_0 + \sigma\varepsilon` (a point and its noise level):

* ``x0``: :math:`\hat x_0`, the denoiser :math:`D` (EDM's :math:`D_\theta`);
* ``eps``: :math:`\hat\varepsilon = (x - \alpha\hat x_0)/\sigma` (DDPM's :math:`\epsilon_\theta`);
* ``score``: :math:`s = -\hat\varepsilon/\sigma = (\alpha\hat x_0 - x)/\sigma^2` (Song et al. 2021);
* ``v``: :math:`v = \alpha\hat\varepsilon - \sigma\hat x_0` (Salimans & Ho 2022);
* ``velocity``: :math:`u = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon` (flow matching, the PF-ODE).

Every conversion goes through the pair :math:`(\hat x_0, \hat\varepsilon)`, which any one
prediction determines given :math:`x`: from ``v``,
:math:`\hat x_0 = (\alpha x - \sigma v)/(\alpha^2+\sigma^2)`; from ``velocity``,
:math:`\hat x_0 = (\dot\sigma x - \sigma u)/(\alpha\dot\sigma - \sigma\dot\alpha)` (the denominator is
:math:`\alpha^2\, d(\sigma/\alpha)/dt > 0` for any schedule whose noise-to-signal ratio grows).
Exact for the true conditional expectations too, since every map is affine in the prediction.
"""

from __future__ import annotations

from typing import Optional

import torch

from diffmath._validation import as_tensor, common_dtype_device

KINDS = ("x0", "eps", "score", "v", "velocity")


def _check_kind(kind: str, name: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"{name} must be one of {KINDS}, got {kind!r}")


def _tensors(named: dict, coefficients: dict, *, divide_by_alpha: bool):
    """Validate the arrays (same shape, one dtype: float32 when they all are) and the coefficients (finite;
    broadcasting against the arrays; sigma > 0, alpha >= 0, or > 0 when a conversion divides by it); returns
    them as tensors of the arrays' dtype and device, in order."""
    # the arrays decide the dtype (float32 arrays stay float32 whatever numbers the coefficients are); every
    # tensor among the arguments must be on one device
    dtype, device = common_dtype_device(*named.values(), names=" and ".join(named))
    tensors = {k: v for k, v in coefficients.items() if isinstance(v, torch.Tensor)}
    if any(v.device != device for v in tensors.values()):
        raise ValueError(f"{', '.join(tensors)} must be on {'/'.join(named)}'s device {device}")
    arrays = {k: as_tensor(v, k, dtype=dtype, device=device) for k, v in named.items()}
    (first, ref), *rest = arrays.items()
    for k, v in rest:
        if v.shape != ref.shape:
            raise ValueError(f"{k} must have {first}'s shape {tuple(ref.shape)}, got {tuple(v.shape)}")
    coeffs = {}
    for k, v in coefficients.items():
        if v is None:
            coeffs[k] = None
            continue
        t = as_tensor(v, k, dtype=dtype, device=device)
        try:
            fits = torch.broadcast_shapes(t.shape, ref.shape) == ref.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"{k} must broadcast against {first}'s shape {tuple(ref.shape)} (a number, or a tensor with "
                             f"trailing unit axes), got shape {tuple(t.shape)}")
        coeffs[k] = t
    if (coeffs["sigma"] <= 0).any():
        raise ValueError("sigma must be > 0 (every conversion divides by it somewhere)")
    if (coeffs["alpha"] < 0).any() or (divide_by_alpha and (coeffs["alpha"] <= 0).any()):
        raise ValueError(f"alpha must be {'> 0 to recover x0 from it' if divide_by_alpha else '>= 0'}")
    return [*arrays.values(), *coeffs.values()]


def to_x0_eps(value, kind: str, x, alpha, sigma, dalpha=None, dsigma=None):
    """The pair :math:`(\\hat x_0, \\hat\\varepsilon)` determined by one prediction of the given kind.

    ``value`` and ``x`` have one shape; ``alpha``, ``sigma`` (``dalpha``, ``dsigma``) broadcast against it;
    ``sigma > 0``, and ``alpha > 0`` for ``eps`` and ``score`` (which divide by it)."""
    _check_kind(kind, "kind")
    value, x, alpha, sigma, dalpha, dsigma = _tensors(
        {"value": value, "x": x}, {"alpha": alpha, "sigma": sigma, "dalpha": dalpha, "dsigma": dsigma},
        divide_by_alpha=kind in ("eps", "score"),
    )
    return _to_x0_eps(value, kind, x, alpha, sigma, dalpha, dsigma)


def _to_x0_eps(value, kind, x, alpha, sigma, dalpha, dsigma):
    if kind == "x0":
        x0 = value
        return x0, (x - alpha * x0) / sigma
    if kind == "eps":
        eps = value
        return (x - sigma * eps) / alpha, eps
    if kind == "score":
        eps = -sigma * value
        return (x - sigma * eps) / alpha, eps
    if kind == "v":
        norm = alpha**2 + sigma**2
        return (alpha * x - sigma * value) / norm, (sigma * x + alpha * value) / norm
    if dalpha is None or dsigma is None:
        raise ValueError("velocity needs dalpha and dsigma (the schedule's time derivatives)")
    det = alpha * dsigma - sigma * dalpha
    return (dsigma * x - sigma * value) / det, (alpha * value - dalpha * x) / det


def from_x0_eps(x0, eps, kind: str, alpha, sigma, dalpha=None, dsigma=None):
    """The prediction of the given kind for the pair :math:`(\\hat x_0, \\hat\\varepsilon)` (one shape; the
    coefficients broadcast against it; ``sigma > 0``)."""
    _check_kind(kind, "kind")
    x0, eps, alpha, sigma, dalpha, dsigma = _tensors(
        {"x0": x0, "eps": eps}, {"alpha": alpha, "sigma": sigma, "dalpha": dalpha, "dsigma": dsigma}, divide_by_alpha=False
    )
    return _from_x0_eps(x0, eps, kind, alpha, sigma, dalpha, dsigma)


def _from_x0_eps(x0, eps, kind, alpha, sigma, dalpha, dsigma):
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "score":
        return -eps / sigma
    if kind == "v":
        return alpha * eps - sigma * x0
    if dalpha is None or dsigma is None:
        raise ValueError("velocity needs dalpha and dsigma (the schedule's time derivatives)")
    return dalpha * x0 + dsigma * eps


def convert(
    value: torch.Tensor,
    src: str,
    dst: str,
    *,
    x: torch.Tensor,
    alpha,
    sigma,
    dalpha: Optional[torch.Tensor] = None,
    dsigma: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Convert a prediction of kind ``src`` at the point ``x`` into kind ``dst``.

    ``alpha``, ``sigma`` (and, for ``velocity``, ``dalpha``, ``dsigma``) must broadcast against ``x``:
    pass numbers, or tensors with a trailing unit axis for per-point noise levels.
    """
    _check_kind(src, "src")
    _check_kind(dst, "dst")
    value, x, alpha, sigma, dalpha, dsigma = _tensors(
        {"value": value, "x": x}, {"alpha": alpha, "sigma": sigma, "dalpha": dalpha, "dsigma": dsigma},
        divide_by_alpha=src in ("eps", "score"),
    )
    x0, eps = _to_x0_eps(value, src, x, alpha, sigma, dalpha, dsigma)
    return _from_x0_eps(x0, eps, dst, alpha, sigma, dalpha, dsigma)
