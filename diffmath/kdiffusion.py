r"""k-diffusion's samplers (Crowson's reference implementation of Karras et al. 2022) for :mod:`diffmath.bench`.

k-diffusion's samplers are functions ``sample_<name>(model, x, sigmas, **kw)`` with ``model(x, sigma)`` the EDM
denoiser — the convention of :mod:`diffmath.samplers` — so :class:`diffmath.bench.KSampler` runs them as they are.
:func:`sampling_module` imports ``k_diffusion.sampling``. The package's ``__init__`` imports its whole training stack
(torchvision, kornia, CLIP, wandb, ...), which may not import at all (torchvision's published Linux wheels need a
CUDA build of torch); the sampling module itself needs only torch, scipy, torchsde, torchdiffeq, tqdm and one helper
of ``k_diffusion.utils``, ``append_dims``. When the package does not import, :func:`sampling_module` loads the
installed ``sampling.py`` under a stand-in package whose ``utils`` holds that helper alone (transcribed: it appends
trailing singleton dimensions). Install with ``pip install --no-deps k-diffusion torchsde torchdiffeq``.

:data:`SAMPLERS` lists the samplers the bench can run, with their denoiser calls per step and whether they are
stochastic; :func:`sampler` builds a :class:`~diffmath.bench.KSampler` for one of them (EDM's grid by default).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from importlib import metadata
from pathlib import Path

from diffmath.bench import KSampler

#: name -> (denoiser calls per step, stochastic); the last step to sigma = 0 is one call for every sampler here
SAMPLERS = {
    "euler": (1, False),
    "heun": (2, False),
    "dpm_2": (2, False),
    "lms": (1, False),
    "dpmpp_2m": (1, False),
    "euler_ancestral": (1, True),
    "dpm_2_ancestral": (2, True),
    "dpmpp_2s_ancestral": (2, True),
    "dpmpp_sde": (2, True),
    "dpmpp_2m_sde": (1, True),
    "dpmpp_3m_sde": (1, True),
}

_STANDIN = "diffmath._kdiffusion_standin"


def _append_dims(x, target_dims):
    """k_diffusion.utils.append_dims: ``x`` with singleton dimensions appended up to ``target_dims``."""
    extra = target_dims - x.ndim
    if extra < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * extra]


def sampling_module():
    """``k_diffusion.sampling`` (see the module docstring); ImportError when k-diffusion is not installed."""
    try:
        return importlib.import_module("k_diffusion.sampling")
    except ImportError:
        pass
    if _STANDIN + ".sampling" in sys.modules:
        return sys.modules[_STANDIN + ".sampling"]
    try:
        dist = metadata.distribution("k-diffusion")
    except metadata.PackageNotFoundError:
        raise ImportError("k-diffusion is not installed: pip install --no-deps k-diffusion torchsde torchdiffeq") from None
    path = Path(dist.locate_file("k_diffusion/sampling.py"))
    if not path.is_file():
        raise ImportError(f"k-diffusion is installed but {path} is missing")
    pkg = types.ModuleType(_STANDIN)
    pkg.__path__ = []
    utils = types.ModuleType(_STANDIN + ".utils")
    utils.append_dims = _append_dims
    pkg.utils = utils
    sys.modules[_STANDIN], sys.modules[_STANDIN + ".utils"] = pkg, utils
    spec = importlib.util.spec_from_file_location(_STANDIN + ".sampling", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[spec.name]
        raise
    return module


def version() -> str:
    """The installed k-diffusion's version."""
    return metadata.version("k-diffusion")


def sampler(name: str, **kwargs) -> KSampler:
    """k-diffusion's ``sample_<name>`` as a bench sampler (``kwargs``: :class:`~diffmath.bench.KSampler`'s ``grid``,
    ``init``, or the sampler's own options); its progress bar is off."""
    if name not in SAMPLERS:
        raise ValueError(f"no k-diffusion sampler {name!r}; known: {', '.join(SAMPLERS)}")
    evaluations, stochastic = SAMPLERS[name]
    fn = getattr(sampling_module(), f"sample_{name}")
    bench_keys = {"grid", "init"}
    own = {k: v for k, v in kwargs.items() if k not in bench_keys}
    return KSampler(fn, name=f"k-diffusion:{name}", evaluations=evaluations, stochastic=stochastic,
                    disable=True, **{k: v for k, v in kwargs.items() if k in bench_keys}, **own)
