r"""ODE samplers for the probability-flow ODE, in the k-diffusion convention (article 21).

Convention (Karras et al. 2022; Crowson's k-diffusion): the state is in VE/EDM coordinates,
:math:`x = x_0 + \sigma\varepsilon` (a library state :math:`x_t` maps to :math:`x_t/\alpha_t`, see
:mod:`diffmath.denoisers`); a denoiser ``D(x, sigma)`` returns :math:`\mathbb E[x_0\mid x]` with
``sigma`` a tensor of shape (batch,); the PF-ODE is

.. math:: \frac{dx}{d\sigma} = d(x,\sigma) = \frac{x - D(x,\sigma)}{\sigma}.

Every sampler is ``sample_<name>(denoiser, x, sigmas, **options)``: ``x`` (batch, ...) is the state
at ``sigmas[0]``, ``sigmas`` a 1-D grid, strictly decreasing, ending at 0 (pass
``require_zero=False`` to stop at a positive level instead, as the order tests do); the final state
is returned. A last step to :math:`\sigma = 0` is the Euler step, which returns :math:`D(x,\sigma)`
exactly. ``afs=True`` replaces the first denoiser call by diff-sampler's *analytic first step*
(Zhou et al. 2024, AMED, arXiv 2312.00094): the direction :math:`d = x/\sqrt{1+\sigma_0^2}`, i.e. the
guess :math:`D = x(1 - \sigma_0/\sqrt{1+\sigma_0^2})`, which at large :math:`\sigma_0` is
:math:`D\approx x/(2\sigma_0^2)\approx 0` up to :math:`O(|x|/\sigma_0^2)` — the data-at-the-origin
direction :math:`x/\sigma_0`. It saves one evaluation.

NFE (denoiser calls) for a grid of :math:`n` steps ending at 0: Euler, DPM-Solver++(2M), iPNDM:
:math:`n`; Heun, DPM-Solver-2: :math:`2n-1` (the last step is Euler); minus one with ``afs``
(:func:`nfe`).

As in k-diffusion, every sampler takes ``extra_args`` (a dict passed to every denoiser call as
keyword arguments: class labels, conditioning) and ``callback`` (called once per step with a dict
``{"x", "i", "sigma", "sigma_hat", "denoised"}``: the state at ``sigmas[i]`` and the denoised estimate
the step starts from). One table, :data:`SPECS`, says for each sampler — those here and the AMED
samplers of :mod:`diffmath.amed`, which register themselves — its function, its denoiser calls per
step and its order (:class:`SamplerSpec`); :func:`get_sampler` and :func:`nfe` read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from diffmath._validation import as_tensor

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Optional[Callable[[dict], None]]


def to_d(x: torch.Tensor, sigma, denoised: torch.Tensor) -> torch.Tensor:
    r"""The PF-ODE derivative :math:`d = (x - D)/\sigma` (sigma a number or a (batch,) tensor)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim:
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))
    return (x - denoised) / sigma


def check_grid(x, sigmas, require_zero: bool) -> tuple[torch.Tensor, list[float]]:
    """Validate a state ``x`` (batch, ...) and a noise-level grid; the grid as a list of floats."""
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise ValueError("x must be a floating tensor of shape (batch, ...)")
    x = as_tensor(x, "x")  # no NaN, Inf or meta tensors (keeps the dtype and device)
    s = as_tensor(sigmas, "sigmas", dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D grid of at least 2 levels, got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError("sigmas contains NaN or Inf")
    if not (s[1:] < s[:-1]).all():
        raise ValueError("sigmas must be strictly decreasing")
    if require_zero and s[-1].item() != 0.0:
        raise ValueError(f"sigmas must end at 0 (got {s[-1].item():.6g}); pass require_zero=False to stop earlier")
    if s[-1].item() < 0 or (s[:-1] <= 0).any():
        raise ValueError("sigmas must be > 0 except the last, which may be 0")
    return x, s.tolist()


class DenoiserCall:
    """Calls the denoiser with sigma as a (batch,) tensor and ``extra_args`` as keywords, and checks the
    output's shape."""

    def __init__(self, denoiser: Denoiser, x: torch.Tensor, extra_args: Optional[dict] = None):
        if not callable(denoiser):
            raise ValueError("denoiser must be callable D(x, sigma)")
        if extra_args is not None and not isinstance(extra_args, dict):
            raise ValueError(f"extra_args must be a dict of keyword arguments, got {type(extra_args).__name__}")
        self.denoiser, self.shape, self.batch = denoiser, x.shape, x.shape[0]
        self.extra_args = extra_args or {}

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """``sigma``: a number, or a tensor of shape (batch,) (one level per point, as AMED uses)."""
        level = sigma if isinstance(sigma, torch.Tensor) else x.new_full((self.batch,), sigma)
        out = self.denoiser(x, level, **self.extra_args)
        if not isinstance(out, torch.Tensor) or out.shape != self.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the denoiser must return x's shape {tuple(self.shape)}, got {got}")
        return out


def afs_direction(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""The analytic first step's direction :math:`x/\sqrt{1+\sigma^2}` (AMED's AFS; no evaluation)."""
    return x / math.sqrt(1.0 + sigma**2)


def _direction(D: DenoiserCall, x, sigma: float, afs: bool, callback: Callback, i: int) -> torch.Tensor:
    """The step's starting direction (the analytic one when ``afs``), reported to ``callback``."""
    if afs:
        d = afs_direction(x, sigma)
        denoised = x - sigma * d
    else:
        denoised = D(x, sigma)
        d = to_d(x, sigma, denoised)
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
    return d


@torch.no_grad()
def sample_euler(
    denoiser: Denoiser, x, sigmas, *, extra_args: Optional[dict] = None, callback: Callback = None,
    afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""Euler on the PF-ODE (Karras et al. 2022, Alg. 1 without the correction) — exactly DDIM with
    :math:`\eta = 0` (Song et al. 2021) in EDM coordinates (article 21, eq. 1).

    :math:`x_{i+1} = x_i + (\sigma_{i+1}-\sigma_i)\,(x_i - D(x_i,\sigma_i))/\sigma_i`; at
    :math:`\sigma_{i+1} = 0` this is :math:`D(x_i,\sigma_i)`. First order.
    """
    x, s = check_grid(x, sigmas, require_zero)
    D = DenoiserCall(denoiser, x, extra_args)
    for i in range(len(s) - 1):
        d = _direction(D, x, s[i], afs and i == 0, callback, i)
        x = x + (s[i + 1] - s[i]) * d
    return x


@torch.no_grad()
def sample_heun(
    denoiser: Denoiser, x, sigmas, *, extra_args: Optional[dict] = None, callback: Callback = None,
    afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""Heun's second-order method (Karras et al. 2022, EDM, Algorithm 1 with :math:`S_{\rm churn}=0`).

    Predictor :math:`\bar x = x_i + h d_i`, :math:`h = \sigma_{i+1}-\sigma_i`, corrector
    :math:`x_{i+1} = x_i + \tfrac h2(d_i + d(\bar x,\sigma_{i+1}))`; the step to
    :math:`\sigma_{i+1} = 0` stays Euler. Second order; :math:`2n-1` evaluations for :math:`n` steps to 0.
    """
    x, s = check_grid(x, sigmas, require_zero)
    D = DenoiserCall(denoiser, x, extra_args)
    for i in range(len(s) - 1):
        d = _direction(D, x, s[i], afs and i == 0, callback, i)
        h = s[i + 1] - s[i]
        x_pred = x + h * d
        if s[i + 1] == 0:
            x = x_pred
        else:
            x = x + 0.5 * h * (d + to_d(x_pred, s[i + 1], D(x_pred, s[i + 1])))
    return x


@torch.no_grad()
def sample_dpm_solver_2(
    denoiser: Denoiser, x, sigmas, *, extra_args: Optional[dict] = None, callback: Callback = None,
    r: float = 0.5, afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""DPM-Solver-2 (Lu et al. 2022, Alg. 1, the noise-prediction form, as claim C21.4 derives; k-diffusion's ``sample_dpm_2``):
    a midpoint step in :math:`\log\sigma` (article 21's geometric midpoint).

    :math:`\sigma_m = \sigma_i^{1-r}\sigma_{i+1}^{r}`, :math:`\bar x = x_i + (\sigma_m-\sigma_i)d_i`,
    :math:`x_{i+1} = x_i + (\sigma_{i+1}-\sigma_i)\big[\tfrac1{2r}d(\bar x,\sigma_m) + (1-\tfrac1{2r})d_i\big]`
    (:math:`r = \tfrac12`: the midpoint rule). The step to 0 is Euler. Second order.
    """
    if not 0 < r <= 1:
        raise ValueError(f"r must lie in (0, 1], got {r}")
    x, s = check_grid(x, sigmas, require_zero)
    D = DenoiserCall(denoiser, x, extra_args)
    for i in range(len(s) - 1):
        d = _direction(D, x, s[i], afs and i == 0, callback, i)
        h = s[i + 1] - s[i]
        if s[i + 1] == 0:
            x = x + h * d
            continue
        s_mid = s[i] ** (1 - r) * s[i + 1] ** r
        x_mid = x + (s_mid - s[i]) * d
        d_mid = to_d(x_mid, s_mid, D(x_mid, s_mid))
        x = x + h * (d_mid / (2 * r) + (1 - 1 / (2 * r)) * d)
    return x


@torch.no_grad()
def sample_dpmpp_2m(
    denoiser: Denoiser, x, sigmas, *, extra_args: Optional[dict] = None, callback: Callback = None,
    afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2; k-diffusion's ``sample_dpmpp_2m``), data prediction.

    With :math:`\lambda = -\log\sigma`, :math:`h_i = \lambda_{i+1}-\lambda_i`, :math:`\rho = h_{i-1}/h_i`:
    :math:`x_{i+1} = \tfrac{\sigma_{i+1}}{\sigma_i}x_i + (1 - \tfrac{\sigma_{i+1}}{\sigma_i})\hat D`,
    :math:`\hat D = (1+\tfrac1{2\rho})D_i - \tfrac1{2\rho}D_{i-1}` (first step and step to 0: :math:`\hat D = D_i`).
    Second order, one evaluation per step.
    """
    x, s = check_grid(x, sigmas, require_zero)
    D = DenoiserCall(denoiser, x, extra_args)
    old, h_last = None, None
    for i in range(len(s) - 1):
        den = x - s[i] * _direction(D, x, s[i], afs and i == 0, callback, i)
        if s[i + 1] == 0:
            x = den
            continue
        h = math.log(s[i]) - math.log(s[i + 1])
        if old is None:
            d_hat = den
        else:
            rho = h_last / h
            d_hat = (1 + 1 / (2 * rho)) * den - old / (2 * rho)
        ratio = s[i + 1] / s[i]
        x = ratio * x + (1 - ratio) * d_hat
        old, h_last = den, h
    return x


def _ab_coefficients(times: list[float], t_next: float) -> list[float]:
    r"""Variable-step Adams–Bashforth weights: :math:`c_j = \frac1h\int_{t_0}^{t_{next}} L_j(t)\,dt`,
    :math:`L_j` the Lagrange basis on ``times`` (``times[0]`` the current node), by Gauss–Legendre."""
    t0, h = times[0], t_next - times[0]
    nodes = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526]
    weights = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538]
    u = [(t - t0) / h for t in times]  # scaled nodes (0, then negative multiples)
    out = []
    for j in range(len(u)):
        total = 0.0
        for z, w in zip(nodes, weights):
            v = 0.5 * (z + 1)  # in [0, 1]
            lj = 1.0
            for m in range(len(u)):
                if m != j:
                    lj *= (v - u[m]) / (u[j] - u[m])
            total += 0.5 * w * lj
        out.append(total)
    return out


#: iPNDM's constant-step Adams–Bashforth weights, most recent derivative first
ADAMS_BASHFORTH = {1: (1.0,), 2: (1.5, -0.5), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


@torch.no_grad()
def sample_ipndm(
    denoiser: Denoiser,
    x,
    sigmas,
    *,
    extra_args: Optional[dict] = None,
    callback: Callback = None,
    max_order: int = 4,
    variable_step: bool = False,
    afs: bool = False,
    require_zero: bool = True,
) -> torch.Tensor:
    r"""iPNDM (Zhang & Chen 2023, DEIS, "improved PNDM"; as in zju-pi/diff-sampler): Adams–Bashforth
    on :math:`dx/d\sigma = d(x,\sigma)` with lower-order warm-up (order :math:`\min(i+1, p)`).

    :math:`x_{i+1} = x_i + (\sigma_{i+1}-\sigma_i)\sum_j c_j d_{i-j}`. With ``variable_step=False``
    the constant-step weights (1), (3, −1)/2, (23, −16, 5)/12, (55, −59, 37, −9)/24 are used on any
    grid, as iPNDM does: on a non-uniform grid they are only second-order accurate (the weights
    ignore the changing step). The step to :math:`\sigma=0` is Euler (lower order final), as in every
    sampler here. ``variable_step=True`` uses the exact variable-step weights
    :math:`c_j = \frac1h\int L_j`, order ``max_order`` (not quite diff-sampler's ``ipndm_v``, whose order-3
    weights differ). One evaluation per step.
    """
    if max_order not in (1, 2, 3, 4):
        raise ValueError(f"max_order must be 1, 2, 3 or 4, got {max_order}")
    x, s = check_grid(x, sigmas, require_zero)
    D = DenoiserCall(denoiser, x, extra_args)
    history: list[torch.Tensor] = []
    for i in range(len(s) - 1):
        d = _direction(D, x, s[i], afs and i == 0, callback, i)
        if s[i + 1] == 0:  # lower order final: the Euler step, x -> D(x, sigma_i)
            x = x + (s[i + 1] - s[i]) * d
            continue
        history.insert(0, d)
        del history[max_order:]
        k = len(history)
        if variable_step:
            c = _ab_coefficients([s[i - j] for j in range(k)], s[i + 1])
        else:
            c = ADAMS_BASHFORTH[k]
        x = x + (s[i + 1] - s[i]) * sum(cj * dj for cj, dj in zip(c, history))
    return x


def sample_ipndm_v(denoiser: Denoiser, x, sigmas, **options) -> torch.Tensor:  # extra_args, callback: as sample_ipndm
    """:func:`sample_ipndm` with ``variable_step=True``: the exact variable-step Adams–Bashforth weights."""
    return sample_ipndm(denoiser, x, sigmas, variable_step=True, **options)


@dataclass(frozen=True)
class SamplerSpec:
    """What the library knows about a sampler, in one place."""

    name: str
    fn: Callable[..., torch.Tensor]
    evaluations: int
    """Denoiser calls per step (the last step to sigma = 0 is always one Euler call)."""
    order: Optional[int]
    """Global order of accuracy on EDM's rho-grid (measured in tests/test_samplers.py); None for a
    learned sampler, whose order depends on its predictor."""
    label: str


#: every sampler, by name: those of this module, then the AMED samplers (registered by diffmath.amed)
SPECS: dict[str, SamplerSpec] = {}


def register_sampler(spec: SamplerSpec) -> SamplerSpec:
    if spec.evaluations not in (1, 2):
        raise ValueError(f"evaluations must be 1 or 2, got {spec.evaluations}")
    if spec.name in SPECS and SPECS[spec.name] is not spec:
        raise ValueError(f"sampler {spec.name!r} is registered twice")
    SPECS[spec.name] = spec
    return spec


for _spec in (
    SamplerSpec("euler", sample_euler, 1, 1, "Euler (= DDIM)"),
    SamplerSpec("heun", sample_heun, 2, 2, "Heun (EDM)"),
    SamplerSpec("dpm_solver_2", sample_dpm_solver_2, 2, 2, "DPM-Solver-2"),
    SamplerSpec("dpmpp_2m", sample_dpmpp_2m, 1, 2, "DPM-Solver++(2M)"),
    SamplerSpec("ipndm", sample_ipndm, 1, 2, "iPNDM"),
    SamplerSpec("ipndm_v", sample_ipndm_v, 1, 2, "iPNDM (variable step)"),
):
    register_sampler(_spec)

#: the samplers of this module (the AMED samplers need a predictor: see :mod:`diffmath.amed`)
SAMPLERS = tuple(SPECS)


def get_spec(name: str) -> SamplerSpec:
    """The :class:`SamplerSpec` of ``name`` (importing :mod:`diffmath.amed` registers ``amed``, ``amed_plugin``)."""
    if name not in SPECS:
        import diffmath.amed  # noqa: F401  (registers the AMED samplers)
    if name not in SPECS:
        raise ValueError(f"name must be one of {tuple(SPECS)}, got {name!r}")
    return SPECS[name]


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler function ``sample_<name>`` of any registered sampler."""
    return get_spec(name).fn


def nfe(sampler: str, n_steps: int, *, afs: bool = False, to_zero: bool = True) -> int:
    r"""Denoiser evaluations of a registered sampler on a grid of ``n_steps`` steps (claim C21.11).

    One-evaluation samplers: :math:`n`. Two-evaluation samplers (Heun, DPM-Solver-2, AMED-Solver,
    AMED-Plugin): :math:`2n-1` when the grid ends at 0 (``to_zero``; the last step is Euler), :math:`2n`
    when it stops at :math:`\sigma_{\min}>0` (``require_zero=False``; diff-sampler's convention, where
    ``num_steps`` :math:`=N` timestamps give :math:`2(N-1)`). ``afs`` saves one evaluation.
    """
    spec = get_spec(sampler)
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps}")
    n = (2 * n_steps - int(bool(to_zero))) if spec.evaluations == 2 else n_steps
    return n - int(bool(afs))


@torch.no_grad()
def sample_ddim_discrete(eps_model, x, timesteps, schedule) -> torch.Tensor:
    r"""DDIM with :math:`\eta = 0` in DDPM's discrete VP convention (Song, Meng & Ermon 2021, eq. 12),
    as a diffusers-style loop: ``eps_model(x_t, n)`` predicts the noise at integer step ``n``,
    ``timesteps`` decrease, and the last step goes to :math:`\bar\alpha = 1` (``set_alpha_to_one``).

    :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`,
    :math:`x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1-\bar\alpha_s}\,\hat\varepsilon` with
    :math:`\bar\alpha` = ``schedule.alphas_cumprod``. Article 21 (C21.1): this is :func:`sample_euler`
    in EDM coordinates :math:`x/\sqrt{\bar\alpha}`, :math:`\sigma = \sqrt{1-\bar\alpha}/\sqrt{\bar\alpha}`.
    """
    timesteps = [int(n) for n in timesteps]
    if not timesteps or any(b >= a for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError("timesteps must be a non-empty, strictly decreasing list of integer steps")
    ac = schedule.alphas_cumprod.to(x.device)
    for k, n in enumerate(timesteps):
        a_t = ac[n].sqrt()
        a_s = ac[timesteps[k + 1]].sqrt() if k + 1 < len(timesteps) else torch.ones((), dtype=x.dtype, device=x.device)
        eps = eps_model(x, n)
        x0 = (x - (1 - a_t**2).sqrt() * eps) / a_t
        x = a_s * x0 + (1 - a_s**2).sqrt() * eps
    return x
