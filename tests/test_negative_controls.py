"""Negative controls: each claim's check fails when a small mistake is planted in the library it checks
(:mod:`diffmath.claims.controls`), and the planting machinery itself."""

import functools
from collections import namedtuple

import pytest
import torch

from diffmath.claims import all_claims
from diffmath.claims.controls import Plant, clear_memos, failed_measurements, negative_control, planted
from diffmath.claims.registry import CheckResult, Measurement

CLAIMS = all_claims()
#: controls whose check takes more than about 1.5 s on a CPU (as tests/test_claims.py's SLOW)
SLOW = {"C16.1", "C16.4", "C18.5", "C19.12", "C20.4", "C20.9", "C21.12", "C21.15", "C23.4", "C23.7"}
CASES = [
    pytest.param(c, p, id=f"{c.id}:{i}", marks=[pytest.mark.slow] if c.id in SLOW else [])
    for c in CLAIMS
    for i, p in enumerate(c.plants)
]


@pytest.mark.parametrize("claim, plant", CASES)
def test_planted_mistake_fails_the_check(claim, plant):
    before = plant._resolve()
    target = getattr(*before)
    result = negative_control(claim, plant)
    assert getattr(*plant._resolve()) is target, "the plant was not removed"
    problems = failed_measurements(plant, result)
    assert not problems, f"{claim.id} under {plant.describe()}: {problems}"


# ----------------------------------------------------------------------------- the machinery


class _Base:
    def f(self, x):
        return 2.0 * x


class _Child(_Base):
    pass


def _pair(x):
    return torch.tensor(x), torch.tensor(3.0 * x)


_Pair = namedtuple("_Pair", "a b")


def _named(x):
    return _Pair(x, 3.0 * x)


@functools.lru_cache(maxsize=None)
def _memo(x):
    return _pair(x)[1].item()


def test_plant_changes_the_result_and_is_removed():
    here = __name__
    assert _Base().f(1.5) == 3.0
    with planted(Plant(f"{here}:_Base.f", rel=0.5)):
        assert _Base().f(1.5) == 4.5
    assert _Base().f(1.5) == 3.0
    with planted(Plant(f"{here}:_Base.f", add=-1.0)):
        assert _Base().f(1.5) == 2.0
    with planted(Plant(f"{here}:_Base.f", negate=True)):
        assert _Base().f(1.5) == -3.0
    # an inherited method: the override on the subclass is removed afterwards, the base untouched
    with planted(Plant(f"{here}:_Child.f", rel=1.0)):
        assert _Child().f(1.0) == 4.0 and _Base().f(1.0) == 2.0
    assert "f" not in vars(_Child) and _Child().f(1.0) == 2.0


def test_plant_on_one_item_of_a_returned_tuple():
    here = __name__
    with planted(Plant(f"{here}:_pair", index=1, add=1.0)):
        a, b = globals()["_pair"](2.0)
    assert a.item() == 2.0 and b.item() == 7.0
    with planted(Plant(f"{here}:_named", index=0, rel=1.0)):
        r = globals()["_named"](2.0)
    assert isinstance(r, _Pair) and (r.a, r.b) == (4.0, 6.0)


def test_memos_are_cleared_around_a_plant(monkeypatch):
    # clear_memos only reaches diffmath's modules: put the memo where it would live
    import diffmath.claims.controls as controls

    monkeypatch.setattr(controls, "_test_memo", _memo, raising=False)
    monkeypatch.setattr(_memo, "__module__", controls.__name__)
    assert _memo(1.0) == 3.0
    with planted(Plant(f"{__name__}:_pair", index=1, add=1.0)):
        assert _memo(1.0) == 4.0  # not the memo of the correct value
    assert _memo(1.0) == 3.0  # not the memo of the planted value
    clear_memos()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(target="diffmath.mixture.GaussianMixture.score_at", rel=0.1), "module:qualname"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at"), "must change"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", negate=True, rel=0.1), "negate"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", rel=0.1, fails="z"), "tuple"),
    ],
)
def test_bad_plants_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Plant(**kwargs)


def test_unknown_targets_are_refused():
    with pytest.raises(ValueError, match="no attribute"):
        with planted(Plant("diffmath.mixture:GaussianMixture.no_such_method", rel=0.1)):
            pass
    with pytest.raises(ValueError, match="not callable"):
        with planted(Plant("diffmath.claims.registry:ESSAY", rel=0.1)):
            pass


def test_failed_measurements_reads_the_named_measurements():
    ok, bad = Measurement("error a", 1e-12, 1e-10), Measurement("z of b", 9.0, 5.0)
    result = CheckResult((ok, bad))
    assert failed_measurements(Plant("m:f", rel=0.1), result) == []
    assert failed_measurements(Plant("m:f", rel=0.1, fails=("z of b",)), result) == []
    assert "passed under the plant" in failed_measurements(Plant("m:f", rel=0.1, fails=("error a",)), result)[0]
    assert "names 0 measurements" in failed_measurements(Plant("m:f", rel=0.1, fails=("c",)), result)[0]
    assert "names 2 measurements" in failed_measurements(Plant("m:f", rel=0.1, fails=("o",)), result)[0]
    assert "every measurement passed" in failed_measurements(Plant("m:f", rel=0.1), CheckResult((ok,)))[0]


def test_a_control_takes_only_the_claims_own_plants():
    claim = next(c for c in CLAIMS if c.plants)
    with pytest.raises(ValueError, match="not one of"):
        negative_control(claim, Plant("diffmath.mixture:GaussianMixture.score_at", rel=0.123))
    no_check = next(c for c in CLAIMS if c.check is None)
    with pytest.raises(ValueError, match="no numeric check"):
        negative_control(no_check, Plant("diffmath.mixture:GaussianMixture.score_at", rel=0.123))
