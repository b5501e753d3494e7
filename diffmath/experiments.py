"""Experiments: expensive measurements declared once, computed once, read by everyone who needs them.

An :class:`Experiment` has a name, a version (bump it when the meaning of its output changes), a
default configuration and a ``run(config, device)`` returning a JSON-able result. :func:`result`
serves it from the on-disk cache of :mod:`diffmath.cache`, keyed by the experiment's name, version
and full configuration, the device type and the library's code version; on a miss it computes,
under a lock, so concurrent readers (two pytest workers, ``diffmath verify -j 2``, the book build)
compute it once. Claims, chapters, notebooks, benchmarks and ``scripts/device_check.sh`` all read
experiments through :func:`result`; nothing re-runs a reduced copy.

The cache key's code version covers only what computes the result: the import closure of the experiment's
``modules`` and this file (:func:`diffmath.cache.code_version`). The result of every experiment's default
configuration on the CPU is **stored with the code** in ``diffmath/_stored/experiments/<name>.json``
(``diffmath experiments store`` writes them; commit them with the change that made them): a fresh checkout
reads them instead of recomputing, as long as none of those modules changed. A stale stored result is not
read; ``tests/test_experiments.py`` fails until it is stored again, so the suite's time on a fresh clone
cannot silently grow by the experiments' cost.

An experiment may also render itself as Markdown (``markdown``); the book build writes every
experiment's JSON and Markdown under ``book/_generated/experiments/`` for the chapters to include.

Command line: ``diffmath experiments list | run [NAME ...] [--device DEV] | store [NAME ...] | clear [NAME ...]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from diffmath import cache

NAMESPACE = "experiments"
#: the results stored with the code (default configuration, CPU), one file per experiment
STORE = Path(__file__).resolve().parent / "_stored" / NAMESPACE


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (see the module docstring)."""

    name: str
    version: int
    description: str
    run: Callable[[dict, str], dict]
    defaults: dict = field(default_factory=dict)
    markdown: Optional[Callable[[dict], str]] = None
    device_dependent: bool = True
    """Whether the result depends on the device type (float64 results agree across devices only to rounding)."""
    modules: tuple = ()
    """The library modules whose code computes the result (with this file, their import closure keys the cache)."""

    def key(self, config: dict, device: str) -> dict:
        return {
            "experiment": self.name,
            "version": self.version,
            "config": config,
            "device": torch.device(device).type if self.device_dependent else "any",
            "code": cache.code_version(self.modules, files=[__file__]),
        }

    @property
    def stored_path(self) -> Path:
        return STORE / f"{self.name}.json"


_REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    if exp.name in _REGISTRY and _REGISTRY[exp.name] is not exp:
        raise ValueError(f"experiment {exp.name!r} is registered twice")
    if not exp.modules:
        raise ValueError(f"experiment {exp.name!r} must name the modules that compute it (modules=...)")
    cache.module_files(exp.modules)  # ValueError for a name that is not a module of the package
    _REGISTRY[exp.name] = exp
    return exp


def all_experiments() -> list[Experiment]:
    _load()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get(name: str) -> Experiment:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def config_of(name: str, config: Optional[dict] = None) -> dict:
    """The full configuration: the experiment's defaults updated by ``config`` (unknown keys are errors)."""
    exp = get(name)
    config = dict(config or {})
    unknown = sorted(set(config) - set(exp.defaults))
    if unknown:
        raise ValueError(f"unknown configuration keys for {name!r}: {unknown}; known: {sorted(exp.defaults)}")
    return {**exp.defaults, **config}


def result(name: str, config: Optional[dict] = None, device=None, *, refresh: bool = False) -> dict:
    """The experiment's result for ``config`` (defaults updated) on ``device`` (default cpu), from the cache
    when present and intact, else computed (once, under a lock) and stored."""
    exp = get(name)
    cfg = config_of(name, config)
    dev = str(torch.device(device)) if device is not None else "cpu"
    value, _ = cache.cached(NAMESPACE, exp.key(cfg, dev), lambda: exp.run(cfg, dev), refresh=refresh, stored=exp.stored_path)
    return value


def is_cached(name: str, config: Optional[dict] = None, device=None) -> bool:
    """Whether :func:`result` would read rather than compute (from the cache or the stored result)."""
    exp = get(name)
    dev = str(torch.device(device)) if device is not None else "cpu"
    return cache.read(NAMESPACE, exp.key(config_of(name, config), dev), stored=exp.stored_path) is not None


def stored_state(name: str) -> str:
    """``"current"``, ``"stale"`` (stored for other code or configuration) or ``"missing"``: the stored result."""
    exp = get(name)
    path = exp.stored_path
    if not path.is_file():
        return "missing"
    try:
        key = json.loads(path.read_text(encoding="utf8")).get("key")
    except (OSError, ValueError, AttributeError):
        return "stale"
    return "current" if key == cache.fingerprint(exp.key(config_of(name), "cpu")) else "stale"


def store(names=()) -> list[Path]:
    """Write the stored result of each experiment (all when empty): its default configuration on the CPU,
    read from the cache or computed. Returns the files written."""
    written = []
    for name in names or [e.name for e in all_experiments()]:
        exp = get(name)
        value = result(name, device="cpu")
        written.append(cache.write_entry(exp.stored_path, exp.key(config_of(name), "cpu"), value))
    return written


def clear(names=()) -> int:
    """Remove the cached results of ``names`` (all experiments when empty); returns the files removed."""
    if not names:
        return cache.clear(NAMESPACE)
    removed = 0
    for name in names:
        get(name)
        root = cache.cache_root()
        folder = None if root is None else root / NAMESPACE
        if folder is None or not folder.is_dir():
            continue
        for f in folder.glob("*.json"):
            try:
                if json.loads(f.read_text()).get("fingerprint", {}).get("experiment") == name:
                    f.unlink()
                    removed += 1
            except (OSError, ValueError):
                continue
    return removed


# ------------------------------------------------------------------------------------------------
# the experiments of the book
# ------------------------------------------------------------------------------------------------

_LOADED = False


def _load() -> None:
    """Register the library's experiments (imported lazily: they pull in samplers, AMED, images)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from diffmath import sampler_bench, sampler_table, skip_sweep, skip_toy, snr, upsample_guidance

    def samplers_run(cfg: dict, device: str) -> dict:
        res = sampler_table.run(device=device, **cfg)
        res["orderings"] = sampler_table.orderings(res)
        return res

    def samplers_markdown(res: dict) -> str:
        return (sampler_table.markdown(res) + "\n**The article's orderings, as measured in this run**\n\n"
                + sampler_table.summary(res) + "\n")

    register(Experiment(
        name="sampler-table",
        version=1,
        description="error vs NFE of every sampler on three exact mixtures, AMED distilled per mixture and budget (chapter 21)",
        run=samplers_run,
        defaults=dict(sampler_table.DEFAULTS),
        markdown=samplers_markdown,
        modules=("diffmath.sampler_table",),
    ))
    register(Experiment(
        name="resolution-shift",
        version=1,
        description="sample quality across resolutions with and without the log-SNR shift, exact output laws (chapter 22)",
        run=lambda cfg, device: snr.shift_experiment(cfg),
        defaults=dict(snr.SHIFT_EXPERIMENT),
        device_dependent=False,
        modules=("diffmath.snr",),
    ))
    register(Experiment(
        name="upsample-guidance",
        version=1,
        description="upsample guidance against its baselines across w, eta and s, exact output laws (chapter 23)",
        run=lambda cfg, device: upsample_guidance.guidance_experiment(cfg),
        defaults=dict(upsample_guidance.GUIDANCE_EXPERIMENT),
        device_dependent=False,
        modules=("diffmath.upsample_guidance",),
    ))
    register(Experiment(
        name="skip-unet",
        version=1,
        description="the toy EDM U-Net of chapter 24 trained on a Gaussian-image mixture; its float16 weights and its error against the exact denoiser",
        run=skip_toy.run_training,
        defaults=dict(skip_toy.TRAIN_DEFAULTS),
        markdown=skip_toy.training_markdown,
        modules=("diffmath.skip_toy",),
    ))
    register(Experiment(
        name="skip-tuning",
        version=1,
        description="Skip-Tuning on the trained toy U-Net: sample quality against the exact law by rho, NFE and sampler; losses, complexity proxy, time windows (chapter 24)",
        run=skip_sweep.run,
        defaults=dict(skip_sweep.DEFAULTS),
        markdown=skip_sweep.markdown,
        modules=("diffmath.skip_sweep",),
    ))
    register(Experiment(
        name="sampler-bench",
        version=1,
        description="the diffusers schedulers and the library's samplers against the exact flow on two mixtures: error by NFE, measured order, Fréchet distance (chapter 'Testing a sampler')",
        run=sampler_bench.run,
        defaults=dict(sampler_bench.DEFAULTS),
        markdown=sampler_bench.markdown,
        modules=("diffmath.sampler_bench",),
    ))
