"""The command line: list, verify (table, JSON ledger, exit status)."""

import json

import pytest

from diffmath import cli
from diffmath.claims import CheckResult, Claim, Kind, Measurement, Source, registry


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "C0.1" in out and "claims" in out


def test_verify_writes_ledger(tmp_path, capsys):
    path = tmp_path / "ledger.json"
    assert cli.main(["verify", "C0.8", "C0.2", "--json", str(path), "--device", "cpu"]) == 0
    ledger = json.loads(path.read_text())
    assert [c["id"] for c in ledger["claims"]] == ["C0.2", "C0.8"]
    assert all(c["status"] == "verified" for c in ledger["claims"])
    m = ledger["claims"][0]["check"]["measurements"][0]
    assert m["passed"] and m["value"] <= m["bound"]
    out = capsys.readouterr().out
    assert "[1/2] C0.2" in out and "2 verified" in out


def test_unknown_selector_exit_2(capsys):
    assert cli.main(["verify", "nonsense"]) == 2


@pytest.fixture
def failing_claim():
    claim = Claim(
        id="C999.1",
        title="a deliberately false check",
        statement="$1 = 2$",
        source=Source(note="test"),
        kind=Kind.IDENTITY,
        chapter="test-only",
        check=lambda device: CheckResult((Measurement("one minus two", 1.0, 1e-10),), device=str(device)),
        tests=("tests/test_cli.py::test_failing_check_exit_1",),
    )
    registry.register(claim)
    yield claim
    registry._REGISTRY.pop(claim.id)


def test_failing_check_exit_1(failing_claim, capsys):
    assert cli.main(["verify", "C999.1", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "one minus two" in out


@pytest.mark.slow
def test_python_m_entry_point():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "diffmath", "bench", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--nfe" in r.stdout and "diffusers:<name>" in r.stdout


@pytest.mark.slow
def test_verify_in_parallel_matches_serial(tmp_path, monkeypatch):
    """-j 2: the same outcomes in the same order as a serial run (fresh cache, then from the cache)."""
    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "cache"))
    serial, parallel = tmp_path / "s.json", tmp_path / "p.json"
    sel = ["C20.6", "C0.2", "C19.7", "C21.9"]  # quick checks that read no experiment (--no-cache would recompute it)
    assert cli.main(["verify", *sel, "--json", str(serial), "--device", "cpu", "--no-cache"]) == 0
    assert cli.main(["verify", *sel, "--json", str(parallel), "--device", "cpu", "-j", "2"]) == 0
    strip = lambda d: [{k: v for k, v in c.items() if k not in ("seconds", "cached")} for c in d["claims"]]  # noqa: E731
    a, b = json.loads(serial.read_text()), json.loads(parallel.read_text())
    assert [c["id"] for c in b["claims"]] == ["C0.2", "C19.7", "C20.6", "C21.9"]
    assert strip(a) == strip(b) and not any(c["cached"] for c in b["claims"])
    assert cli.main(["verify", *sel, "--json", str(parallel), "--device", "cpu", "-j", "2"]) == 0
    assert all(c["cached"] for c in json.loads(parallel.read_text())["claims"])


def test_bench_prints_tables_and_writes_json(tmp_path, capsys):
    """`diffmath bench` runs each named sampler on the named law and writes what the library's bench returns."""
    from diffmath import bench as B

    path = tmp_path / "bench.json"
    args = ["bench", "diffmath:euler", "heun", "--law", "mixture-2d", "--nfe", "4", "8", "--seeds", "1", "--points", "8",
            "--json", str(path), "--quiet"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "**diffmath:euler** on mixture-2d" in out and "**diffmath:heun**" in out
    got = json.loads(path.read_text())
    want = B.bench(B.named_sampler("diffmath:euler"), B.named_law("mixture-2d"), [4, 8], seeds=1, points=8).to_dict()
    assert got[0]["rows"][1]["error"] == want["rows"][1]["error"] and [r["nfe"] for r in got[1]["rows"]] == [3, 7]


def test_bench_unknown_names_exit_2(capsys):
    assert cli.main(["bench", "diffmath:nonsense"]) == 2
    assert cli.main(["bench", "euler", "--law", "nonsense"]) == 2
    assert "no law" in capsys.readouterr().err
