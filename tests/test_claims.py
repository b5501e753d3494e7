"""The claim registry: every claim verifies on every device, and its metadata is sound."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffmath.claims import Kind, Measurement, all_claims, select, verify_claim

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = all_claims()


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_verifies(claim, device):
    outcome = verify_claim(claim, device)
    assert outcome.error is None, outcome.error
    assert outcome.derivation_ok is not False, outcome.derivation_failures
    if outcome.check is not None:
        failing = [m for m in outcome.check.measurements if not m.passed]
        assert not failing, failing
    assert outcome.passed


def test_ids_are_unique_and_well_formed():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"C\d+\.\d+", i) for i in ids)


def test_every_claim_has_a_statement_source_and_tests():
    for c in CLAIMS:
        assert c.statement.strip() and c.title.strip()
        assert c.source.describe()
        if c.kind is not Kind.DOCUMENTED:  # a documented remark has nothing to test
            assert c.tests, f"{c.id} lists no tests"
        if c.kind in (Kind.IDENTITY, Kind.INEQUALITY):
            assert c.derivation is not None or c.check is not None


def test_listed_tests_exist():
    """Each claim's test node ids are collected by pytest: the ledger cannot point at nothing."""
    wanted = sorted({t for c in CLAIMS for t in c.tests})
    files = sorted({t.split("::")[0] for t in wanted})
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    collected = {line.split("[")[0] for line in out.splitlines() if "::" in line}
    missing = [t for t in wanted if t not in collected]
    assert not missing, missing


def test_select():
    assert [c.id for c in select(["C0.3"])] == ["C0.3"]
    assert {c.id for c in select(["C0"])} == {c.id for c in CLAIMS if c.id.startswith("C0.")}
    assert select(["toy-lab"]) == [c for c in CLAIMS if c.chapter == "toy-lab"]
    with pytest.raises(ValueError, match="matches no claim"):
        select(["C99.1"])


def test_measurement_semantics():
    assert Measurement("err", 1e-12, 1e-10).passed
    assert not Measurement("err", 1e-9, 1e-10).passed
    assert not Measurement("err", float("nan"), 1e-10).passed
    assert Measurement("gap", 0.3, 0.1, relation=">=").passed
    with pytest.raises(ValueError):
        Measurement("x", 1, 1, relation="<")


def test_every_exact_claim_has_a_property_test():
    """Each identity or inequality lists at least one hypothesis test among its tests."""
    import importlib

    for c in CLAIMS:
        if c.kind not in (Kind.IDENTITY, Kind.INEQUALITY):
            continue
        found = False
        for node in c.tests:
            path, name = node.split("::")
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            found |= hasattr(getattr(module, name), "hypothesis")
        assert found, f"{c.id} has no hypothesis property test among {c.tests}"
