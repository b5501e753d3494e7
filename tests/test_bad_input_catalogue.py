"""Bad input, catalogued: every public function is fed wrong shapes, NaN/Inf, negative variances, grids that do
not decrease, tensors on another device, wrong counts and names, and must raise a ``ValueError`` whose message
names the offending argument.

The catalogue is a table of entries: a readable name, the callable, a function building a *valid* set of keyword
arguments, and for each argument the kinds of bad value to try. Each entry is first called with its valid
arguments (which must succeed: that proves the entry right), then once per perturbation of one argument at a
time. torch's ``meta`` device stands in for "another device" on a machine without an accelerator. What the
library deliberately allows is not tried: lists and integer tensors converted to floats, a float32 point
converted to a float64 law's dtype, a cpu tensor moved to the law's device.

A case the library does not refuse is a library bug: fix the library. (An entry may mark a known gap
``xfail(strict=True)`` with the fix it needs, so that the fix is noticed; none is marked today.)
``pytest -s`` prints how many bad inputs were tried.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable

import pytest
import torch

from diffmath import amed, ddpm, denoisers, flows, images, mean_value, montecarlo, output_law, parametrisation, resolution
from diffmath import samplers, schedules, snr, toys, wasserstein
from diffmath.mixture import GaussianMixture

NAN, INF = math.nan, math.inf
F64 = torch.float64


# --- the kinds of bad value ------------------------------------------------------------------------------------------
def const(value) -> Callable[[Any], Any]:
    return lambda _valid: value


def _with(v: torch.Tensor, value: float, index: int = 0) -> torch.Tensor:
    """A copy of ``v`` with one entry (flat ``index``) replaced."""
    out = v.clone()
    out.view(-1)[index] = value
    return out


TENSOR = [  # any data tensor
    ("NaN", lambda v: _with(v, NAN)),
    ("Inf", lambda v: _with(v, INF)),
    ("complex dtype", lambda v: v.to(torch.complex128)),
    ("on meta device", lambda v: v.to("meta")),
]
POINTS = TENSOR + [  # points (..., d)
    ("wrong trailing dimension", lambda v: torch.cat([v, v[..., :1]], -1)),
    ("0-d", lambda v: v.new_tensor(1.0)),
]
IMAGE = TENSOR + [  # images (..., C, H, W)
    ("wrong image size", lambda v: v[..., :-1]),
    ("2-D", lambda v: v[(0,) * (v.ndim - 2)]),
]
STATE = [  # a sampler's state (batch, ...): any shape; no device of its own to mismatch (it runs where x is)
    ("NaN", lambda v: _with(v, NAN)),
    ("Inf", lambda v: _with(v, INF)),
    ("complex dtype", lambda v: v.to(torch.complex128)),
    ("integer dtype", lambda v: v.round().long()),
    ("0-d", lambda v: v.new_tensor(1.0)),
]
POSITIVE = [("negative", const(-0.5)), ("zero", const(0.0)), ("NaN", const(NAN)), ("Inf", const(INF))]
NONNEG = [("negative", const(-0.5)), ("NaN", const(NAN)), ("Inf", const(INF))]
UNIT = [("negative", const(-0.25)), ("above 1", const(1.5)), ("NaN", const(NAN))]  # in [0, 1]
COUNT = [("zero", const(0)), ("negative", const(-1)), ("2.5", const(2.5))]  # a positive integer
COUNT0 = [("negative", const(-1)), ("2.5", const(2.5))]  # a nonnegative integer
SIGMAS = [  # a strictly decreasing noise-level grid
    ("increasing", lambda v: v.flip(0)),
    ("repeated level", lambda v: torch.cat([v[:1], v])),
    ("NaN", lambda v: _with(v, NAN, 1)),
    ("2-D", lambda v: v[None]),
    ("single level", lambda v: v[:1]),
    ("negative level", lambda v: torch.cat([v[:-1], v.new_tensor([-1.0])])),
    ("on meta device", lambda v: v.to("meta")),
]
COV = [  # symmetric positive-definite matrices (..., d, d)
    ("not symmetric", lambda v: v + torch.triu(torch.full_like(v, 0.5), 1)),
    ("negative eigenvalue", lambda v: _with(v, -1.0)),
    ("NaN", lambda v: _with(v, NAN)),
    ("not square", lambda v: v[..., :-1]),
]
WEIGHTS = [  # (K,) nonnegative, summing to 1
    ("negative", lambda v: torch.cat([v.new_tensor([-0.5, 1.5]), v.new_zeros(v.shape[0] - 2)])),
    ("all zero", lambda v: torch.zeros_like(v)),
    ("NaN", lambda v: _with(v, NAN)),
    ("wrong length", lambda v: torch.cat([v, v.new_zeros(1)])),
]
DENOISER = [  # D(x, sigma) of the samplers
    ("returns a wrong shape", const(lambda x, sigma: x[..., :-1])),
    ("not callable", const(3.0)),
]
KINDS = {
    "tensor": TENSOR, "points": POINTS, "image": IMAGE, "state": STATE, "positive": POSITIVE, "nonneg": NONNEG,
    "unit": UNIT, "count": COUNT, "count0": COUNT0, "sigmas": SIGMAS, "cov": COV, "weights": WEIGHTS,
    "denoiser": DENOISER,
}


def bogus(label="unknown name", value="bogus"):
    return (label, const(value))


def level_batch(label="wrong batch shape"):
    """A per-point level whose shape is not the batch shape of the valid points (3 of them here)."""
    return (label, const(torch.full((4,), 0.5, dtype=F64)))


def not_scalar(label="not a number"):
    return (label, const(torch.tensor([0.5, 0.5], dtype=F64)))


# --- the table -------------------------------------------------------------------------------------------------------
@dataclass
class Entry:
    name: str
    fn: Callable[..., Any]
    valid: Callable[[], dict]
    args: dict[str, tuple]
    """argument -> what to try: kind names of :data:`KINDS` and (label, make(valid value)) pairs"""
    xfail: dict[str, str] = field(default_factory=dict)
    """"arg: label" (one case) or "arg" (every case of the argument) -> why it fails today and the fix it needs"""

    def perturbations(self, arg: str) -> list[tuple[str, Callable]]:
        out = []
        for spec in self.args[arg]:
            out += KINDS[spec] if isinstance(spec, str) else [spec]
        return out


ENTRIES: list[Entry] = []


def entry(name, fn, valid, args, **kw) -> None:
    ENTRIES.append(Entry(name, fn, valid, args, **kw))


def randn(*shape, seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@cache
def gm() -> GaussianMixture:
    return toys.random_mixture(2, 2, seed=0)


def spd(d=2, seed=0) -> torch.Tensor:
    return toys.random_spd(d, generator=torch.Generator().manual_seed(seed))


def gaussian_denoiser(x, sigma):
    """The exact denoiser of N(0, I) in EDM coordinates, without any validation of its own (so that a sampler's
    own checks are what is tested)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    s = s.reshape(-1, *([1] * (x.ndim - 1))) if s.ndim else s
    return x / (1 + s**2)


# GaussianMixture ---------------------------------------------------------------------------------------------------
def _gm_args(cov):
    return lambda: dict(weights=torch.tensor([0.3, 0.7], dtype=F64), means=randn(2, 2), covs=cov())


entry("GaussianMixture", GaussianMixture, _gm_args(lambda: torch.stack([spd(), spd(seed=1)])), {
    "weights": ("weights",),
    "means": ("tensor", ("wrong K", lambda v: v[:1]), ("1-D", lambda v: v[0])),
    "covs": ("cov", ("wrong K", lambda v: v[:1])),
})
entry("GaussianMixture(diagonal)", GaussianMixture, _gm_args(lambda: torch.ones(2, 2, dtype=F64)), {
    "covs": (("negative variance", lambda v: _with(v, -1.0)), ("zero variance", lambda v: _with(v, 0.0)), ("NaN", lambda v: _with(v, NAN))),
})
entry("GaussianMixture(isotropic)", GaussianMixture, _gm_args(lambda: torch.ones(2, dtype=F64)), {
    "covs": (("negative variance", lambda v: _with(v, -1.0)), ("zero variance", lambda v: _with(v, 0.0)), ("wrong K", lambda v: v[:1])),
})
entry("GaussianMixture.diffuse", lambda alpha, sigma: gm().diffuse(alpha, sigma), lambda: dict(alpha=0.8, sigma=0.6), {
    "alpha": ("nonneg", not_scalar()),
    "sigma": ("nonneg", not_scalar()),
})
for _method in ("score", "log_prob", "responsibilities"):
    entry(f"GaussianMixture.{_method}", lambda x, _m=_method: getattr(gm(), _m)(x), lambda: dict(x=randn(3, 2)), {"x": ("points",)})
for _method, _sigma in (("score_at", "nonneg"), ("denoise", "positive"), ("posterior", "positive")):
    entry(f"GaussianMixture.{_method}", lambda x, alpha, sigma, _m=_method: getattr(gm(), _m)(x, alpha, sigma),
          lambda: dict(x=randn(3, 2), alpha=0.8, sigma=0.6), {
              "x": ("points",),
              "alpha": ("nonneg", level_batch()),
              "sigma": (_sigma, level_batch()),
          })
entry("GaussianMixture.sample", lambda n: gm().sample(n), lambda: dict(n=5), {"n": ("count0", bogus("a string", "5"))})

# schedules ----------------------------------------------------------------------------------------------------------
entry("VPLinear", schedules.VPLinear, lambda: dict(beta_min=0.1, beta_max=20.0), {
    "beta_min": ("nonneg", ("above beta_max", const(30.0))),
    "beta_max": ("positive",),
})
entry("VPCosine", schedules.VPCosine, lambda: dict(s=0.008), {"s": (("negative", const(-0.1)), ("1", const(1.0)), ("NaN", const(NAN)))})
entry("DDPMDiscrete", schedules.DDPMDiscrete, lambda: dict(beta_start=1e-4, beta_end=0.02, num_steps=10), {
    "beta_start": ("positive",),
    "beta_end": (("1", const(1.0)), ("NaN", const(NAN)), ("below beta_start", const(1e-5))),
    "num_steps": ("count", ("1", const(1))),
})
entry("EDM", schedules.EDM, lambda: dict(sigma_min=0.002, sigma_max=80.0, rho=7.0, sigma_data=0.5), {
    "sigma_min": ("positive",),
    "sigma_max": (("Inf", const(INF)), ("NaN", const(NAN)), ("below sigma_min", const(0.001))),
    "rho": ("positive",),
    "sigma_data": ("positive",),
})
entry("LogSNRCosine", schedules.LogSNRCosine, lambda: dict(logsnr_min=-15.0, logsnr_max=15.0), {
    "logsnr_min": (("NaN", const(NAN)), ("-Inf", const(-INF)), ("above logsnr_max", const(20.0))),
    "logsnr_max": (("NaN", const(NAN)), ("Inf", const(INF))),
})
entry("ShiftedSchedule", schedules.ShiftedSchedule, lambda: dict(base=schedules.VPCosine(), shift=2.0), {
    "base": (("not a schedule", const("vp")),),
    "shift": ("positive", ("a triple", const((1.0, 2.0, 3.0)))),
})
entry("edm_rho_grid", schedules.edm_rho_grid, lambda: dict(n=5, sigma_min=0.002, sigma_max=80.0, rho=7.0), {
    "n": ("count", ("1", const(1))),
    "sigma_min": ("positive",),
    "sigma_max": (("Inf", const(INF)), ("NaN", const(NAN)), ("below sigma_min", const(0.001))),
    "rho": ("positive",),
})
entry("sd3_time_shift", schedules.sd3_time_shift, lambda: dict(t=torch.tensor([0.2, 0.7], dtype=F64), shift=3.0), {
    "t": ("tensor", ("above 1", lambda v: v + 1), ("negative", lambda v: -v)),
    "shift": ("positive",),
})
_T_BAD = TENSOR[:3] + [("on meta device", lambda v: v.to("meta"))]
for _sched in (schedules.VPLinear(), schedules.VPCosine(), schedules.LogSNRCosine(), schedules.RectifiedFlow(),
               schedules.ShiftedSchedule(schedules.VPCosine(), 2.0)):
    for _method in ("alpha", "sigma"):
        entry(f"{type(_sched).__name__}.{_method}", getattr(_sched, _method), lambda: dict(t=torch.tensor([0.1, 0.5], dtype=F64)), {
            "t": (*_T_BAD, ("negative", lambda v: -v), ("above t_max", lambda v: v + 1)),
        })
entry("EDM.sigma", schedules.EDM().sigma, lambda: dict(t=torch.tensor([0.1, 5.0], dtype=F64)), {
    "t": (*_T_BAD, ("negative", lambda v: -v)),
})
entry("DDPMDiscrete.alpha", schedules.DDPMDiscrete(num_steps=10).alpha, lambda: dict(t=torch.tensor([1.0, 5.0], dtype=F64)), {
    "t": (*_T_BAD, ("negative", lambda v: -v), ("beyond the last step", lambda v: v + 10), ("not an integer step", lambda v: v + 0.5)),
})
entry("VPLinear.t_of_edm_sigma", schedules.VPLinear().t_of_edm_sigma, lambda: dict(s=torch.tensor([0.5, 2.0], dtype=F64)), {
    "s": (*_T_BAD, ("negative", lambda v: -v)),
})

# parametrisation ----------------------------------------------------------------------------------------------------


def _convert_args(src="eps", dst="x0"):
    return lambda: dict(value=randn(3, 2), src=src, dst=dst, x=randn(3, 2, seed=1), alpha=0.8, sigma=0.6)


entry("convert", parametrisation.convert, _convert_args(), {
    "value": ("tensor", ("wrong trailing dimension", lambda v: torch.cat([v, v[..., :1]], -1))),
    "src": (bogus(),),
    "dst": (bogus(),),
    "x": ("tensor", ("wrong trailing dimension", lambda v: torch.cat([v, v[..., :1]], -1))),
    "alpha": ("nonneg",),
    "sigma": ("positive",),
})
entry("convert(velocity)", parametrisation.convert,
      lambda: dict(_convert_args("x0", "velocity")(), dalpha=-0.6, dsigma=0.8), {
          "dalpha": (("missing", const(None)), ("NaN", const(NAN))),
          "dsigma": (("missing", const(None)), ("NaN", const(NAN))),
      })
entry("to_x0_eps", parametrisation.to_x0_eps,
      lambda: dict(value=randn(3, 2), kind="eps", x=randn(3, 2, seed=1), alpha=0.8, sigma=0.6), {
          "value": (TENSOR[0], ("wrong trailing dimension", lambda v: torch.cat([v, v[..., :1]], -1))),
          "kind": (bogus(),),
          "x": (TENSOR[0],),
          "sigma": (("zero", const(0.0)), ("NaN", const(NAN))),
      })
entry("from_x0_eps", parametrisation.from_x0_eps,
      lambda: dict(x0=randn(3, 2), eps=randn(3, 2, seed=1), kind="score", alpha=0.8, sigma=0.6), {
          "x0": (TENSOR[0],),
          "eps": (TENSOR[0], ("wrong trailing dimension", lambda v: torch.cat([v, v[..., :1]], -1))),
          "kind": (bogus(),),
          "sigma": (("zero", const(0.0)), ("NaN", const(NAN))),
      })

# flows --------------------------------------------------------------------------------------------------------------
entry("gaussian_flow", flows.gaussian_flow, lambda: dict(
    mean=randn(2), cov=spd(), x_from=randn(3, 2, seed=1), alpha_from=0.5, sigma_from=1.0, alpha_to=0.9, sigma_to=0.3), {
    "mean": ("tensor", ("2-D", lambda v: v[None])),
    "cov": ("cov",),
    "x_from": ("points",),
    **{name: ("nonneg", not_scalar()) for name in ("alpha_from", "sigma_from", "alpha_to", "sigma_to")},
})
entry("solve_pf_ode", flows.solve_pf_ode, lambda: dict(
    denoiser=lambda x, alpha, sigma: gm().denoise(x, alpha, sigma), x=randn(3, 2), sigma_from=2.0, sigma_to=0.5,
    rtol=1e-6, atol=1e-6, max_steps=1000), {
    "denoiser": (("returns a wrong shape", const(lambda x, alpha, sigma: x[..., :1])), ("not callable", const(3.0))),
    "x": ("tensor",),
    "sigma_from": ("positive",),
    "sigma_to": ("positive",),
    "rtol": ("positive",),
    "atol": ("positive",),
    "max_steps": ("count",),
})
entry("integrate", flows.integrate, lambda: dict(f=lambda t, y: -y, y0=randn(3, 2), t0=0.0, t1=1.0, rtol=1e-6, atol=1e-6,
                                                  max_steps=100), {
    "y0": ("tensor",),
    "t0": (("NaN", const(NAN)), ("Inf", const(INF))),
    "t1": (("NaN", const(NAN)), ("Inf", const(INF))),
    "rtol": ("positive",),
    "max_steps": ("count",),
})

# samplers: every registered one, AMED's included --------------------------------------------------------------------
SAMPLER_OPTIONS = {  # per sampler: extra valid options, and what to try on them
    "dpm_solver_2": (dict(r=0.5), {"r": (("zero", const(0.0)), ("above 1", const(1.5)), ("NaN", const(NAN)))}),
    "ipndm": (dict(max_order=3), {"max_order": (("0", const(0)), ("5", const(5)), ("2.5", const(2.5)))}),
    "ipndm_v": (dict(max_order=3), {"max_order": (("0", const(0)), ("5", const(5)), ("2.5", const(2.5)))}),
    "amed": (dict(predictor=amed.ConstantPredictor()), {}),
    "amed_plugin": (dict(predictor=amed.ConstantPredictor(), max_order=3),
                    {"max_order": (("0", const(0)), ("5", const(5)), ("2.5", const(2.5)))}),
}


def _bad_r_predictor(features, sigma_cur, sigma_next):
    full = lambda v: features.new_full((features.shape[0],), v)  # noqa: E731
    return full(2.0), full(1.0), full(1.0)


for _name, _spec in samplers.SPECS.items():
    _options, _extra = SAMPLER_OPTIONS.get(_name, ({}, {}))
    _args = {
        "denoiser": ("denoiser",),
        "x": ("state",),
        "sigmas": ("sigmas", ("not ending at 0", lambda v: v[:-1])),
        "extra_args": (("not a dict", const([1])),),
        **_extra,
    }
    if "predictor" in _options:
        _args["predictor"] = (("not callable", const(None)), ("returns r = 2", const(_bad_r_predictor)))
    entry(f"sample_{_name}", _spec.fn,
          lambda _o=_options: dict(denoiser=gaussian_denoiser, x=randn(3, 2), sigmas=torch.tensor([10.0, 2.0, 0.5, 0.0], dtype=F64),
                                   extra_args={}, **_o),
          _args)

# amed ---------------------------------------------------------------------------------------------------------------
entry("ConstantPredictor", amed.ConstantPredictor, lambda: dict(r=0.5, scale_dir=1.0, scale_time=1.0), {
    "r": ("unit",),
    "scale_dir": ("positive",),
    "scale_time": ("positive",),
})
entry("refined_grid", amed.refined_grid, lambda: dict(sigmas=torch.tensor([10.0, 2.0, 0.5, 0.0], dtype=F64), r=0.5), {
    "sigmas": ("sigmas",),
    "r": ("unit",),
})


def _teacher_args():
    return dict(denoiser=edm(), x=randn(3, 2), sigmas=torch.tensor([5.0, 1.0, 0.2], dtype=F64), rtol=1e-6, atol=1e-6)


@cache
def edm():
    return denoisers.edm_denoiser(gm())


entry("teacher_trajectory", amed.teacher_trajectory, _teacher_args, {
    "denoiser": ("denoiser",),
    "x": ("state",),
    "sigmas": ("sigmas",),
    "rtol": ("positive",),
})


@cache
def _teacher():
    return amed.teacher_trajectory(**_teacher_args())


def _distill_args(solver="amed"):
    return lambda: dict(predictor=amed.AMEDPredictor(hidden=4), denoiser=edm(), sigmas=torch.tensor([5.0, 1.0, 0.2], dtype=F64),
                        teacher=_teacher().clone(), solver=solver, iterations=1, lr=0.01)


entry("distill", amed.distill, _distill_args(), {
    "predictor": (("not a module", const(amed.ConstantPredictor())),),
    "denoiser": ("denoiser",),
    "sigmas": ("sigmas",),
    "teacher": (TENSOR[0], ("wrong number of levels", lambda v: v[:-1])),
    "solver": (bogus(),),
    "iterations": ("count",),
    "lr": ("positive",),
})
entry("distill(plugin)", amed.distill, lambda: dict(_distill_args("plugin")(), max_order=3), {
    "max_order": (("0", const(0)), ("5", const(5)), ("2.5", const(2.5))),
    "rollout": (("False for the plugin", const(False)),),
})

# denoisers ----------------------------------------------------------------------------------------------------------
NOT_A_LAW = (("not a law", const(torch.zeros(2))),)
entry("edm_denoiser", denoisers.edm_denoiser, lambda: dict(gm=gm()), {"gm": NOT_A_LAW})
entry("edm_denoiser(gm)", lambda x, sigma: edm()(x, sigma), lambda: dict(x=randn(3, 2), sigma=torch.full((3,), 0.5, dtype=F64)), {
    "x": ("points",),
    "sigma": (("zero", lambda v: v * 0), ("NaN", lambda v: _with(v, NAN)), ("wrong batch shape", lambda v: v[:2])),
})
entry("ddpm_eps_model", denoisers.ddpm_eps_model, lambda: dict(gm=gm(), schedule=schedules.DDPMDiscrete(num_steps=10)), {
    "gm": NOT_A_LAW,
    "schedule": (("continuous schedule", const(schedules.VPLinear())),),
})
entry("ddpm_eps_model(gm, schedule)", lambda x_t, t: denoisers.ddpm_eps_model(gm(), schedules.DDPMDiscrete(num_steps=10))(x_t, t),
      lambda: dict(x_t=randn(3, 2), t=5), {
          "x_t": ("points",),
          "t": (("negative", const(-1)), ("beyond the last step", const(10)), ("2.5", const(2.5)), ("NaN", const(NAN))),
      })
entry("exact_eps_model", denoisers.exact_eps_model, lambda: dict(law=gm(), schedule=schedules.VPCosine()), {
    "law": NOT_A_LAW,
    "schedule": (("not a schedule", const("vp")),),
})
entry("exact_eps_model(law, schedule)", lambda x_t, t: denoisers.exact_eps_model(gm(), schedules.VPCosine())(x_t, t),
      lambda: dict(x_t=randn(3, 2), t=0.5), {
          "t": (("negative", const(-0.5)), ("above 1", const(1.5)), ("NaN", const(NAN)), ("0 (sigma = 0)", const(0.0))),
      })

# wasserstein --------------------------------------------------------------------------------------------------------
entry("bures_w2", wasserstein.bures_w2, lambda: dict(m1=randn(2), S1=spd(), m2=randn(2, seed=1), S2=spd(seed=1)), {
    "m1": ("tensor", ("wrong length", lambda v: torch.cat([v, v[:1]]))),
    "S1": ("cov",),
    "m2": ("tensor", ("wrong length", lambda v: torch.cat([v, v[:1]]))),
    "S2": ("cov",),
})
entry("sqrtm_psd", wasserstein.sqrtm_psd, lambda: dict(S=spd()), {
    "S": ("cov", ("Inf", lambda v: _with(v, INF)), ("on meta device", lambda v: v.to("meta")), ("1-D", lambda v: v[0])),
})
entry("empirical_w2_1d", wasserstein.empirical_w2_1d, lambda: dict(x=randn(5), y=randn(5, seed=1)), {
    "x": ("tensor", ("shape (n, 2)", lambda v: torch.stack([v, v], -1))),
    "y": ("tensor", ("different length", lambda v: v[:-1])),
})
entry("gaussian_mixture_1d", wasserstein.gaussian_mixture_1d,
      lambda: dict(weights=torch.tensor([0.3, 0.7], dtype=F64), means=randn(2), variances=torch.tensor([1.0, 0.5], dtype=F64)), {
          "weights": ("weights",),
          "means": (TENSOR[0], ("2-D", lambda v: v[:, None]), ("wrong length", lambda v: v[:1])),
          "variances": (("negative", lambda v: _with(v, -1.0)), ("zero", lambda v: _with(v, 0.0)), ("NaN", lambda v: _with(v, NAN)),
                        ("2-D", lambda v: v[:, None]), ("wrong length", lambda v: v[:1])),
      })

# montecarlo ---------------------------------------------------------------------------------------------------------
entry("montecarlo.mean", montecarlo.mean, lambda: dict(samples=randn(10, 2)), {
    "samples": ("tensor", ("one sample", lambda v: v[:1]), ("0-d", lambda v: v[0, 0])),
})
entry("montecarlo.self_normalised", montecarlo.self_normalised, lambda: dict(values=randn(10, 2), log_weights=randn(10, seed=1)), {
    "values": ("tensor", ("wrong length", lambda v: v[:-1])),
    "log_weights": (("NaN", lambda v: _with(v, NAN)), ("+Inf", lambda v: _with(v, INF)), ("2-D", lambda v: v[:, None]),
                    ("wrong length", lambda v: v[:-1]), ("all -Inf", lambda v: torch.full_like(v, -INF))),
})

# images -------------------------------------------------------------------------------------------------------------
@cache
def law() -> images.GaussianImage:
    return images.GaussianImage.power_law(4, 4, 2.0, mean=0.1, channels=2)


@cache
def mix() -> images.ImageMixture:
    return images.ImageMixture([0.4, 0.6], [law(), images.GaussianImage.power_law(4, 4, 1.0, channels=2)])


entry("FourierBasis", images.FourierBasis, lambda: dict(H=4, W=4), {"H": ("count",), "W": ("count",)})
entry("PolyphaseBasis", images.PolyphaseBasis, lambda: dict(
    H=4, W=4, s=2, V=torch.eye(4, dtype=torch.complex128).expand(2, 2, 4, 4).clone()), {
    "s": ("count", ("not dividing H", const(3))),
    "V": (("NaN", lambda v: _with(v, NAN)), ("real", lambda v: v.real), ("wrong shape", lambda v: v[:1])),
})
entry("power_law_spectrum", images.power_law_spectrum, lambda: dict(H=4, W=4, alpha=2.0, f0=1.0, variance=1.0, reference=(2, 2)), {
    "H": ("count",),
    "alpha": (("negative", const(-1.0)), ("NaN", const(NAN)), ("Inf", const(INF))),
    "f0": ("positive",),
    "variance": ("positive",),
    "reference": (("zero size", const((0, 2))), ("2.5", const((2.5, 2))), ("not a pair", const(2))),
})
entry("GaussianImage", images.GaussianImage, lambda: dict(
    mean=torch.zeros(2, 4, 4, dtype=F64), basis=images.FourierBasis(4, 4), eigenvalues=torch.ones(4, 4, dtype=F64)), {
    "mean": ("tensor", ("wrong size", lambda v: v[..., :-1]), ("2-D", lambda v: v[0])),
    "basis": (("not a basis", const("fourier")),),
    "eigenvalues": ("tensor", ("negative", lambda v: _with(v, -1.0)), ("zero", lambda v: _with(v, 0.0)),
                    ("wrong shape", lambda v: v[:-1])),
})
entry("GaussianImage.stationary", images.GaussianImage.stationary, lambda: dict(
    spectrum=images.power_law_spectrum(4, 4, 2.0), mean=0.0, channels=2), {
    "spectrum": ("tensor", ("not symmetric", lambda v: _with(v, 5.0, 1)), ("1-D", lambda v: v[0])),
    "mean": (("NaN", const(NAN)), ("wrong size", const(torch.zeros(3, 3, dtype=F64)))),
    "channels": ("count",),
})
for _label, _law in (("GaussianImage", law), ("ImageMixture", mix)):
    for _method in ("score", "log_prob"):
        entry(f"{_label}.{_method}", lambda x, _l=_law, _m=_method: getattr(_l(), _m)(x), lambda: dict(x=randn(3, 2, 4, 4)), {"x": ("image",)})
    for _method, _sigma in (("score_at", "nonneg"), ("denoise", "positive")):
        entry(f"{_label}.{_method}", lambda x, alpha, sigma, _l=_law, _m=_method: getattr(_l(), _m)(x, alpha, sigma),
              lambda: dict(x=randn(3, 2, 4, 4), alpha=0.8, sigma=0.6), {
                  "x": ("image",),
                  "alpha": ("nonneg", level_batch()),
                  "sigma": (_sigma, level_batch()),
              })
    entry(f"{_label}.sample", lambda n, _l=_law: _l().sample(n), lambda: dict(n=3), {"n": ("count0",)})
    entry(f"{_label}.diffuse", lambda alpha, sigma, _l=_law: _l().diffuse(alpha, sigma), lambda: dict(alpha=0.8, sigma=0.6), {
        "alpha": ("nonneg", not_scalar()),
        "sigma": ("nonneg", not_scalar()),
    })
    entry(f"{_label}.pool", lambda s, _l=_law: _l().pool(s), lambda: dict(s=2), {"s": ("count", ("not dividing H", const(3)))})
entry("ImageMixture", images.ImageMixture, lambda: dict(weights=torch.tensor([0.4, 0.6], dtype=F64), components=[law(), law()]), {
    "weights": ("weights",),
    "components": (("empty", const([])), ("not laws", const([1.0, 2.0])),
                   ("two image shapes", const([images.GaussianImage.power_law(4, 4, 2.0), images.GaussianImage.power_law(8, 8, 2.0)]))),
})

# resolution ---------------------------------------------------------------------------------------------------------
for _fn in (resolution.pool, resolution.upsample, resolution.project):
    entry(f"resolution.{_fn.__name__}", _fn, lambda: dict(x=randn(2, 4, 4), s=2), {
        "x": ("tensor", ("1-D", lambda v: v[0, 0])),
        "s": ("count", *([("not dividing H", const(3))] if _fn is not resolution.upsample else [])),
    })

# ddpm ---------------------------------------------------------------------------------------------------------------
_ABAR = {
    "alpha_bar_t": ("positive", ("not below alpha_bar_prev", const(0.95))),
    "alpha_bar_prev": (("above 1", const(1.5)), ("NaN", const(NAN))),
}
entry("ddpm.step", ddpm.step, lambda: dict(x_t=randn(3, 2), eps=randn(3, 2, seed=1), alpha_bar_t=0.8, alpha_bar_prev=0.9), {
    "x_t": ("tensor",),
    "eps": ("tensor", ("wrong shape", lambda v: v[0])),
    **_ABAR,
    "noise": (bogus(),),
})
entry("ddpm.posterior", ddpm.posterior, lambda: dict(x0=randn(3, 2), x_t=randn(3, 2, seed=1), alpha_bar_t=0.8, alpha_bar_prev=0.9), {
    "x0": ("tensor", ("wrong shape", lambda v: v[0])),
    "x_t": ("tensor",),
    **_ABAR,
})

# mean_value ---------------------------------------------------------------------------------------------------------
entry("exact_gain", mean_value.exact_gain, lambda: dict(t_to=0.5, t_from=2.0, sd=1.0), {
    "t_to": NONNEG,
    "t_from": NONNEG,
    "sd": ("positive",),
})
entry("mean_value_time", mean_value.mean_value_time, lambda: dict(t_to=0.5, t_from=2.0, sd=1.0, iterations=50), {
    "t_to": ("positive", ("not below t_from", const(3.0))),
    "t_from": ("positive",),
    "sd": ("positive",),
    "iterations": ("count",),
})

# snr ----------------------------------------------------------------------------------------------------------------
entry("patchify", snr.patchify, lambda: dict(x=randn(2, 4, 4), p=2), {
    "x": ("tensor", ("2-D", lambda v: v[0])),
    "p": ("count", ("not dividing H", const(3))),
})
entry("aligned_alpha", snr.aligned_alpha, lambda: dict(alpha_low=torch.tensor([0.2, 0.9], dtype=F64), s=2.0), {
    "alpha_low": ("tensor", ("above 1", lambda v: v + 1), ("negative", lambda v: -v)),
    "s": ("positive",),
})

# output_law ---------------------------------------------------------------------------------------------------------
entry("output_law.w2", output_law.w2, lambda: dict(p=law(), q=law().diffuse(0.9, 0.1)), {
    "p": NOT_A_LAW,
    "q": NOT_A_LAW + (("another shape", const(images.GaussianImage.power_law(8, 8, 2.0, channels=2))),),
})
entry("sampler_law", output_law.sampler_law, lambda: dict(
    law=images.GaussianImage.power_law(4, 4, 2.0), schedule=schedules.LogSNRCosine(), sampler="euler", n=3), {
    "law": NOT_A_LAW,
    "schedule": (("not a schedule", const("cosine")), ("infinite time range", const(schedules.EDM()))),
    "sampler": (bogus(), ("two evaluations per step", const("heun"))),
    "n": ("count",),
    "s": (("zero", const(0)), ("not dividing H", const(3))),
})

# toys ---------------------------------------------------------------------------------------------------------------
entry("random_mixture", toys.random_mixture, lambda: dict(n_components=2, dim=2, cov_type="full", spread=3.0), {
    "n_components": ("count",),
    "dim": ("count",),
    "cov_type": (bogus(),),
    "spread": (("NaN", const(NAN)), ("Inf", const(INF))),
    "dtype": (("integer", const(torch.int64)),),
})


# --- the cases -------------------------------------------------------------------------------------------------------
def _cases():
    cases = []
    for e in ENTRIES:
        for arg in e.args:
            for label, make in e.perturbations(arg):
                reason = e.xfail.get(f"{arg}: {label}", e.xfail.get(arg))
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                cases.append(pytest.param(e, arg, make, id=f"{e.name}[{arg}: {label}]", marks=marks))
    return cases


CASES = _cases()
FLOOR = 900  # the catalogue may grow, not shrink unnoticed


def names(message: str, name: str) -> bool:
    """Whether ``message`` names ``name`` as a word (not as part of another name: "x" is not named by "x_t")."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


@pytest.mark.parametrize("e", ENTRIES, ids=lambda e: e.name)
def test_valid_arguments_are_accepted(e: Entry):
    e.fn(**e.valid())


@pytest.mark.parametrize(("e", "arg", "make"), CASES)
def test_bad_input_is_refused(e: Entry, arg: str, make: Callable):
    kwargs = e.valid()
    kwargs[arg] = make(kwargs.get(arg))
    with pytest.raises(ValueError) as info:
        e.fn(**kwargs)
    assert names(str(info.value), arg), f"the message does not name {arg!r}: {info.value}"


def test_catalogue_size():
    n = len(CASES)
    print(f"tried {n} bad inputs ({len(ENTRIES)} entries)")
    assert n >= FLOOR
