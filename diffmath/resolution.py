r"""Resolution operators on images: average pooling :math:`\mathcal D`, nearest upsampling :math:`\mathcal U`.

Articles 22 and 23 (kexue.fm 10047, 10055) move images between a resolution :math:`H\times W` and
:math:`H/s\times W/s`:

* :math:`\mathcal D` (:func:`pool`): the mean of each :math:`s\times s` block (article 22, eq. 2);
* :math:`\mathcal U` (:func:`upsample`): each low-resolution pixel repeated over its block
  (nearest-neighbour interpolation, article 23);
* :math:`P=\mathcal U\mathcal D` (:func:`project`): replaces each block by its mean.

Their algebra (claim C23.5): :math:`\mathcal D\mathcal U = I`, :math:`P^2 = P`, :math:`P^\top = P`,
:math:`\mathcal D(I-P)=0` and :math:`\mathcal D = \mathcal U^\top/s^2`, so :math:`P` is the orthogonal
projector onto block-constant images. Bilinear upsampling (:func:`upsample_bilinear`, as some
implementations allow) breaks :math:`\mathcal D\mathcal U = I`.

Images are tensors of shape ``(..., H, W)`` (e.g. ``(B, C, H, W)``); ``s`` is a positive integer
dividing ``H`` and ``W``. Block :math:`(a, b)` holds the pixels :math:`(sa+u, sb+v)`,
:math:`0\le u, v < s`. :func:`pool_matrix` and :func:`upsample_matrix` are the same maps as dense
matrices on row-major flattened images, for checks on small grids.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from diffmath._validation import as_tensor


def check_factor(s, H: Optional[int] = None, W: Optional[int] = None, name: str = "s") -> int:
    """``s`` as an int, checked to be a positive integer (dividing ``H`` and ``W`` when given)."""
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not float(s).is_integer() or s < 1:
        raise ValueError(f"{name} must be a positive integer, got {s!r}")
    s = int(s)
    if H is not None and (H % s or W % s):
        raise ValueError(f"{name} = {s} must divide the image size {H}x{W}")
    return s


def _image(x, name: str = "x") -> torch.Tensor:
    x = as_tensor(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W), got {tuple(x.shape)}")
    return x


def pool(x, s) -> torch.Tensor:
    r""":math:`\mathcal D x`: the mean over each :math:`s\times s` block; ``(..., H, W) -> (..., H/s, W/s)``."""
    x = _image(x)
    H, W = x.shape[-2:]
    s = check_factor(s, H, W)
    blocks = x.reshape(*x.shape[:-2], H // s, s, W // s, s)
    return blocks.mean(dim=(-3, -1))


def upsample(x, s) -> torch.Tensor:
    r""":math:`\mathcal U x`: each pixel repeated over an :math:`s\times s` block; ``(..., h, w) -> (..., sh, sw)``."""
    x = _image(x)
    s = check_factor(s)
    return x.repeat_interleave(s, dim=-2).repeat_interleave(s, dim=-1)


def project(x, s) -> torch.Tensor:
    r""":math:`P x = \mathcal U\mathcal D x`: each block replaced by its mean (the orthogonal projector
    onto block-constant images)."""
    return upsample(pool(x, s), s)


def upsample_bilinear(x, s) -> torch.Tensor:
    r"""Bilinear upsampling by ``s`` (``torch.nn.functional.interpolate``, ``align_corners=False``).

    Not a right inverse of :func:`pool`: :math:`\mathcal D\,\mathcal U_{\rm bilinear}\ne I` in general,
    so the identities of claim C23.5 fail with it (measured there).
    """
    x = _image(x)
    s = check_factor(s)
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    out = F.interpolate(flat, scale_factor=s, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-2:])


def pool_matrix(H: int, W: int, s: int, dtype=torch.float64) -> torch.Tensor:
    r""":math:`\mathcal D` as a dense ``((H/s)(W/s), HW)`` matrix on row-major flattened images."""
    s = check_factor(s, H, W)
    h, w = H // s, W // s
    rows = torch.arange(H).div(s, rounding_mode="floor")[:, None] * w + torch.arange(W).div(s, rounding_mode="floor")[None, :]
    M = torch.zeros(h * w, H * W, dtype=dtype)
    M[rows.reshape(-1), torch.arange(H * W)] = 1.0 / (s * s)
    return M


def upsample_matrix(h: int, w: int, s: int, dtype=torch.float64) -> torch.Tensor:
    r""":math:`\mathcal U` as a dense ``(s^2hw, hw)`` matrix on row-major flattened images."""
    s = check_factor(s)
    H, W = s * h, s * w
    src = torch.arange(H).div(s, rounding_mode="floor")[:, None] * w + torch.arange(W).div(s, rounding_mode="floor")[None, :]
    M = torch.zeros(H * W, h * w, dtype=dtype)
    M[torch.arange(H * W), src.reshape(-1)] = 1.0
    return M


def signal_power(x) -> torch.Tensor:
    r"""Mean squared pixel value of each image: :math:`P(x) = \frac1{HW}\sum_{ij}x_{ij}^2` over the last
    two axes (and a channel axis if ``x`` is ``(B, C, H, W)``: pass it flattened into H or average after)."""
    x = _image(x)
    return (x**2).mean(dim=(-2, -1))


def pooling_gain(x, s) -> torch.Tensor:
    r"""The signal-power gain of pooling, :math:`g = s^2\,P(\mathcal Dx)/P(x)`, per image (claim C22.2).

    Pooling divides the power of i.i.d. noise by :math:`s^2`, so :math:`g` is the factor by which the
    signal-to-noise *power* ratio grows. :math:`0\le g\le s^2`, with :math:`g = s^2` exactly for
    block-constant images (Jensen's inequality on each block). Raises for an all-zero image.
    """
    x = _image(x)
    p = signal_power(x)
    if (p == 0).any():
        raise ValueError("x has an image that is identically 0: its signal power is 0")
    s = check_factor(s, *x.shape[-2:])
    return s * s * signal_power(pool(x, s)) / p
