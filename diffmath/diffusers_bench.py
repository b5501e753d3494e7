r"""diffusers schedulers on the exact model: an adapter for :func:`diffmath.bench.bench`.

A diffusers scheduler is driven by the loop every diffusers pipeline runs::

    scheduler.set_timesteps(n)
    x = z * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = model(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x).prev_sample

:class:`DiffusersSampler` runs exactly this loop with ``model`` the *exact* prediction of the law under the
scheduler's own discrete schedule (its ``alphas_cumprod``). The model input is always a VP state
:math:`x_t = \alpha x_0 + \alpha\sigma\varepsilon` with :math:`\alpha = 1/\sqrt{1+\sigma^2}` (the VP schedulers keep
that state; the "discrete" k-diffusion ports — Euler, Heun, LMS, Euler ancestral, DPM++ SDE — keep the EDM state
:math:`x/\alpha` and ``scale_model_input`` divides by :math:`\sqrt{\sigma^2+1}`), and the noise level :math:`\sigma`
(EDM) of each call is the one the scheduler's update assumes for it: ``scheduler.sigmas[i]`` for the ``i``-th call
where the scheduler keeps such a table (one entry per call, the last the end level), else
:math:`\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}` of ``alphas_cumprod[t]`` at the integer timestep ``t`` (DDIM, PNDM, DDPM).
The prediction follows the scheduler's ``prediction_type``:

.. math:: \varepsilon = \frac{x_t/\alpha - D}{\sigma},\qquad x_0 = D,\qquad v = \alpha\varepsilon - \alpha\sigma D

(:math:`D = D(x_t/\alpha, \sigma)` the exact denoiser; :math:`v = \alpha_t\varepsilon - \sigma_t x_0` of Salimans & Ho
2022 with :math:`\alpha_t = \alpha`, :math:`\sigma_t = \alpha\sigma`).

:data:`SCHEDULERS` names the configurations the book's table measures. Every one shares Stable Diffusion's schedule
(``scaled_linear``, :math:`\beta` from 0.00085 to 0.012 over 1000 steps) and ``clip_sample=False`` where the scheduler
has it (the exact laws are not confined to :math:`[-1, 1]`); everything else is the scheduler's default. diffusers is
an optional dependency (``pip install diffmath[bench]``); nothing is downloaded.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from typing import Optional

import torch

from diffmath._validation import count
from diffmath import parametrisation
from diffmath.bench import Trajectory
from diffmath.denoisers import edm_denoiser

#: Stable Diffusion's discrete schedule, shared by every scheduler of the table
COMMON_CONFIG = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000, "clip_sample": False}

#: name -> (diffusers class, configuration beyond COMMON_CONFIG, stochastic)
SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}, False),
    "euler": ("EulerDiscreteScheduler", {}, False),
    "heun": ("HeunDiscreteScheduler", {}, False),
    "lms": ("LMSDiscreteScheduler", {}, False),
    "pndm": ("PNDMScheduler", {}, False),
    "pndm-plms": ("PNDMScheduler", {"skip_prk_steps": True}, False),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, False),
    "dpm++2m-karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}, False),
    "dpm++3m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}, False),
    # noise prediction cannot take the last step to sigma = 0 (diffusers refuses final_sigmas_type="zero"): it stops
    # at the schedule's smallest level
    "dpm2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "solver_order": 2, "final_sigmas_type": "sigma_min"}, False),
    "dpm3m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "solver_order": 3, "final_sigmas_type": "sigma_min"}, False),
    "dpm++2s": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}, False),
    "dpm++3s": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}, False),
    "unipc": ("UniPCMultistepScheduler", {}, False),
    "deis": ("DEISMultistepScheduler", {}, False),
    "ddpm": ("DDPMScheduler", {}, True),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}, True),
    "dpm++sde": ("DPMSolverSDEScheduler", {}, True),
    "dpm++2m-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}, True),
}

#: the schedulers whose state is in EDM coordinates (x / alpha) rather than VP
_EDM_STATE = {"EulerDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler", "EulerAncestralDiscreteScheduler",
              "DPMSolverSDEScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}


def diffusers():
    """The diffusers package (its log quietened to errors), or an ImportError saying how to install it."""
    try:
        module = importlib.import_module("diffusers")
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the diffusers adapter needs diffusers: pip install 'diffmath[bench]'") from e
    module.utils.logging.set_verbosity_error()  # its notices about adjusted configurations would flood a table run
    return module


def scheduler_class(cls):
    """A diffusers scheduler class from its name (``"DDIMScheduler"``) or the class itself."""
    if isinstance(cls, str):
        try:
            return getattr(diffusers(), cls)
        except AttributeError:
            raise ValueError(f"diffusers has no scheduler {cls!r}") from None
    if not (inspect.isclass(cls) and hasattr(cls, "set_timesteps") and hasattr(cls, "step")):
        raise ValueError(f"expected a diffusers scheduler class, got {cls!r}")
    return cls


#: diffusers' prediction_type -> the kind of diffmath.parametrisation
_KINDS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def prediction(kind: str, D: torch.Tensor, x_in: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""The exact model output of diffusers' ``prediction_type`` ``kind`` (``epsilon``, ``sample``, ``v_prediction``)
    at the VP input ``x_in`` of EDM level ``sigma`` (> 0), from the exact denoised ``D``: the conversion of
    :func:`diffmath.parametrisation.convert` at :math:`\alpha = 1/\sqrt{1+\sigma^2}`, :math:`\sigma_t = \alpha\sigma`
    (the module docstring's formulas)."""
    if kind not in _KINDS:
        raise ValueError(f"prediction_type {kind!r} is not supported ({', '.join(_KINDS)})")
    if not sigma > 0:
        raise ValueError(f"the model is called at sigma = {sigma!r}; it needs sigma > 0")
    alpha = 1.0 / math.sqrt(1.0 + sigma * sigma)
    return parametrisation.convert(D, "x0", _KINDS[kind], x=x_in, alpha=alpha, sigma=alpha * sigma)


class DiffusersSampler:
    """A diffusers scheduler as a bench sampler (module docstring).

    ``scheduler``: a name of :data:`SCHEDULERS`, a scheduler class (or its name) with ``config`` keyword arguments, or
    an instance (its ``config`` is reused; a fresh copy runs each time, schedulers being stateful).
    ``common=True`` applies :data:`COMMON_CONFIG` under the given configuration (keys the class lacks are dropped).
    A budget is mapped to the largest ``num_inference_steps`` whose timesteps (one model call each) fit it.
    """

    def __init__(self, scheduler, *, name: Optional[str] = None, stochastic: Optional[bool] = None, common: bool = True,
                 max_steps: int = 1000, **config):
        self.label = None
        if isinstance(scheduler, str) and scheduler in SCHEDULERS:
            cls_name, extra, stoch = SCHEDULERS[scheduler]
            self.label, config = scheduler, {**extra, **config}
            stochastic = stoch if stochastic is None else stochastic
            scheduler = cls_name
        if not isinstance(scheduler, str) and not inspect.isclass(scheduler):
            if not hasattr(scheduler, "config") or not hasattr(scheduler, "step"):
                raise ValueError(f"expected a scheduler name, class or instance, got {type(scheduler).__name__}")
            config = {**dict(scheduler.config), **config}
            scheduler = type(scheduler)
        self.cls = scheduler_class(scheduler)
        accepted = set(inspect.signature(self.cls.__init__).parameters)
        base = {k: v for k, v in COMMON_CONFIG.items() if k in accepted} if common else {}
        unknown = sorted(k for k in config if k not in accepted and not k.startswith("_"))
        if unknown:
            raise ValueError(f"{self.cls.__name__} has no configuration {unknown}")
        self.config = {**base, **{k: v for k, v in config.items() if not k.startswith("_")}}
        self.name = name or self.label or self.cls.__name__
        self.stochastic = bool(stochastic) if stochastic is not None else False
        self.max_steps = count(max_steps, "max_steps")
        self.edm_state = self.cls.__name__ in _EDM_STATE

    def __repr__(self) -> str:
        return f"DiffusersSampler({self.name}: {self.cls.__name__}({self.config}))"

    def make(self, seed: Optional[int] = None):
        """A fresh scheduler instance (``seed`` feeds DPM++ SDE's Brownian tree, which has no generator argument)."""
        cfg = dict(self.config)
        if seed is not None and "noise_sampler_seed" in inspect.signature(self.cls.__init__).parameters:
            cfg["noise_sampler_seed"] = int(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # diffusers' deprecation notices
            return self.cls(**cfg)

    def calls(self, steps: int) -> int:
        """Model calls of the standard loop for ``steps`` inference steps: ``len(timesteps)``."""
        s = self.make()
        s.set_timesteps(count(steps, "steps"))
        return len(s.timesteps)

    def steps_for(self, budget: int) -> Optional[int]:
        budget, best = count(budget, "budget"), None
        for n in range(1, min(budget, self.max_steps) + 1):
            try:
                c = self.calls(n)
            except (ValueError, IndexError, ZeroDivisionError):
                continue  # a step count the scheduler refuses (e.g. too few for its order)
            if c <= budget:
                best = n
            elif c > budget + 4:
                break
        return best

    def levels(self, sched) -> list:
        """The EDM noise level of each model call and, last, the level the loop ends at."""
        T = len(sched.timesteps)
        sig = getattr(sched, "sigmas", None)
        if sig is not None and len(sig) == T + 1:
            return [float(s) for s in sig]
        ac = sched.alphas_cumprod.double()
        out = []
        for t in sched.timesteps:
            if float(t) != int(t):
                raise RuntimeError(f"{self.cls.__name__}: fractional timestep {float(t)} without a sigma table")
            a = float(ac[int(t)])
            out.append(math.sqrt((1 - a) / a))
        fac = getattr(sched, "final_alpha_cumprod", None)
        if fac is None:  # DDPM: its last step returns the x0-prediction (alpha_prod_t_prev = 1)
            out.append(0.0)
        else:
            a = float(fac)
            out.append(math.sqrt(max(1 - a, 0.0) / a))
        return out

    def run(self, law, z, steps, generator) -> Trajectory:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        sched = self.make(seed)
        sched.set_timesteps(count(steps, "steps"))
        levels = self.levels(sched)
        pred = sched.config.get("prediction_type", "epsilon")
        step_args = set(inspect.signature(sched.step).parameters)
        kw = {"generator": torch.Generator().manual_seed(seed)} if "generator" in step_args else {}
        D = edm_denoiser(law)
        x = z * float(sched.init_noise_sigma)
        x_start = None
        for i, t in enumerate(sched.timesteps):
            x_in = sched.scale_model_input(x, t)
            s = levels[i]
            x_edm = x_in * math.sqrt(1 + s * s)
            if x_start is None:
                x_start = x_edm.clone()
            out = prediction(pred, D(x_edm, s), x_in, s)
            x = sched.step(out, t, x, **kw).prev_sample
        s_end = levels[-1]
        x_end = x if self.edm_state else x * math.sqrt(1 + s_end * s_end)
        if D.nfe != len(sched.timesteps):
            raise RuntimeError(f"{self.name}: {D.nfe} model calls for {len(sched.timesteps)} timesteps")
        return Trajectory(x_start, levels[0], x_end.to(z.dtype), s_end, D.nfe, int(steps), levels[-2])
