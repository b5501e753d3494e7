r"""AMED: a learned mean-value time inside each ODE step (article 21; Zhou et al. 2024, arXiv 2312.00094).

Convention: the k-diffusion/EDM one of :mod:`diffmath.samplers` — state :math:`x = x_0+\sigma\varepsilon`,
denoiser ``D(x, sigma)`` with ``sigma`` of shape (batch,), :math:`d(x,\sigma) = (x-D(x,\sigma))/\sigma`,
a grid ``sigmas`` strictly decreasing and ending at 0. A step goes from :math:`\sigma_i` down to
:math:`\sigma_{i+1}` (article 21 writes :math:`t_{n+1}\to t_n`).

**AMED-Solver** (article 21, eq. 13; the paper's Algorithm 1). Article 21 motivates it by the integral
mean-value theorem: :math:`x_{i+1} = x_i + (\sigma_{i+1}-\sigma_i)\,d(x(s), s)` for some intermediate
level :math:`s` — exactly true for isotropic Gaussian data (claim C21.8), approximately true for the
near-planar trajectories of real data (C21.7), and not implied by the vector mean-value theorem (C21.5).
A small network :math:`g_\phi` predicts, per step, where to evaluate:

.. math::
    \sigma_m = \sigma_{i+1}^{\,r}\,\sigma_i^{\,1-r},\quad
    x_m = x_i + (\sigma_m-\sigma_i)\,d(x_i,\sigma_i),\quad
    x_{i+1} = x_i + c\,(\sigma_{i+1}-\sigma_i)\,\frac{x_m - D(x_m,\,a\,\sigma_m)}{\sigma_m},

with :math:`r\in[0,1]` (the geometric map of the official code zju-pi/diff-sampler, not the arithmetic
:math:`t_n + r(t_{n+1}-t_n)` of the article's text), the direction scale :math:`c` (``scale_dir``)
and the time scale :math:`a` (``scale_time``). With :math:`r=\tfrac12`, :math:`c=a=1` it is
DPM-Solver-2 (the geometric midpoint, claim C21.4).

**AMED-Plugin on iPNDM** (the paper's §4): iPNDM on the refined grid
:math:`\sigma_i > \sigma_m > \sigma_{i+1}` — an Adams–Bashforth sub-step to :math:`\sigma_m`, an
evaluation at :math:`a\,\sigma_m`, a second sub-step to :math:`\sigma_{i+1}` scaled by :math:`c` — with
the fixed iPNDM weights of :func:`diffmath.samplers.sample_ipndm`. With :math:`c=a=1` it is
``sample_ipndm`` on the refined grid.

Both spend two denoiser calls per step with :math:`\sigma_{i+1}>0`; the last step to
:math:`\sigma=0` is the Euler step :math:`x\mapsto D(x,\sigma)` of every diffmath sampler (claim C21.11
gives the accounting; :func:`diffmath.samplers.nfe`).

**The predictor** :class:`AMEDPredictor` is :math:`g_\phi(f, \sigma_i, \sigma_{i+1}) \mapsto (r, c, a)`:
the paper feeds a U-Net bottleneck and embeddings of both times to an MLP; a denoiser here is a black
box, so the state features are two scale-free summaries of the current state and direction
(:func:`state_features`), next to :math:`\log\sigma_i` and :math:`\log\sigma_{i+1}`. The output layer
starts at zero, so an untrained predictor is DPM-Solver-2 (respectively iPNDM on geometric midpoints).

**Distillation** (:func:`distill`, the paper's §3.3 and ``training/loss.py``): the teacher is an
accurate solution of the same ODE from the same noise, evaluated at the student's grid
(:func:`teacher_trajectory`: :func:`diffmath.flows.solve_pf_ode` for an exact mixture); the loss at
each step is the squared distance to the teacher's next state. AMED-Solver starts each step from the
teacher's state (teacher forcing, as the official code does for single-step students); the plugin runs
from its own previous output and history (as the code does for multistep students). Our loss weighs
step :math:`i` by :math:`1/(1+\sigma_{i+1}^2)` — an error at a large noise level shrinks roughly like
:math:`\sigma` on the way to the data — where the official code sums plain squared errors.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from diffmath._validation import as_tensor
from diffmath.samplers import ADAMS_BASHFORTH, Callback, Denoiser, DenoiserCall, SamplerSpec, afs_direction, check_grid, register_sampler, to_d

__all__ = [
    "AMEDPredictor",
    "ConstantPredictor",
    "N_FEATURES",
    "distill",
    "geometric_level",
    "parameter_count",
    "refined_grid",
    "sample_amed",
    "sample_amed_plugin",
    "state_features",
    "teacher_trajectory",
]

N_FEATURES = 2
Predictor = Callable[[torch.Tensor, float, float], tuple]


def geometric_level(sigma_cur, sigma_next, r):
    r"""The intermediate level :math:`\sigma_m = \sigma_{i+1}^{\,r}\sigma_i^{\,1-r}` (diff-sampler's ``t_mid``).

    Monotone from :math:`\sigma_i` (``r = 0``) to :math:`\sigma_{i+1}` (``r = 1``); ``r = 1/2`` is the
    geometric mean, DPM-Solver-2's level (claim C21.4). Both levels must be > 0.
    """
    if not (float(sigma_cur) > 0 and float(sigma_next) > 0):
        raise ValueError("geometric_level needs both levels > 0")
    return sigma_next**r * sigma_cur ** (1 - r)


def refined_grid(sigmas: torch.Tensor, r: float) -> torch.Tensor:
    """``sigmas`` with :func:`geometric_level` inserted in every step between two positive levels: the grid
    that AMED-Plugin with a fixed ``r`` and scale factors 1 walks, as plain iPNDM (claim C21.14). ``sigmas``
    follows the samplers' rules (:func:`diffmath.samplers.check_grid`); ``0 <= r <= 1``."""
    if not (isinstance(r, (int, float)) and 0 <= r <= 1):
        raise ValueError(f"r must be a number in [0, 1], got {r!r}")
    probe = torch.zeros(1, dtype=torch.float64)
    _, s = check_grid(probe, sigmas, require_zero=False)
    out = []
    for a, b in zip(s, s[1:]):
        out.append(a)
        if b > 0:
            out.append(geometric_level(a, b, r))
    out.append(s[-1])
    return torch.tensor(out, dtype=torch.float64, device=getattr(sigmas, "device", None))


def state_features(x: torch.Tensor, d: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""The predictor's state input, shape (batch, :data:`N_FEATURES`): the per-coordinate RMS of the
    direction :math:`d`, and of :math:`x/\sqrt{1+\sigma^2}` (both of order one at every noise level
    for data of unit scale)."""
    b = x.shape[0]
    rms = lambda v: v.reshape(b, -1).pow(2).mean(-1).sqrt()
    return torch.stack([rms(d), rms(x) / math.sqrt(1.0 + sigma**2)], dim=-1)


class ConstantPredictor:
    r"""A predictor without parameters: the same :math:`(r, c, a)` at every step and for every point.

    ``ConstantPredictor()`` (:math:`r=\tfrac12`, :math:`c=a=1`) makes :func:`sample_amed` DPM-Solver-2
    and :func:`sample_amed_plugin` iPNDM on the geometric midpoints.
    """

    def __init__(self, r: float = 0.5, scale_dir: float = 1.0, scale_time: float = 1.0):
        if not 0 <= r <= 1:
            raise ValueError(f"r must lie in [0, 1], got {r}")
        for name, v in (("scale_dir", scale_dir), ("scale_time", scale_time)):
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        self.r, self.scale_dir, self.scale_time = float(r), float(scale_dir), float(scale_time)

    def __call__(self, features: torch.Tensor, sigma_cur: float, sigma_next: float):
        full = lambda v: features.new_full((features.shape[0],), v)
        return full(self.r), full(self.scale_dir), full(self.scale_time)


class AMEDPredictor(torch.nn.Module):
    r""":math:`g_\phi`: (state features, :math:`\sigma_i`, :math:`\sigma_{i+1}`) :math:`\mapsto (r, c, a)`, per point.

    A one-hidden-layer MLP (SiLU) on :math:`[f, \log\sigma_i, \log\sigma_{i+1}]`; heads
    :math:`r = \operatorname{sigmoid}(z_1)\in(0,1)`, :math:`c = 1 + \delta_c\tanh z_2`,
    :math:`a = 1 + \delta_a\tanh z_3` — the official code's ranges :math:`c\in(1\pm0.01)` by default and
    :math:`a\in(1\pm0.2)` for the iPNDM plugin (``scale_time_range``; 0 switches :math:`a` off).
    The output layer is zero at initialisation (:math:`r=\tfrac12`, :math:`c=a=1`); the hidden layer
    is drawn from ``seed``. ``hidden = 32`` gives 259 parameters.
    """

    def __init__(
        self,
        hidden: int = 32,
        *,
        scale_dir_range: float = 0.01,
        scale_time_range: float = 0.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
        device=None,
    ):
        super().__init__()
        if int(hidden) != hidden or hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {hidden}")
        for name, v in (("scale_dir_range", scale_dir_range), ("scale_time_range", scale_time_range)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {v}")
        g = torch.Generator().manual_seed(seed)
        n_in = N_FEATURES + 2
        w = torch.randn(hidden, n_in, generator=g, dtype=torch.float64) / math.sqrt(n_in)
        self.w1 = torch.nn.Parameter(w.to(dtype=dtype, device=device))
        self.b1 = torch.nn.Parameter(torch.zeros(hidden, dtype=dtype, device=device))
        self.w2 = torch.nn.Parameter(torch.zeros(3, hidden, dtype=dtype, device=device))
        self.b2 = torch.nn.Parameter(torch.zeros(3, dtype=dtype, device=device))
        self.scale_dir_range, self.scale_time_range = float(scale_dir_range), float(scale_time_range)

    def forward(self, features: torch.Tensor, sigma_cur: float, sigma_next: float):
        if features.ndim != 2 or features.shape[1] != N_FEATURES:
            raise ValueError(f"features must have shape (batch, {N_FEATURES}), got {tuple(features.shape)}")
        times = features.new_tensor([math.log(sigma_cur), math.log(sigma_next)]).expand(features.shape[0], 2)
        h = torch.nn.functional.silu(torch.cat([features, times], dim=-1).to(self.w1.dtype) @ self.w1.T + self.b1)
        z = (h @ self.w2.T + self.b2).to(features.dtype)
        r = torch.sigmoid(z[:, 0])
        c = 1 + self.scale_dir_range * torch.tanh(z[:, 1])
        a = 1 + self.scale_time_range * torch.tanh(z[:, 2])
        return r, c, a


# --- the steps -------------------------------------------------------------------------------------
def _column(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def _predict(predictor: Predictor, x, d, s, s_next):
    r, c, a = (torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(x.shape[0]) for v in predictor(state_features(x, d, s), s, s_next))
    if not bool(((r >= 0) & (r <= 1)).all()):
        raise ValueError("the predictor's r must lie in [0, 1]")
    if not bool(((c > 0) & (a > 0)).all()):
        raise ValueError("the predictor's scale_dir and scale_time must be > 0")
    return r, c, a


def _denoise(denoiser: Denoiser, x: torch.Tensor, sigma) -> torch.Tensor:
    return DenoiserCall(denoiser, x)(x, sigma)


def _direction(denoiser, x, s: float, use_afs: bool) -> torch.Tensor:
    return afs_direction(x, s) if use_afs else to_d(x, s, _denoise(denoiser, x, s))


def _solver_step(denoiser, predictor, x, d, s: float, s_next: float) -> torch.Tensor:
    r, c, a = _predict(predictor, x, d, s, s_next)
    s_mid = geometric_level(s, s_next, r)
    x_mid = x + _column(s_mid - s, x) * d
    d_mid = to_d(x_mid, s_mid, _denoise(denoiser, x_mid, a * s_mid))
    return x + _column(c * (s_next - s), x) * d_mid


def _ab(history: list[torch.Tensor]) -> torch.Tensor:
    return sum(cj * dj for cj, dj in zip(ADAMS_BASHFORTH[len(history)], history))


def _plugin_step(denoiser, predictor, x, d, history, s: float, s_next: float, max_order: int) -> torch.Tensor:
    """One AMED-Plugin step on iPNDM; ``history`` (most recent first) is updated in place."""
    r, c, a = _predict(predictor, x, d, s, s_next)
    s_mid = geometric_level(s, s_next, r)
    history.insert(0, d)
    del history[max_order:]
    x_mid = x + _column(s_mid - s, x) * _ab(history)
    d_mid = to_d(x_mid, s_mid, _denoise(denoiser, x_mid, a * s_mid))
    history.insert(0, d_mid)
    del history[max_order:]
    return x_mid + _column(c * (s_next - s_mid), x) * _ab(history)


def _with_extra_args(denoiser: Denoiser, extra_args: Optional[dict]) -> Denoiser:
    if extra_args is None:
        return denoiser
    if not isinstance(extra_args, dict):
        raise ValueError(f"extra_args must be a dict of keyword arguments, got {type(extra_args).__name__}")
    if not callable(denoiser):
        raise ValueError("denoiser must be callable D(x, sigma)")
    return lambda x, sigma: denoiser(x, sigma, **extra_args)


def _report(callback: Callback, x, i: int, sigma: float, d) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": x - sigma * d})


def _require_predictor(predictor):
    if predictor is None or not callable(predictor):
        raise ValueError("predictor must be callable (features, sigma_cur, sigma_next) -> (r, scale_dir, scale_time); "
                         "use ConstantPredictor() for DPM-Solver-2 / iPNDM on geometric midpoints")


@torch.no_grad()
def sample_amed(
    denoiser: Denoiser, x, sigmas, *, predictor: Predictor, extra_args: Optional[dict] = None, callback: Callback = None,
    afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""AMED-Solver (article 21, eq. 13; Zhou et al. 2024, Alg. 1): the module's first formula at every
    step with :math:`\sigma_{i+1}>0`, with :math:`(r,c,a)` from ``predictor``; the step to 0 is Euler.
    ``afs=True``: the first direction is the analytic first step. NFE: :math:`2n-1-[\text{afs}]` for
    :math:`n` steps ending at 0 (:math:`2n-[\text{afs}]` with ``require_zero=False``)."""
    _require_predictor(predictor)
    denoiser = _with_extra_args(denoiser, extra_args)
    x, s = check_grid(x, sigmas, require_zero)
    for i in range(len(s) - 1):
        d = _direction(denoiser, x, s[i], afs and i == 0)
        _report(callback, x, i, s[i], d)
        x = x + (s[i + 1] - s[i]) * d if s[i + 1] == 0 else _solver_step(denoiser, predictor, x, d, s[i], s[i + 1])
    return x


@torch.no_grad()
def sample_amed_plugin(
    denoiser: Denoiser, x, sigmas, *, predictor: Predictor, extra_args: Optional[dict] = None, callback: Callback = None,
    max_order: int = 4, afs: bool = False, require_zero: bool = True,
) -> torch.Tensor:
    r"""AMED-Plugin on iPNDM (Zhou et al. 2024, §4; diff-sampler's ``ipndm_sampler`` with a predictor):
    iPNDM's fixed Adams–Bashforth weights (order :math:`\le` ``max_order``) on the refined grid
    :math:`\sigma_i > \sigma_m > \sigma_{i+1}`, the second sub-step scaled by :math:`c` and evaluated at
    :math:`a\sigma_m`; the step to 0 is Euler. NFE as :func:`sample_amed`."""
    _require_predictor(predictor)
    if max_order not in (1, 2, 3, 4):
        raise ValueError(f"max_order must be 1, 2, 3 or 4, got {max_order}")
    denoiser = _with_extra_args(denoiser, extra_args)
    x, s = check_grid(x, sigmas, require_zero)
    history: list[torch.Tensor] = []
    for i in range(len(s) - 1):
        d = _direction(denoiser, x, s[i], afs and i == 0)
        _report(callback, x, i, s[i], d)
        if s[i + 1] == 0:
            x = x + (s[i + 1] - s[i]) * d
        else:
            x = _plugin_step(denoiser, predictor, x, d, history, s[i], s[i + 1], max_order)
    return x


# --- distillation ----------------------------------------------------------------------------------
def teacher_trajectory(denoiser: Denoiser, x, sigmas, *, rtol: float = 1e-8, atol: float = 1e-8) -> torch.Tensor:
    r"""The reference states at every positive level of ``sigmas``, shape (levels, batch, ...).

    Solved level to level by :func:`diffmath.flows.solve_pf_ode` (adaptive Dormand–Prince in
    :math:`\log\sigma`) with ``denoiser`` as the exact D; ``out[0]`` is ``x`` itself.
    """
    from diffmath.flows import solve_pf_ode

    x, s = check_grid(x, sigmas, require_zero=False)
    levels = [v for v in s if v > 0]
    D = DenoiserCall(denoiser, x)  # callable, and returns x's shape
    exact = lambda y, alpha, sig: D(y, torch.as_tensor(sig, dtype=y.dtype, device=y.device).expand(y.shape[0]))
    states = [x]
    with torch.no_grad():
        for a, b in zip(levels, levels[1:]):
            states.append(solve_pf_ode(exact, states[-1], a, b, rtol=rtol, atol=atol))
    return torch.stack(states)


def distill(
    predictor: AMEDPredictor,
    denoiser: Denoiser,
    sigmas,
    teacher: torch.Tensor,
    *,
    solver: str = "amed",
    iterations: int = 100,
    lr: float = 0.01,
    max_order: int = 4,
    afs: bool = False,
    rollout: Optional[bool] = None,
) -> list[float]:
    r"""Fit ``predictor`` to ``teacher`` (from :func:`teacher_trajectory` on the same grid and noise).

    ``solver``: ``"amed"`` (AMED-Solver) or ``"plugin"`` (AMED-Plugin on iPNDM). ``rollout``: run
    the student from its own previous output (and history) and differentiate the whole rollout;
    otherwise every step starts from the teacher's state (teacher forcing). Default: teacher forcing
    for AMED-Solver (the official code's choice for single-step students), rollout for the plugin (a
    greedy per-step gradient, which ignores that a step's choice changes the later steps' history,
    made the plugin's loss grow in our runs). Loss per iteration:
    :math:`\sum_i \operatorname{mean}|x^{\rm student}_{i+1} - x^{\rm teacher}_{i+1}|^2/(1+\sigma_{i+1}^2)`
    over the steps with :math:`\sigma_{i+1}>0`; Adam with learning rate ``lr``, full batch,
    deterministic given the predictor's seed. The predictor ends with the parameters of the iteration
    with the smallest loss (the plugin's rollout loss is not monotone under Adam). Returns the loss of
    each iteration (evaluated before that iteration's update).
    """
    if solver not in ("amed", "plugin"):
        raise ValueError(f"solver must be 'amed' or 'plugin', got {solver!r}")
    if not isinstance(predictor, torch.nn.Module):
        raise ValueError("predictor must be a torch module with parameters (an AMEDPredictor)")
    if rollout is None:
        rollout = solver == "plugin"
    if solver == "plugin" and not rollout:
        raise ValueError("the plugin is multistep: its history comes from its own rollout (rollout=True)")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations}")
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if solver == "plugin" and max_order not in (1, 2, 3, 4):
        raise ValueError(f"max_order must be 1, 2, 3 or 4, got {max_order!r}")
    teacher = as_tensor(teacher, "teacher")
    if teacher.ndim < 2:
        raise ValueError(f"teacher must have shape (levels, batch, ...), got {tuple(teacher.shape)}")
    _, s = check_grid(teacher[0], sigmas, require_zero=False)
    levels = [v for v in s if v > 0]
    if teacher.shape[0] != len(levels):
        raise ValueError(f"teacher must hold one state per positive level ({len(levels)}), got {teacher.shape[0]}")
    if len(levels) < 2:
        raise ValueError("the grid has no step between two positive levels: nothing to learn")
    weights = [1.0 / (1.0 + b**2) for b in levels[1:]]
    opt = torch.optim.Adam(predictor.parameters(), lr=lr)
    with torch.no_grad():  # teacher forcing: AMED-Solver's first directions do not depend on phi
        d_teacher = [_direction(denoiser, teacher[i], levels[i], afs and i == 0) for i in range(len(levels) - 1)]
    losses = []
    for _ in range(int(iterations)):
        opt.zero_grad(set_to_none=True)
        loss = teacher.new_zeros(())
        x, history = teacher[0], []
        for i, (a, b) in enumerate(zip(levels, levels[1:])):
            if solver == "amed" and not rollout:
                out = _solver_step(denoiser, predictor, teacher[i], d_teacher[i], a, b)
            elif solver == "amed":
                d = d_teacher[0] if i == 0 else _direction(denoiser, x, a, False)
                out = x = _solver_step(denoiser, predictor, x, d, a, b)
            else:  # the whole rollout is differentiated: a step's choice changes every later step's history
                d = d_teacher[0] if i == 0 else _direction(denoiser, x, a, False)
                out = x = _plugin_step(denoiser, predictor, x, d, history, a, b, max_order)
            loss = loss + weights[i] * (out - teacher[i + 1]).pow(2).mean()
        losses.append(loss.item())
        if losses[-1] <= min(losses):
            best = {k: v.detach().clone() for k, v in predictor.state_dict().items()}
        loss.backward()
        opt.step()
    predictor.load_state_dict(best)
    return losses


def parameter_count(predictor: torch.nn.Module) -> int:
    """Number of trainable parameters (AMED's :math:`g_\\phi` is tiny next to the denoiser)."""
    return sum(p.numel() for p in predictor.parameters() if p.requires_grad)


register_sampler(SamplerSpec("amed", sample_amed, 2, None, "AMED-Solver"))
register_sampler(SamplerSpec("amed_plugin", sample_amed_plugin, 2, None, "AMED-Plugin (iPNDM)"))
