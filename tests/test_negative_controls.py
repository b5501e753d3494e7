"""Negative controls: each claim's check fails when a small mistake is planted in the library it checks
(:mod:`diffmath.claims.controls`), and the planting machinery itself.

Every claim's first plant runs in every suite (except for the :data:`COSTLY` checks); its further plants (one
per part of the check, marker ``controls``, about three minutes of CPU in all) run with ``pytest --controls``: ``.ci/run`` runs them after
the README's test command, and the mutation harness counts them."""

import functools
from collections import namedtuple

import pytest
import torch

from diffmath.claims import all_claims
from diffmath.claims.controls import Plant, clear_memos, failed_measurements, negative_control, planted
from diffmath.claims.registry import CheckResult, Measurement
from test_claims import SLOW  # the claims whose check takes more than about 1.5 s on a CPU: one list, in test_claims.py

CLAIMS = all_claims()


#: claims whose check under a plant takes more than about 1.5 s (the running example of part 16 is recomputed
#: under each of its plants): even their first control runs only with --controls, to keep the test command within
#: its five minutes
COSTLY = SLOW | {"C0.7", "C0.9", "C16.5", "C16.6", "C16.8", "C17.6", "C19.9"}


def _marks(claim, i):
    marks = [pytest.mark.claim_check]
    if claim.id in SLOW:
        marks.append(pytest.mark.slow)
    if i > 0 or claim.id in COSTLY:  # a claim's first plant runs in every suite; the others with --controls
        marks.append(pytest.mark.controls)
    return marks


CASES = [pytest.param(c, p, id=f"{c.id}:{i}", marks=_marks(c, i)) for c in CLAIMS for i, p in enumerate(c.plants)]


@pytest.mark.parametrize("claim, plant", CASES)
def test_planted_mistake_fails_the_check(claim, plant):
    before = plant._resolve()
    target = getattr(*before)
    result = negative_control(claim, plant)
    assert getattr(*plant._resolve()) is target, "the plant was not removed"
    problems = failed_measurements(plant, result)
    assert not problems, f"{claim.id} under {plant.describe()}: {problems}"


#: checks that call no library function, so that no plant can reach them: they check the article's algebra
#: numerically (an identity evaluated two ways in torch or numpy), not the library
NO_LIBRARY = {
    "C17.3": "both objectives and their errors are computed in the check from sampled pairs; the library only samples",
    "C20.1": "both sides of (7) and their gradients are computed in the check from one network output, by autograd",
    "C21.5": "the trigonometric identity is evaluated in torch, in the check",
    "C21.13": "Gauss-Legendre quadrature (numpy) and a bisection written in the check",
    "M.1": "token counts from tensor shapes and integer limits: torch's numel and iinfo",
}


def test_every_check_has_a_negative_control():
    """Every numeric check declares at least one plant, so that a new chapter's checks are born able to fail.
    Exempt: checks that read a cached experiment result (a plant in the library cannot reach a stored
    result; the experiment's modules have their own tests) and checks of the article's algebra that call
    no library function (:data:`NO_LIBRARY`, each with its reason)."""
    missing = [c.id for c in CLAIMS if c.check is not None and not c.experiments and not c.plants and c.id not in NO_LIBRARY]
    assert not missing, f"claims whose check has no plant: {missing}"
    for c in CLAIMS:
        if c.experiments:
            assert not c.plants, f"{c.id} reads an experiment: a plant cannot reach its cached result"
    for cid in NO_LIBRARY:
        c = next(c for c in CLAIMS if c.id == cid)
        assert c.check is not None and not c.plants, f"{cid} is listed as calling no library function"


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
    with planted(Plant(f"{here}:_Base.f", rel=0.5, add=-1.0)):
        assert _Base().f(1.5) == 3.5  # scaled, then shifted
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
    with planted(Plant(f"{here}:_Base.f", index=0, rel=1.0)):
        with pytest.raises(ValueError, match="tuple or list"):
            _Base().f(1.0)


def test_memos_are_cleared_around_a_plant(monkeypatch):
    # clear_memos only reaches diffmath's modules: put the memo where it would live
    import diffmath.claims.controls as controls

    monkeypatch.setattr(controls, "_test_memo", _memo, raising=False)
    monkeypatch.setattr(_memo, "__module__", controls.__name__)
    assert _memo(1.0) == 3.0
    with planted(Plant(f"{__name__}:_pair", index=1, add=1.0)):
        assert _memo(1.0) == 4.0  # not the memo of the correct value
    assert _memo(1.0) == 3.0  # not the memo of the planted value
    # keeping the memos: what was memoised before hides the plant and stays; what is computed inside is forgotten
    with planted(Plant(f"{__name__}:_pair", index=1, add=1.0), fresh_memos=False):
        assert _memo(1.0) == 3.0 and _memo(2.0) == 7.0
    assert _memo.cache_info().currsize == 0
    assert _memo(1.0) == 3.0
    with planted(Plant(f"{__name__}:_pair", index=1, add=1.0), fresh_memos=False):
        assert _memo(1.0) == 3.0
    assert _memo.cache_info().currsize == 1  # nothing computed inside: kept
    clear_memos()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(target="diffmath.mixture.GaussianMixture.score_at", rel=0.1), "module:qualname"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at"), "must change"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", negate=True, rel=0.1), "negate"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", rel=0.1, fails="z"), "tuple"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", rel=0.1, reads=0.1), "reads"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", rel=0.1, fails=("z",), reads=0.0), "reads"),
        (dict(target="diffmath.mixture:GaussianMixture.score_at", rel=0.1, fails=("z",), reads=float("inf")), "reads"),
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
    # reads: the failed measurement must also read the planted size, to within a factor of 2
    assert failed_measurements(Plant("m:f", rel=9.0, fails=("z of b",), reads=9.0), result) == []
    assert failed_measurements(Plant("m:f", rel=9.0, fails=("z of b",), reads=4.6), result) == []
    assert "not about 4" in failed_measurements(Plant("m:f", rel=9.0, fails=("z of b",), reads=4.4), result)[0]
    assert "not about 20" in failed_measurements(Plant("m:f", rel=9.0, fails=("z of b",), reads=20.0), result)[0]


def test_a_control_takes_only_the_claims_own_plants():
    claim = next(c for c in CLAIMS if c.plants)
    with pytest.raises(ValueError, match="not one of"):
        negative_control(claim, Plant("diffmath.mixture:GaussianMixture.score_at", rel=0.123))
    no_check = next(c for c in CLAIMS if c.check is None)
    with pytest.raises(ValueError, match="no numeric check"):
        negative_control(no_check, Plant("diffmath.mixture:GaussianMixture.score_at", rel=0.123))


def test_describe_names_the_target_item_and_change():
    p = Plant("diffmath.snr:aligned_alpha", index=0, rel=1e-7, why="alpha off")
    assert p.describe() == "diffmath.snr:aligned_alpha[0] x (1 +1e-07) (alpha off)"
    assert Plant("m:f", add=-0.5).describe() == "m:f -0.5"
    assert Plant("m:f", negate=True).change_text() == "sign flipped"
    assert Plant("m:f", rel=0.1, add=2.0).change_text() == "x (1 +0.1) +2"


class _FakeClaim:
    """A claim whose check reads a memoised value of the planted function: the plant is hidden while the memo holds
    the correct value, and ``calls`` counts the check's runs."""

    id = "C99.1"
    devices = ("cpu",)

    def __init__(self, plant):
        self.plants = (plant,)
        self.calls = 0

    def check(self, device):
        self.calls += 1
        return CheckResult((Measurement("error of the memoised value", abs(_memo(1.0) - 3.0), 1e-12),), device=str(device))


def test_a_control_retries_with_fresh_memos_only_when_the_plant_was_hidden(monkeypatch):
    import diffmath.claims.controls as controls

    monkeypatch.setattr(controls, "_test_memo", _memo, raising=False)
    monkeypatch.setattr(_memo, "__module__", controls.__name__)
    plant = Plant(f"{__name__}:_pair", index=1, add=1.0)
    clear_memos()
    # cold memo: computed under the plant on the first run, which sees the mistake; no second run
    claim = _FakeClaim(plant)
    assert not negative_control(claim, plant).passed and claim.calls == 1
    # warm memo (the correct value): the first run passes, so the control runs again with fresh memos
    _memo(1.0)
    claim = _FakeClaim(plant)
    result = negative_control(claim, plant)
    assert not result.passed and claim.calls == 2
    assert _memo.cache_info().currsize == 0  # the planted value was forgotten
    clear_memos()


def test_a_control_runs_a_cpu_only_check_on_the_cpu():
    plant = Plant(f"{__name__}:_pair", index=1, add=1.0)
    seen = []

    class _CpuOnly(_FakeClaim):
        def check(self, device):
            seen.append(torch.device(device).type)
            return super().check(device)

    negative_control(_CpuOnly(plant), plant, device="meta")
    assert seen and set(seen) == {"cpu"}
    clear_memos()


def test_costly_set_names_claims_with_plants():
    assert COSTLY - SLOW <= {c.id for c in CLAIMS if c.plants}
