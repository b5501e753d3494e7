r"""A small EDM-style U-Net, EDM's preconditioning and its training loss (chapter 24, Skip-Tuning).

The network follows the layout of EDM's U-Nets (Karras et al. 2022, ``SongUNet``/``DhariwalUNet``) at toy
size: residual blocks ``GroupNorm → SiLU → conv → (+ noise embedding) → GroupNorm → SiLU → conv`` with a
1×1 convolution on the *unnormalised* input when the channel count changes (EDM's ``UNetBlock``, the path
Ma et al. 2024, App. C, single out), average-pool downsampling, nearest upsampling, and **long skip
connections**: every encoder stage pushes its output on a stack and every decoder block pops one and
concatenates it *after* the up-path features, ``cat([u, d])`` (EDM's ``torch.cat([x, skips.pop()])``).
The decoder pops in reverse push order, so the first skip it pops is the deepest one.

Skip-Tuning (article 24; Ma et al. 2024, Definition 3.1) multiplies the popped skip by ρ before the
concatenation; :mod:`diffmath.skip_tuning` builds the ρ's. :meth:`UNet.forward` takes them as
``skip_scales`` **in pop order** (index 0 = the first popped = the bottom skip), each a number or a
per-image ``(batch,)`` tensor.

Preconditioning (Karras et al. 2022, Table 1): :math:`D(x;\sigma)=c_{skip}x+c_{out}F(c_{in}x;c_{noise})`
with :math:`c_{skip}=\sigma_d^2/(\sigma^2+\sigma_d^2)`, :math:`c_{out}=\sigma\sigma_d/\sqrt{\sigma^2+\sigma_d^2}`,
:math:`c_{in}=1/\sqrt{\sigma^2+\sigma_d^2}`, :math:`c_{noise}=\tfrac14\ln\sigma`; the loss is
:math:`\lambda(\sigma)\|D(x_0+\sigma n;\sigma)-x_0\|^2` with :math:`\lambda=(\sigma^2+\sigma_d^2)/(\sigma\sigma_d)^2`
and :math:`\ln\sigma\sim\mathcal N(P_{mean},P_{std}^2)`. The network computes in float32; the
preconditioned denoiser accepts any floating dtype and returns the input's.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from diffmath._validation import as_tensor


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":math:`(c_{skip}, c_{out}, c_{in}, c_{noise})` of EDM (Karras et al. 2022, Table 1) at ``sigma`` (> 0)."""
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
    s2, d2 = sigma * sigma, sigma_data * sigma_data
    return d2 / (s2 + d2), sigma * sigma_data / torch.sqrt(s2 + d2), 1 / torch.sqrt(s2 + d2), torch.log(sigma) / 4


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    r"""EDM's loss weight :math:`\lambda(\sigma)=(\sigma^2+\sigma_d^2)/(\sigma\sigma_d)^2 = 1/c_{out}^2`."""
    return (sigma * sigma + sigma_data * sigma_data) / (sigma * sigma_data) ** 2


class PositionalEmbedding(nn.Module):
    r"""Sinusoidal embedding of :math:`c_{noise}` (EDM's ``PositionalEmbedding``, ``endpoint=False``)."""

    def __init__(self, dim: int, max_positions: int = 10000):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {dim}")
        self.dim, self.max_positions = dim, max_positions

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        freqs = torch.arange(self.dim // 2, dtype=torch.float32, device=c.device) / (self.dim // 2)
        freqs = (1 / self.max_positions) ** freqs
        arg = c.to(torch.float32)[:, None] * freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class UNetBlock(nn.Module):
    r"""EDM's residual block (no attention, no resampling):

    :math:`h = \mathrm{conv}_0(\mathrm{SiLU}(\mathrm{GN}_0(x))) + A\,e`,
    :math:`h = \mathrm{conv}_1(\mathrm{SiLU}(\mathrm{GN}_1(h)))`,
    :math:`y = (h + \mathrm{skip}(x))/\sqrt2` with ``skip`` a 1×1 convolution when the channel counts differ
    (the identity otherwise). ``groups`` groups in each GroupNorm (eps ``eps``).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        for name, c in (("in_channels", in_channels), ("out_channels", out_channels)):
            if c % groups:
                raise ValueError(f"{name} = {c} is not divisible by groups = {groups}")
        self.norm0 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.affine = nn.Linear(emb_channels, out_channels)
        self.norm1 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.silu(self.norm0(x))) + self.affine(emb)[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(h)))
        return (h + (x if self.skip is None else self.skip(x))) / math.sqrt(2)


class UNet(nn.Module):
    r"""A small EDM-style U-Net :math:`F(x; c_{noise})` on ``(batch, in_channels, H, W)`` images.

    Resolutions ``H, H/2, …`` one per entry of ``channel_mult`` (channels ``channels * mult``), ``blocks``
    residual blocks per resolution in the encoder and ``blocks + 1`` in the decoder (each decoder block pops
    one skip), two blocks in the middle. Skips pushed, in order: the input convolution, each encoder block,
    each downsampling; :attr:`skip_names` lists them in push order and :attr:`skip_channels` their channels.
    """

    def __init__(self, in_channels: int = 1, channels: int = 16, channel_mult: Sequence[int] = (1, 2, 2),
                 blocks: int = 1, groups: int = 4, emb_channels: Optional[int] = None):
        super().__init__()
        if channels < 1 or blocks < 1 or not channel_mult or min(channel_mult) < 1:
            raise ValueError("channels, blocks and every channel_mult entry must be >= 1")
        emb = emb_channels or 4 * channels
        self.channel_mult, self.blocks = tuple(channel_mult), blocks
        self.embed = PositionalEmbedding(channels)
        self.map0, self.map1 = nn.Linear(channels, emb), nn.Linear(emb, emb)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        names, chans = ["conv_in"], [channels]
        c = channels
        self.enc = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            if level > 0:
                names.append(f"down{level}")
                chans.append(c)
            for b in range(blocks):
                block = UNetBlock(c, channels * mult, emb, groups)
                c = channels * mult
                self.enc.append(block)
                names.append(f"enc{level}.{b}")
                chans.append(c)
        self.mid = nn.ModuleList([UNetBlock(c, c, emb, groups), UNetBlock(c, c, emb, groups)])
        self.skip_names, self.skip_channels = tuple(names), tuple(chans)
        self.dec = nn.ModuleList()
        pops = list(chans)
        for level in reversed(range(len(channel_mult))):
            for _ in range(blocks + 1):
                cout = channels * channel_mult[level]
                self.dec.append(UNetBlock(c + pops.pop(), cout, emb, groups))
                c = cout
        self.norm_out = nn.GroupNorm(groups, c, eps=1e-5)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        self.in_channels = in_channels

    @property
    def n_skips(self) -> int:
        """k + 1, the number of long skip connections."""
        return len(self.skip_names)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, skip_scales: Optional[Sequence] = None,
                record: Optional[list] = None) -> torch.Tensor:
        """``skip_scales``: ρ per skip **in pop order** (index 0 = bottom), numbers or ``(batch,)`` tensors.
        ``record``: a list that receives, per decoder block, ``(skip name, up-path u, scaled skip ρd)``."""
        if skip_scales is not None and len(skip_scales) != self.n_skips:
            raise ValueError(f"skip_scales must have {self.n_skips} entries (one per skip, pop order), got {len(skip_scales)}")
        emb = F.silu(self.map1(F.silu(self.map0(self.embed(c_noise)))))
        h = self.conv_in(x)
        skips = [h]
        levels = len(self.channel_mult)
        k = 0
        for level in range(levels):
            if level > 0:
                h = F.avg_pool2d(h, 2)
                skips.append(h)
            for _ in range(self.blocks):
                h = self.enc[k](h, emb)
                k += 1
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        j = 0
        for level in reversed(range(levels)):
            for b in range(self.blocks + 1):
                d = skips.pop()
                if skip_scales is not None:
                    rho = skip_scales[j]
                    if isinstance(rho, torch.Tensor) and rho.ndim:
                        rho = rho.to(d.dtype).reshape(-1, 1, 1, 1)
                    d = d * rho
                if record is not None:
                    record.append((self.skip_names[len(skips)], h, d))
                h = self.dec[j](torch.cat([h, d], dim=1), emb)
                j += 1
            if level > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h)))


class EDMDenoiser(nn.Module):
    r"""The preconditioned denoiser :math:`D(x;\sigma)=c_{skip}x+c_{out}F(c_{in}x;c_{noise})` (see the module
    docstring). ``sigma``: a number or a ``(batch,)`` tensor (> 0). ``skip_scales`` passes to the U-Net."""

    def __init__(self, net: UNet, sigma_data: float):
        super().__init__()
        if not (sigma_data > 0 and math.isfinite(sigma_data)):
            raise ValueError(f"sigma_data must be finite and > 0, got {sigma_data}")
        self.net, self.sigma_data = net, float(sigma_data)

    def forward(self, x: torch.Tensor, sigma, skip_scales: Optional[Sequence] = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError("x must be a floating tensor of shape (batch, channels, H, W)")
        s = sigma if isinstance(sigma, torch.Tensor) else torch.tensor(float(sigma))
        s = s.to(device=x.device, dtype=torch.float32).reshape(-1)
        if s.numel() == 1:
            s = s.expand(x.shape[0])
        if s.shape[0] != x.shape[0]:
            raise ValueError(f"sigma must be a number or a (batch,) tensor, got shape {tuple(s.shape)}")
        if not (s > 0).all():
            raise ValueError("sigma must be > 0")
        c_skip, c_out, c_in, c_noise = edm_preconditioning(s, self.sigma_data)
        xf = x.to(torch.float32)
        b = (-1, 1, 1, 1)
        out = c_skip.reshape(b) * xf + c_out.reshape(b) * self.net(c_in.reshape(b) * xf, c_noise, skip_scales)
        return out.to(x.dtype)


def edm_loss(denoiser: EDMDenoiser, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    r"""EDM's training loss, averaged over the batch: :math:`\lambda(\sigma)\,\|D(x_0+\sigma n;\sigma)-x_0\|^2`
    per pixel (Karras et al. 2022, eq. 8 with Table 1's weight)."""
    b = (-1, 1, 1, 1)
    err = denoiser(x0 + sigma.reshape(b) * noise, sigma) - x0
    w = edm_loss_weight(sigma, denoiser.sigma_data)
    return (w.reshape(b) * err * err).mean()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_flat(module: nn.Module, flat: torch.Tensor) -> None:
    """Load parameters from one flat float32 vector in :meth:`named_parameters` order (checks the size)."""
    flat = as_tensor(flat, "flat").to(torch.float32).reshape(-1)
    n = count_parameters(module)
    if flat.numel() != n:
        raise ValueError(f"the flat vector has {flat.numel()} entries, the module {n} parameters")
    with torch.no_grad():
        i = 0
        for p in module.parameters():
            p.copy_(flat[i: i + p.numel()].reshape(p.shape).to(p.device))
            i += p.numel()
