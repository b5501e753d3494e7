r"""Upsample guidance (Hwang, Park & Jo 2024, arXiv 2404.01709), as article 23 (kexue.fm 10055) derives it.

A model trained at :math:`h\times w` generates at :math:`sh\times sw` with two approximations of the
unknown high-resolution noise prediction :math:`\epsilon^{\rm high}(x_t,t)`, split by the projector
:math:`P=\mathcal U\mathcal D` of :mod:`diffmath.resolution` (eq. 6):

* **main term** (eqs. 3-5, 7): pooling divides the noise variance by :math:`s^2`, so
  :math:`\mathcal Dx_t/\rho_t` with :math:`\rho_t = \alpha_t/\alpha_\tau` is a state of the
  low-resolution schedule at the time :math:`\tau` whose SNR is :math:`s^2` times that of :math:`t`
  (:func:`low_resolution_time`; VP: :math:`\rho_t^2 = \alpha_t^2+\sigma_t^2/s^2`), and
  :math:`\mathcal D\epsilon^{\rm high}\approx\frac1s\epsilon_\theta(\mathcal Dx_t/\rho_t,\tau)`;
* **detail term** (eq. 8): :math:`(I-P)\epsilon^{\rm high}\approx(I-P)\epsilon_\theta(x_t,t)`, the
  low-resolution model applied as it is to the large image (a CNN can: :func:`convolutional_eps_model`).

Their sum is :math:`\epsilon^{\rm approx}` (eq. 9), and the guided prediction (eq. 10) is
:math:`\tilde\epsilon = (1+w)\epsilon^{\rm approx} - w\,\epsilon_\theta
= \epsilon_\theta + (1+w)\,\mathcal U\big[\tfrac1s\epsilon_\theta(\mathcal Dx_t/\rho_t,\tau) - \mathcal D\epsilon_\theta(x_t,t)\big]`
(:class:`UpsampleGuidance`). **Two conventions for the scale:** Su's :math:`w` (guidance *beyond*
:math:`\epsilon^{\rm approx}`, :math:`w\approx0.2` recommended, :math:`w=-1` switching it off) and the
paper's :math:`w_t = 1 + w` (the weight of the guidance term itself; the unofficial diffusers port
defaults to 1.2). For latent models the paper guides only the first fraction :math:`\eta` of the
sampling, :math:`w_t = w` for :math:`t\ge(1-\eta)T` and :math:`-1` after (eq. 11).

Notation: the library's :math:`x_t = \alpha_tx_0 + \sigma_t\varepsilon` (Su's :math:`\bar\alpha_t,\bar\beta_t`),
:math:`\varepsilon`-models ``model(x_t, t)`` of a :class:`~diffmath.schedules.Schedule` with ``t`` a
number or a tensor of the batch shape, images ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from diffmath._validation import as_tensor
from diffmath.images import GaussianImage, multiplier_blocks
from diffmath.resolution import check_factor, pool, upsample
from diffmath.schedules import Schedule

EpsModel = Callable[[torch.Tensor, object], torch.Tensor]


def low_resolution_time(schedule: Schedule, t, s, *, clamp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(\tau, \rho_t)` of article 23, eq. (4), for the linear factor ``s``.

    :math:`\tau` has :math:`\mathrm{SNR}(\tau) = s^2\,\mathrm{SNR}(t)`, i.e. EDM noise level
    :math:`\sigma_t/(s\alpha_t)`, and :math:`\rho_t = n(\alpha_t, \sigma_t/s)` puts
    :math:`(\alpha_t,\sigma_t/s)/\rho_t` back on the schedule's family
    (:func:`~diffmath.schedules.family_normaliser`): VP :math:`\rho_t^2 = \alpha_t^2 + \sigma_t^2/s^2`
    (Su's power correction), VE :math:`\rho_t = 1`. Then :math:`\rho_t = \alpha_t/\alpha_\tau` and
    :math:`\mathcal D x_t/\rho_t = \alpha_\tau\mathcal Dx_0 + \sigma_\tau\varepsilon_{\rm low}` with
    :math:`\varepsilon_{\rm low} = s\mathcal D\varepsilon\sim\mathcal N(0,I)` (claim C23.3); for the
    cosine schedule :math:`\tau = \frac2\pi\arctan\big(\tan(\pi t/2)/s\big)`.

    A schedule whose SNR is capped (e.g. :class:`~diffmath.schedules.LogSNRCosine`) has no
    :math:`\tau` for times near its data end: that raises, unless ``clamp`` moves :math:`\tau` to the
    nearest end of the range (what a discrete implementation's nearest-timestep search does).
    """
    from diffmath.schedules import family_normaliser

    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    if not (isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s >= 1):
        raise ValueError(f"s must be a number >= 1, got {s!r}")
    t = schedule.times(t)
    tau = schedule.t_of_edm_sigma(schedule.edm_sigma(t) / s)
    if clamp:
        tau = tau.clamp(schedule.t_min, schedule.t_max)
    elif tau.numel() and (tau.min().item() < schedule.t_min or tau.max().item() > schedule.t_max):
        raise ValueError(
            f"no time tau of {schedule!r} has s^2 = {s * s:g} times the SNR at t = {t.min().item():.6g} "
            "(the schedule's SNR is capped there); pass clamp=True to use the nearest end of its range"
        )
    rho = family_normaliser(schedule.family, schedule.alpha(t), schedule.sigma(t) / s)[0]
    return tau, rho


def embed_kernel(k: torch.Tensor, H: int, W: int) -> torch.Tensor:
    r"""A periodic ``(h, w)`` convolution kernel placed on a larger ``(H, W)`` torus at the same signed pixel
    offsets (what a CNN's weight sharing does). The Nyquist offset :math:`\pm h/2` of an even size is
    split evenly between :math:`+h/2` and :math:`-h/2`, keeping a symmetric kernel symmetric."""
    h, w = k.shape[-2:]
    if H < h or W < w:
        raise ValueError(f"the target size {H}x{W} must be at least the kernel's {h}x{w}")

    def axis(x: torch.Tensor, n: int, N: int, dim: int) -> torch.Tensor:
        if N == n:
            return x
        shape = list(x.shape)
        shape[dim] = N
        out = torch.zeros(shape, dtype=x.dtype, device=x.device)
        for i in range(n):
            src = x.select(dim, i)
            if n % 2 == 0 and i == n // 2:
                out.select(dim, n // 2).add_(0.5 * src)
                out.select(dim, N - n // 2).add_(0.5 * src)
            else:
                out.select(dim, i if i < n / 2 else N - (n - i)).add_(src)
        return out

    return axis(axis(k, h, H, -2), w, W, -1)


def convolutional_eps_model(law: GaussianImage, schedule: Schedule) -> EpsModel:
    r"""The exact :math:`\varepsilon`-model of a *stationary* law with a constant mean, as a convolution that
    applies to images of any size at least the law's.

    At the law's own size it is the exact prediction
    :math:`\varepsilon = \sigma_t(\alpha_t^2\Sigma+\sigma_t^2I)^{-1}(x-\alpha_t\mu)`, a circular
    convolution with the kernel :math:`k_t = \mathcal F^{-1}[\sigma_t/(\alpha_t^2S+\sigma_t^2)]`
    (the Wiener filter). On a larger image the same kernel taps are applied (:func:`embed_kernel`):
    the toy's version of article 23's remark that a CNN trained on small images still runs, and
    keeps its local texture, on large ones (eq. 8).
    """
    if not isinstance(law, GaussianImage) or not law.is_stationary:
        raise ValueError("law must be a stationary GaussianImage (a convolutional model needs a circulant covariance)")
    mu = law.mean.mean(dim=(-2, -1))  # (C,)
    if (law.mean - mu[:, None, None]).abs().max().item() > 1e-12 * (1 + mu.abs().max().item()):
        raise ValueError("law must have a spatially constant mean for its model to apply at other sizes")
    C, h, w = law.shape
    S = law.eigenvalues

    def model(x_t, t) -> torch.Tensor:
        x = as_tensor(x_t, "x_t", dtype=law.dtype, device=law.device)
        if x.ndim < 3 or x.shape[-3] != C or x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(f"x_t must have shape (..., {C}, H, W) with H >= {h}, W >= {w}, got {tuple(x.shape)}")
        tt = schedule.times(t)
        a, s = schedule.alpha(tt).to(x), schedule.sigma(tt).to(x)
        if (s <= 0).any():
            raise ValueError("the noise level sigma(t) must be > 0")
        a_ = a.reshape(*a.shape, 1, 1, 1) if a.ndim else a  # (B, 1, 1, 1) or ()
        s_ = s.reshape(*s.shape, 1, 1, 1) if s.ndim else s
        transfer = s_ / (a_**2 * S + s_**2)  # (B, 1, h, w) or (h, w)
        kernel = torch.fft.ifft2(transfer).real
        H, W = x.shape[-2:]
        big = torch.fft.fft2(embed_kernel(kernel, H, W))
        centred = x - a_ * mu[:, None, None]
        return torch.fft.ifft2(big * torch.fft.fft2(centred)).real

    return model


class UpsampleGuidance:
    r"""Article 23's guided prediction (10) around a low-resolution :math:`\varepsilon`-model, as an
    :math:`\varepsilon`-model ``guided(x_t, t)`` of the same schedule at ``s`` times the resolution.

    ``guided.approx(x_t, t)`` is :math:`\epsilon^{\rm approx}` (9); ``guided.main_term(x_t, t)`` is
    :math:`\frac1s\epsilon_\theta(\mathcal Dx_t/\rho_t,\tau)` at the low resolution, with :math:`\tau`
    clamped to the schedule's range (:func:`low_resolution_time`). ``pixels`` counts
    the pixels the model has been evaluated on (the cost: one extra low-resolution call per guided
    step, :math:`1/s^2` of a high-resolution call).

    Parameters
    ----------
    model : ``model(x_t, t)``, applied both to the large image (the detail term) and to the pooled one
    schedule : the model's schedule (unchanged at the high resolution: nothing is retrained)
    s : the linear upscaling factor (an integer, pooling is ``s x s``)
    w : Su's scale (default 0.2); give ``paper_scale`` (the paper's :math:`w_t = 1 + w`) instead if you prefer
    eta : guide only while :math:`t\ge(1-\eta)\,t_{\max}` (eq. 11); ``eta = 1`` guides throughout
    """

    def __init__(self, model: EpsModel, schedule: Schedule, s: int, *, w: Optional[float] = None,
                 paper_scale: Optional[float] = None, eta: float = 1.0):
        if not callable(model):
            raise ValueError("model must be callable model(x_t, t)")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        if w is not None and paper_scale is not None:
            raise ValueError("give w (Su's convention) or paper_scale (= 1 + w), not both")
        w = 0.2 if w is None and paper_scale is None else (w if w is not None else paper_scale - 1.0)
        if not math.isfinite(w):
            raise ValueError(f"w must be finite, got {w!r}")
        if not (0.0 < eta <= 1.0):
            raise ValueError(f"eta must lie in (0, 1], got {eta!r}")
        self.model, self.schedule, self.s, self.w, self.eta = model, schedule, check_factor(s), float(w), float(eta)
        self.pixels = 0

    @property
    def paper_scale(self) -> float:
        """The paper's guidance scale :math:`w_t = 1 + w`."""
        return 1.0 + self.w

    def _call(self, x, t):
        self.pixels += x[..., 0, :, :].numel()
        return self.model(x, t)

    def weight(self, t) -> torch.Tensor:
        r"""Su's :math:`w_t`: ``w`` while :math:`t\ge(1-\eta)t_{\max}`, else :math:`-1` (no guidance)."""
        t = self.schedule.times(t)
        threshold = (1.0 - self.eta) * self.schedule.t_max
        return torch.where(t >= threshold, torch.full_like(t, self.w), torch.full_like(t, -1.0))

    def main_term(self, x_t, t) -> torch.Tensor:
        r""":math:`\frac1s\epsilon_\theta(\mathcal Dx_t/\rho_t, \tau)` at the low resolution (eq. 7's right side)."""
        tau, rho = low_resolution_time(self.schedule, t, self.s, clamp=True)
        rho = rho.reshape(*rho.shape, 1, 1, 1) if rho.ndim else rho
        return self._call(pool(x_t, self.s) / rho.to(x_t), tau) / self.s

    def approx(self, x_t, t) -> torch.Tensor:
        r""":math:`\epsilon^{\rm approx}` (eq. 9): :math:`\mathcal U[\text{main term}] + (I-P)\epsilon_\theta(x_t,t)`."""
        eps = self._call(x_t, t)
        return upsample(self.main_term(x_t, t), self.s) + eps - upsample(pool(eps, self.s), self.s)

    def __call__(self, x_t, t) -> torch.Tensor:
        x_t = as_tensor(x_t, "x_t")
        eps = self._call(x_t, t)
        wt = self.weight(t).to(x_t)
        gain = 1.0 + (wt.reshape(*wt.shape, 1, 1, 1) if wt.ndim else wt)
        if bool((gain == 0).all()):
            return eps
        correction = upsample(self.main_term(x_t, t) - pool(eps, self.s), self.s)
        return eps + gain * correction


# ------------------------------------------------------------------------------------------------
# how good are the two approximations, for Gaussian images (exact, through the polyphase blocks)
# ------------------------------------------------------------------------------------------------


def _levels(schedule: Schedule, t) -> tuple[float, float]:
    t = schedule.times(t)
    if t.ndim:
        raise ValueError("t must be a single time")
    return schedule.alpha(t).item(), schedule.sigma(t).item()


def _expected_sq(G: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_k\\mathrm{tr}(G M G^*)` over the blocks (the expected squared norm of G applied to N(0, M))."""
    return torch.einsum("hwir,hwrq,hwiq->", G, M, G.conj()).real


def main_term_error(law: GaussianImage, schedule: Schedule, t, s: int, *, metric: str = "law") -> float:
    r"""How far the main term (7) is from the exact :math:`\mathcal D\epsilon^{\rm high}`, for Gaussian data.

    With :math:`\tilde x = x_t - \alpha_t\mu`, both sides are linear in :math:`\tilde x`:
    :math:`A = \frac1{s\rho}E_{\rm low}(\tau)\mathcal D` with the exact prediction :math:`E_{\rm low}` of
    the pooled law (:meth:`~diffmath.images.GaussianImage.pool`) and :math:`B = \mathcal DE_{\rm high}(t)`.
    Returns :math:`\sqrt{\mathbb E\|(A-B)\tilde x\|^2/\mathbb E\|B\tilde x\|^2}` for :math:`x_t` from the
    diffused law (``metric="law"``), or :math:`\|A-B\|_F/\|B\|_F` (``metric="frobenius"``). Zero when
    :math:`P\Sigma(I-P) = 0` (claim C23.4).
    """
    if metric not in ("law", "frobenius"):
        raise ValueError(f"metric must be 'law' or 'frobenius', got {metric!r}")
    s = check_factor(s, *law.shape[-2:])
    a, sig = _levels(schedule, t)
    tau, rho = low_resolution_time(schedule, t, s)
    a_tau, s_tau = schedule.alpha(tau).item(), schedule.sigma(tau).item()
    M = law.blocks(s)
    n = s * s
    eye = torch.eye(n, dtype=M.dtype, device=M.device)
    Mt = a * a * M + sig * sig * eye
    d = torch.full((1, n), 1.0 / n, dtype=M.dtype, device=M.device)
    B = d @ (sig * torch.linalg.inv(Mt))  # (h, w, 1, n): D E_high
    S_low = law.pool(s).eigenvalues.to(M.dtype)  # (h, w)
    e_low = s_tau / (a_tau**2 * S_low + s_tau**2)
    A = (e_low / (s * rho.item()))[..., None, None] * d  # (h, w, 1, n)
    weight = Mt if metric == "law" else eye.expand_as(Mt)
    return math.sqrt((_expected_sq(A - B, weight) / _expected_sq(B, weight)).item())


def detail_term_error(law: GaussianImage, schedule: Schedule, t, s: int) -> float:
    r"""How far the detail term (8) is from the exact :math:`(I-P)\epsilon^{\rm high}`, for a stationary law.

    The low-resolution model is the exact (Wiener) prediction of the pooled law, applied at the high
    resolution as a convolution (:func:`convolutional_eps_model`). Returns
    :math:`\sqrt{\mathbb E\|(I-P)(\epsilon_\theta-\epsilon^{\rm high})\|^2/\mathbb E\|(I-P)\epsilon^{\rm high}\|^2}`
    with :math:`x_t` from the diffused law (claim C23.6).
    """
    if not law.is_stationary:
        raise ValueError("the detail term is defined here for a stationary law")
    C, H, W = law.shape
    s = check_factor(s, H, W)
    a, sig = _levels(schedule, t)
    S = law.eigenvalues
    low = law.pool(s)
    kernel = torch.fft.ifft2(sig / (a * a * low.eigenvalues + sig * sig)).real
    g_model = torch.fft.fft2(embed_kernel(kernel, H, W)).real  # symmetric kernel: real transfer
    g_exact = sig / (a * a * S + sig * sig)
    n = s * s
    M = multiplier_blocks(a * a * S + sig * sig, s)
    eye = torch.eye(n, dtype=M.dtype, device=M.device)
    Q = eye - torch.full((n, n), 1.0 / n, dtype=M.dtype, device=M.device)  # I - P in each block
    G_err = Q @ multiplier_blocks(g_model - g_exact, s)
    G_ref = Q @ multiplier_blocks(g_exact, s)
    return math.sqrt((_expected_sq(G_err, M) / _expected_sq(G_ref, M)).item())


def encoder_commutation_gap(x, encoder: Callable[[torch.Tensor], torch.Tensor], s: int) -> float:
    r""":math:`\|\mathcal D f(x) - f(\mathcal Dx)\| / \|f(\mathcal Dx)\|` for a per-pixel "encoder" ``f``:
    how much pooling fails to commute with it (article 23's caveat for latent models, claim C23.9)."""
    x = as_tensor(x, "x")
    a, b = pool(encoder(x), s), encoder(pool(x, s))
    denom = b.norm().item()
    if denom == 0:
        raise ValueError("f(D x) is identically 0")
    return (a - b).norm().item() / denom


# ------------------------------------------------------------------------------------------------
# the end-to-end experiment of chapter 23
# ------------------------------------------------------------------------------------------------

GUIDANCE_EXPERIMENT = {
    "alpha": 2.0,  # power-law exponent of the image law
    "train": 16,  # the training resolution of the low-resolution model
    "factors": [2, 4],  # generate at 2x and 4x
    "sampler": "euler",  # DDIM
    "nfe": 25,
    "w": [-1.0, -0.5, 0.0, 0.2, 0.5, 1.0, 2.0],  # Su's w; -1 is the model alone, 0 is eps_approx
    "eta": [1.0, 0.6, 0.3],
    "logsnr": [-15.0, 15.0],
}


def guidance_experiment(config: Optional[dict] = None) -> dict:
    r"""Upsample guidance on exact Gaussian images (claims C23.7, C23.8).

    The true law at :math:`H = s\cdot\text{train}` is a power-law field
    (:func:`~diffmath.images.power_law_spectrum` with ``reference=(train, train)``); the low-resolution
    model is the exact, convolutional :math:`\varepsilon`-model of its pooled law
    (:func:`convolutional_eps_model`), on simple diffusion's cosine schedule. At equal NFE with the
    same sampler, from the exact marginal at the first level, it compares the exact laws
    (:func:`diffmath.output_law.sampler_law`) of the samples of

    * ``exact``: the true high-resolution model (only the sampler's own error remains);
    * ``naive``: the low-resolution model applied to the large image (= guidance with :math:`w=-1`);
    * ``upsampled``: low-resolution samples upsampled by :math:`\mathcal U` (nearest);
    * ``guided``: :class:`UpsampleGuidance` for each :math:`w` and :math:`\eta`;

    by the per-pixel :math:`W_2` to the true law (also after pooling to the training resolution) and
    the RMS log power-spectrum error, and counts the pixels evaluated (the cost). JSON-able result.
    """
    from diffmath.denoisers import exact_eps_model
    from diffmath.output_law import log_spectrum_error, w2_per_pixel
    from diffmath.schedules import LogSNRCosine
    from diffmath.output_law import sampler_law

    cfg = dict(GUIDANCE_EXPERIMENT, **(config or {}))
    train, n, sampler = int(cfg["train"]), int(cfg["nfe"]), cfg["sampler"]
    schedule = LogSNRCosine(*cfg["logsnr"])
    rows = []
    for s in cfg["factors"]:
        s = int(s)
        H = s * train
        truth = GaussianImage.power_law(H, H, float(cfg["alpha"]), reference=(train, train))
        low = truth.pool(s)
        model = convolutional_eps_model(low, schedule)
        truth_low = low

        def record(method, out, w=None, eta=None, pixels=None):
            rows.append(
                {
                    "factor": s,
                    "method": method,
                    "w": w,
                    "eta": eta,
                    "w2": w2_per_pixel(out, truth),
                    "w2_low": w2_per_pixel(out.pool(s), truth_low),
                    "log_spectrum": log_spectrum_error(out, truth),
                    "cost": None if pixels is None else pixels / (n * H * H),
                }
            )

        record("exact", sampler_law(truth, schedule, sampler, n, model=exact_eps_model(truth, schedule)))
        record("naive", sampler_law(truth, schedule, sampler, n, model=model), pixels=n * H * H)
        out_low = sampler_law(low, schedule, sampler, n, model=model)
        M = out_low.eigenvalues.to(torch.complex128)[..., None, None].expand(*out_low.eigenvalues.shape, s * s, s * s)
        up = GaussianImage.from_blocks(M.contiguous(), s, mean=upsample(out_low.mean, s), allow_singular=True)
        record("upsampled", up, pixels=n * train * train)
        for eta in cfg["eta"]:
            for w in cfg["w"]:
                if w == -1.0 and eta != cfg["eta"][0]:
                    continue  # w = -1 never guides: one row is enough
                guided = UpsampleGuidance(model, schedule, s, w=float(w), eta=float(eta))
                out = sampler_law(truth, schedule, sampler, n, s=s, model=guided)
                pixels_per_run = guided.pixels // (s * s + 1)  # affine_output_law runs s^2 + 1 images
                record("guided", out, w=float(w), eta=float(eta), pixels=pixels_per_run)
    return {"config": cfg, "rows": rows}


__all__ = [
    "GUIDANCE_EXPERIMENT",
    "UpsampleGuidance",
    "convolutional_eps_model",
    "detail_term_error",
    "embed_kernel",
    "encoder_commutation_gap",
    "guidance_experiment",
    "low_resolution_time",
    "main_term_error",
]
