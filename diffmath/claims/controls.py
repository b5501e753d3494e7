"""Negative controls: a claim's numeric check must fail when the library it checks is wrong.

A check that passes is only evidence if it could have failed. A :class:`Plant` names one library
function the check relies on and a small mistake to plant in it (its result scaled by ``1 + rel``,
shifted by ``add``, or its sign flipped); :func:`negative_control` runs the claim's check with the
mistake in place and returns what the check measured. The suite asserts that every planted check
fails (``tests/test_negative_controls.py``), which is what catches a check whose bound was loosened,
whose error was computed against the library's own output, or whose z-score lost its standard error
(the mutation harness, ``benchmarks/mutation.py``, plants such mistakes in the checks themselves).

The size of a plant says how sharp the check is: an exact identity checked to ``1e-10`` should
notice a relative error of ``1e-7``; a Monte Carlo check at 5 standard errors should notice a shift
of some tens of standard errors. Each claim declares its plants (``Claim.plants``) next to its check.

A plant patches the attribute its ``target`` names (``"diffmath.mixture:GaussianMixture.score_at"``):
it reaches callers that look the function up there (``module.f(...)``, ``obj.method(...)``), not a
name bound earlier by ``from module import f`` — a plant that does not reach the check leaves it
passing, and the test reports it. Every ``functools`` memo of the package is cleared before and
after, so no planted value outlives the control.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import sys
from dataclasses import dataclass
from typing import Optional

import torch

#: the ways a plant changes a function's result
_MODES = ("rel", "add", "negate")


@dataclass(frozen=True)
class Plant:
    """A small mistake planted in one library function.

    ``target`` is ``"module:qualname"`` (a function or a method, e.g.
    ``"diffmath.score_matching:gap_per_sample"``). The function's result ``y`` (a tensor or a float;
    with ``index``, the ``index``-th item of a returned tuple) becomes ``y * (1 + rel) + add``, or
    ``-y`` with ``negate``. ``why`` says, in a few words, what the mistake models; ``fails`` which of
    the check's measurements it must fail (a check with several parts has a plant for each).
    """

    target: str
    rel: float = 0.0
    add: float = 0.0
    negate: bool = False
    index: Optional[int] = None
    why: str = ""
    fails: tuple[str, ...] = ()
    """Words that name the measurements the plant must fail (each must occur in exactly one measurement's
    quantity); empty: at least one measurement must fail."""
    reads: Optional[float] = None
    """What the measurements named in ``fails`` must read under the plant, to within a factor of 2: a relative
    error planted as ``rel`` must be measured as about ``rel``. It makes the control check the measurement's
    formula too (a relative error computed as a product, or divided by the wrong scale, still fails a tight bound
    under the plant, but not at the planted size)."""

    def __post_init__(self):
        module, sep, qualname = self.target.partition(":")
        if not sep or not module or not qualname:
            raise ValueError(f"plant target must be 'module:qualname', got {self.target!r}")
        if not (self.negate or self.rel != 0.0 or self.add != 0.0):
            raise ValueError(f"plant {self.target}: rel, add or negate must change the result")
        if self.negate and (self.rel != 0.0 or self.add != 0.0):
            raise ValueError(f"plant {self.target}: negate replaces the result; give no rel or add with it")
        if isinstance(self.fails, str):
            raise ValueError(f"plant {self.target}: fails must be a tuple of strings, got the string {self.fails!r}")
        if self.reads is not None and not (self.fails and self.reads > 0 and math.isfinite(self.reads)):
            raise ValueError(f"plant {self.target}: reads must be a finite number > 0 and name its measurements in fails")

    def change_text(self) -> str:
        """The change to the result, in words: ``sign flipped``, ``x (1 +1e-07)``, ``+0.05``."""
        if self.negate:
            return "sign flipped"
        return " ".join(b for b in (f"x (1 {self.rel:+g})" if self.rel else "", f"{self.add:+g}" if self.add else "") if b)

    def describe(self) -> str:
        item = f"[{self.index}]" if self.index is not None else ""
        return f"{self.target}{item} {self.change_text()}" + (f" ({self.why})" if self.why else "")

    def change(self, y):
        if self.negate:
            return -y
        return y * (1.0 + self.rel) + self.add if self.rel else y + self.add

    def _resolve(self):
        module_name, _, qualname = self.target.partition(":")
        owner = importlib.import_module(module_name)
        *path, name = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        if not hasattr(owner, name):
            raise ValueError(f"plant target {self.target!r}: {owner!r} has no attribute {name!r}")
        return owner, name


def _memos() -> list:
    """The ``functools`` caches of the package's modules."""
    found = []
    for mod_name, module in list(sys.modules.items()):
        if module is None or not (mod_name == "diffmath" or mod_name.startswith("diffmath.")):
            continue
        for obj in list(vars(module).values()):
            if callable(getattr(obj, "cache_clear", None)) and getattr(obj, "__module__", None) == mod_name:
                found.append(obj)
    return found


def clear_memos() -> None:
    """Forget the results the package memoises with ``functools`` caches (a planted value must not outlive
    its control, nor a memo of the correct value hide the plant)."""
    for memo in _memos():
        memo.cache_clear()


@contextlib.contextmanager
def planted(plant: Plant, *, fresh_memos: bool = True):
    """The library with ``plant`` in place, for the duration of the ``with`` block.

    With ``fresh_memos`` every memo of the package is forgotten before (so that the plant reaches what they
    hold) and after (so that no planted value outlives the block). Without, memos computed before are kept,
    and only those that computed something inside the block are forgotten afterwards."""
    owner, name = plant._resolve()
    own = name in vars(owner)  # a class's own method, or one it inherits (restored by deleting the override)
    raw = vars(owner)[name] if own else getattr(owner, name)
    if isinstance(raw, (staticmethod, classmethod, property)):
        raise ValueError(f"plant target {plant.target!r}: static and class methods and properties are not supported")
    if not callable(raw):
        raise ValueError(f"plant target {plant.target!r} is not callable")

    @functools.wraps(raw)
    def wrong(*args, **kwargs):
        y = raw(*args, **kwargs)
        if plant.index is None:
            return plant.change(y)
        if not isinstance(y, (tuple, list)):
            raise ValueError(f"plant {plant.target}[{plant.index}]: an index needs a tuple or list result, got {type(y).__name__}")
        items = list(y)
        items[plant.index] = plant.change(items[plant.index])
        if hasattr(y, "_fields"):  # a named tuple
            return type(y)(*items)
        return tuple(items) if isinstance(y, tuple) else items

    if fresh_memos:
        clear_memos()
    misses = {id(m): m.cache_info().misses for m in _memos() if hasattr(m, "cache_info")}
    setattr(owner, name, wrong)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, raw)
        else:
            delattr(owner, name)
        for memo in _memos():
            if fresh_memos or not hasattr(memo, "cache_info") or memo.cache_info().misses != misses.get(id(memo)):
                memo.cache_clear()


def failed_measurements(plant: Plant, result) -> list[str]:
    """Why ``result`` (a check's :class:`CheckResult` under ``plant``) does not show the plant caught: an empty
    list when every measurement ``plant.fails`` names failed (or, naming none, when some measurement failed)."""
    problems = []
    quantities = [m.quantity for m in result.measurements]
    for words in plant.fails:
        hits = [m for m in result.measurements if words in m.quantity]
        if len(hits) != 1:
            problems.append(f"{words!r} names {len(hits)} measurements of {quantities}")
        elif hits[0].passed:
            m = hits[0]
            problems.append(f"{m.quantity!r} passed under the plant ({m.value:.4g} {m.relation} {m.bound:.4g})")
        elif plant.reads is not None and not plant.reads / 2 <= abs(hits[0].value) <= 2 * plant.reads:
            m = hits[0]
            problems.append(f"{m.quantity!r} read {m.value:.4g} under the plant, not about {plant.reads:g} (within a factor 2)")
    if not plant.fails and result.passed:
        problems.append("every measurement passed under the plant: " + "; ".join(
            f"{m.quantity} = {m.value:.4g} {m.relation} {m.bound:.4g}" for m in result.measurements))
    return problems


def negative_control(claim, plant: Plant, device="cpu"):
    """Run ``claim``'s numeric check with ``plant`` in the library; return its :class:`CheckResult`.

    The check is called directly (never through the ledger cache), first with the package's memos as they are
    (cheap: a plant in a function the check calls after them needs nothing recomputed); when that run does not
    show the plant caught (:func:`failed_measurements`), again with every memo recomputed under the plant, and
    that result is returned. A check that raises under the plant propagates the exception."""
    if claim.check is None:
        raise ValueError(f"claim {claim.id} has no numeric check to control")
    if plant not in claim.plants:
        raise ValueError(f"the plant {plant.describe()} is not one of claim {claim.id}'s plants")
    device = torch.device(device)
    if device.type not in claim.devices:
        device = torch.device("cpu")
    with planted(plant, fresh_memos=False):
        result = claim.check(device)
    if not failed_measurements(plant, result):
        return result
    with planted(plant, fresh_memos=True):
        return claim.check(device)
