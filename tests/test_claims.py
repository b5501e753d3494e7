"""The claim registry: every claim verifies on every device, and its metadata is sound."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffmath.claims import CheckResult, Kind, Measurement, all_claims, select, verify_claim

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = all_claims()
#: claims whose check takes more than about 1.5 s on a CPU (C21.12 reads the full sampler table, about
#: a minute to compute once): the quick tier (-m "not slow") leaves them to the full suite.
SLOW = {"C16.1", "C16.4", "C18.5", "C19.12", "C20.4", "C20.9", "C21.12", "C21.15", "C23.4", "C23.7"}


# The order of the checks below: claims that read an experiment last (the browser test's book build
# computes the experiments first, so by then they are cached), the others from the last id down —
# the book build verifies from the first id up, so the two workers meet in the middle instead of
# waiting for each other claim by claim (each outcome is computed once, shared through the cache).
_ORDER = [c for c in reversed(CLAIMS) if not c.experiments] + [c for c in CLAIMS if c.experiments]


@pytest.mark.parametrize(
    "claim",
    [pytest.param(c, marks=[pytest.mark.slow, pytest.mark.claim_check] if c.id in SLOW else [pytest.mark.claim_check]) for c in _ORDER],
    ids=lambda c: c.id,
)
def test_claim_verifies(claim, device):
    if device.type not in claim.devices:
        pytest.skip(f"{claim.id} computes on the CPU only (its cpu run covers it)")
    outcome = verify_claim(claim, device)
    assert outcome.error is None, outcome.error
    assert outcome.derivation_ok is not False, outcome.derivation_failures
    if outcome.check is not None:
        failing = [m for m in outcome.check.measurements if not m.passed]
        assert not failing, failing
    assert outcome.passed


def test_device_declarations_match_the_checks():
    """A claim declared CPU-only reports device "cpu" from its check; every other check reports the
    device it was given (the runtime rule of run_claim, seen statically so that a CPU-only machine
    catches a wrong declaration too)."""
    import inspect

    for c in CLAIMS:
        if c.check is None:
            continue
        src = inspect.getsource(c.check)
        if c.devices == ("cpu",):
            assert 'device="cpu"' in src and "device=str(device)" not in src, c.id
        else:
            assert "device=str(device)" in src, c.id


def test_declared_experiments_exist_and_are_read():
    """A claim's ``experiments`` name registered experiments, and its check's source reads each of them."""
    import inspect

    from diffmath import experiments

    names = {e.name for e in experiments.all_experiments()}
    for c in CLAIMS:
        src = inspect.getsource(c.check) if c.check else ""
        assert set(c.experiments) <= names, c.id
        for name in c.experiments:
            assert f'"{name}"' in src, (c.id, name)
        assert ("experiments.result(" in src) == bool(c.experiments), c.id


def test_slow_set_names_real_claims():
    assert SLOW <= {c.id for c in CLAIMS}


def test_ids_are_unique_and_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"C(0|[1-9]\d*)\.[1-9]\d*|M\.[1-9]\d*", i) for i in ids)


@pytest.mark.parametrize("claim_id", ["C0.1", "C22.5", "C23.10", "C123.45", "M.1", "M.3", "M.12"])
def test_id_rule_accepts(claim_id):
    """C<part>.<n> for the series (part 0: the toy lab), M.<n> for the multimodal essay."""
    from diffmath.claims import Claim, Source

    Claim(id=claim_id, title="t", statement="s", source=Source(), kind=Kind.DOCUMENTED, chapter="x")


@pytest.mark.parametrize("claim_id", ["M3", "M.0", "M.03", "M.", "M.1.2", "m.1", "C25", "C22.0", "C22.05", "C022.5",
                                      "C.5", "M22.5", "CM.1", "X.1", " M.1", "M.1 ", "M.1\n", "C22.5\n"])
def test_id_rule_rejects(claim_id):
    """Running numbers start at 1 and neither number has a leading zero (so C22.5 and C22.05 cannot both exist);
    the essay has no part number."""
    from diffmath.claims import Claim, Source

    with pytest.raises(ValueError, match="claim id must look like"):
        Claim(id=claim_id, title="t", statement="s", source=Source(), kind=Kind.DOCUMENTED, chapter="x")


def test_ids_sort_by_part_then_number_with_the_essay_last():
    from diffmath.claims import Claim, Source

    ids = ["M.10", "C23.10", "M.2", "C0.2", "C24.1", "C23.9", "C0.10", "M.1"]
    claims = [Claim(id=i, title="t", statement="s", source=Source(), kind=Kind.DOCUMENTED, chapter="x") for i in ids]
    assert [c.id for c in sorted(claims, key=lambda c: c.sort_key)] == ["C0.2", "C0.10", "C23.9", "C23.10", "C24.1", "M.1", "M.2", "M.10"]
    assert [c.part for c in claims[:4]] == [None, 23, None, 0]
    # the registry's own order: every essay claim after every claim of the series
    series = [c for c in CLAIMS if c.id.startswith("C")]
    essay = [c for c in CLAIMS if c.id.startswith("M.")]
    assert essay and CLAIMS == series + essay


def test_every_claim_has_a_statement_source_and_tests():
    for c in CLAIMS:
        assert c.statement.strip() and c.title.strip()
        assert c.source.describe()
        if c.kind is not Kind.DOCUMENTED:  # a documented remark has nothing to test
            assert c.tests, f"{c.id} lists no tests"
        if c.kind in (Kind.IDENTITY, Kind.INEQUALITY):
            assert c.derivation is not None or c.check is not None


@pytest.fixture(scope="session")
def collected(request) -> dict:
    """{"file::test": the test function} for every test this session collected (parameters stripped).

    Under pytest-xdist every worker collects the whole suite, so in a full run this covers every test file
    without a second collection."""
    out: dict = {}
    for item in request.session.items:
        out.setdefault(item.nodeid.split("[")[0], getattr(item, "obj", None))
    return out


def _collect_elsewhere(files) -> set:
    """The test ids ``pytest --collect-only`` finds in ``files`` (for tests this session did not collect)."""
    if not files:
        return set()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    return {line.split("[")[0] for line in out.splitlines() if "::" in line}


@pytest.mark.slow
def test_listed_tests_exist(collected):
    """Each claim's test node ids are collected by pytest: the ledger cannot point at nothing."""
    wanted = sorted({t for c in CLAIMS for t in c.tests})
    missing = [t for t in wanted if t not in collected]  # not in this session: deselected, or absent
    found = _collect_elsewhere(sorted({t.split("::")[0] for t in missing}))
    missing = [t for t in missing if t not in found]
    assert not missing, missing


def test_select():
    assert [c.id for c in select(["C0.3"])] == ["C0.3"]
    assert {c.id for c in select(["C0"])} == {c.id for c in CLAIMS if c.id.startswith("C0.")}
    assert select(["toy-lab"]) == [c for c in CLAIMS if c.chapter == "toy-lab"]
    with pytest.raises(ValueError, match="matches no claim"):
        select(["C99.1"])
    essay = select(["M"])
    assert essay and all(c.id.startswith("M.") and c.part is None for c in essay)
    assert [c.id for c in select(["M.4"])] == ["M.4"]
    assert select(["M.4", "C0.3"]) == [select(["C0.3"])[0], select(["M.4"])[0]]  # sorted: the series first
    with pytest.raises(ValueError, match="M.<n>"):
        select(["M.99"])


def test_measurement_semantics():
    assert Measurement("err", 1e-12, 1e-10).passed
    assert not Measurement("err", 1e-9, 1e-10).passed
    assert not Measurement("err", float("nan"), 1e-10).passed
    assert Measurement("gap", 0.3, 0.1, relation=">=").passed
    with pytest.raises(ValueError):
        Measurement("x", 1, 1, relation="<")


def test_every_exact_claim_has_a_property_test(collected):
    """Each identity or inequality lists at least one hypothesis test among its tests."""
    import importlib

    def function(node):
        if node in collected:
            return collected[node]
        path, name = node.split("::")  # a file this session did not collect
        return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)

    for c in CLAIMS:
        if c.kind not in (Kind.IDENTITY, Kind.INEQUALITY):
            continue
        found = any(hasattr(function(node), "hypothesis") for node in c.tests)
        assert found, f"{c.id} has no hypothesis property test among {c.tests}"


def test_ledger_cache_round_trip(tmp_path, monkeypatch):
    """An outcome read back from the ledger cache equals the computed one (statuses recomputed); a failing
    outcome is never cached."""
    from diffmath import cache
    from diffmath.claims import Claim, Outcome, Source, get

    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "c"))
    claim = get("C22.5")
    fresh = verify_claim(claim, "cpu", use_cache=False)
    first = verify_claim(claim, "cpu")
    second = verify_claim(claim, "cpu")
    assert not first.cached and second.cached
    strip = lambda d: {k: v for k, v in d.items() if k not in ("seconds", "cached")}  # noqa: E731
    assert strip(second.as_dict()) == strip(fresh.as_dict())
    assert Outcome.from_dict(claim, fresh.as_dict()).status == fresh.status

    calls = []

    def failing(device):
        calls.append(1)
        return CheckResult((Measurement("x", 2.0, 1.0),))

    bad = Claim(id="C99.9", title="t", statement="s", source=Source(part=22), kind=Kind.IDENTITY, chapter="x", check=failing)
    assert not verify_claim(bad, "cpu").passed and not verify_claim(bad, "cpu").passed
    assert len(calls) == 2
    with pytest.raises(ValueError, match="given for claim"):
        Outcome.from_dict(bad, fresh.as_dict())
    assert cache.read("ledger", {"claim": "C99.9", "device": "cpu", "code": cache.code_version()}) is None


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.id in SLOW and c.derive is not None], ids=lambda c: c.id)
def test_slow_claims_derivations_verify(claim):
    """The derivations of the claims whose numeric checks are slow, in the quick tier (the other claims' derivations
    are verified there by test_claim_verifies): sympy alone takes seconds, the checks take minutes."""
    assert claim.derivation.failures() == []


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.derive is not None], ids=lambda c: c.id)
def test_every_derivation_step_derives(claim):
    """Issue 11: no step of any derivation has two sides that are one expression as written (such a step passes
    any check), and no inequality rests on a slack symbol declared nonnegative: a symbol assumed nonnegative
    that appears in a certificate but in neither side. (That every step verifies is test_claim_verifies.)"""
    from diffmath.symbolic import _same_expression

    d = claim.derivation
    for i, step in enumerate(d.steps, 1):
        assert not _same_expression(step.lhs, step.rhs), f"{claim.id} step {i} restates itself"
        if step.certificate is not None:
            sides = set()
            for side in (step.lhs, step.rhs):
                sides |= side.free_symbols
            declared = {s for s in step.certificate.free_symbols - sides if s.is_nonnegative}
            assert not declared, f"{claim.id} step {i}: slack {declared} is declared, not derived"


def test_source_description():
    from diffmath.claims.registry import Source

    assert Source(part=22, equation="5", paper="hoogeboom2023simple", note="section 2").describe() == "part 22, eq. 5, hoogeboom2023simple, section 2"
    assert Source(part=0).describe() == "part 0"
    assert Source().describe() == "diffmath"


@pytest.mark.parametrize("devices", [(), ("cuda",), ("cpu", "tpu")])
def test_claim_devices_must_include_the_cpu(devices):
    from diffmath.claims.registry import Claim, Source

    with pytest.raises(ValueError, match="devices must include 'cpu'"):
        Claim(id="C99.1", title="t", statement="s", source=Source(part=22), kind=Kind.IDENTITY, chapter="x",
              check=lambda device: None, devices=devices)


def test_chapters_once_each_in_order_of_first_claim():
    from diffmath.claims.registry import chapters

    names = chapters()
    assert len(names) == len(set(names)) and set(names) == {c.chapter for c in CLAIMS}
    firsts = [next(i for i, c in enumerate(CLAIMS) if c.chapter == name) for name in names]
    assert firsts == sorted(firsts)


def test_run_claim_falls_back_to_the_cpu_and_times_the_run():
    """A device the claim does not list (here torch's meta device) runs the check on the CPU; the time is a duration."""
    import time

    from diffmath.claims.registry import Claim, Source, run_claim

    seen = []

    def check(device):
        seen.append(torch.device(device).type)
        return CheckResult((Measurement("x", 0.0, 1.0),), device=str(device))

    claim = Claim(id="C99.2", title="t", statement="s", source=Source(part=22), kind=Kind.IDENTITY, chapter="x", check=check)
    t0 = time.perf_counter()
    out = run_claim(claim, "meta")
    assert seen == ["cpu"] and out.passed and out.error is None
    assert 0 <= out.seconds <= time.perf_counter() - t0


def test_outcome_record_rounds_seconds_and_defaults_to_computed():
    """The ledger stores seconds to the millisecond; a record without ``cached`` (an older ledger) reads as computed."""
    from diffmath.claims.registry import Outcome

    claim = CLAIMS[0]
    outcome = Outcome(claim=claim, derivation_ok=True, seconds=1.23456)
    record = outcome.as_dict()
    assert record["seconds"] == 1.235 and record["cached"] is False
    del record["cached"]
    assert Outcome.from_dict(claim, record).cached is False
    record["cached"] = True
    assert Outcome.from_dict(claim, record).cached is True


def test_a_check_without_measurements_does_not_pass_and_plants_need_a_check():
    from diffmath.claims.controls import Plant
    from diffmath.claims.registry import Claim, Source

    assert not CheckResult(()).passed
    with pytest.raises(ValueError, match="plants but no numeric check"):
        Claim("C99.1", "t", "s", Source(part=99), Kind.IDENTITY, "x", derive=lambda: None, plants=(Plant("m:f", rel=0.1),))
    with pytest.raises(ValueError, match="plants must be"):
        Claim("C99.1", "t", "s", Source(part=99), Kind.IDENTITY, "x", check=lambda d: None, plants=("m:f",))
