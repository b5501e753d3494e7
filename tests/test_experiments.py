"""diffmath.experiments: the registry, configurations, caching through result(), the command line."""

import json

import pytest

from diffmath import experiments as E


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "cache"))
    calls = []

    def run(cfg, device):
        calls.append((dict(cfg), device))
        return {"squares": [i * i for i in range(cfg["n"])], "device": device}

    exp = E.Experiment("toy", 1, "squares", run, defaults={"n": 3, "label": "a"}, markdown=lambda r: str(r["squares"]), modules=("diffmath.schedules",))
    monkeypatch.setitem(E._REGISTRY, "toy", exp)
    return exp, calls


def test_result_is_computed_once_per_configuration(toy):
    exp, calls = toy
    assert E.result("toy") == {"squares": [0, 1, 4], "device": "cpu"}
    assert E.result("toy") == {"squares": [0, 1, 4], "device": "cpu"} and len(calls) == 1
    assert E.result("toy", {"n": 4})["squares"] == [0, 1, 4, 9] and len(calls) == 2
    assert E.is_cached("toy") and E.is_cached("toy", {"n": 4}) and not E.is_cached("toy", {"n": 5})
    E.result("toy", refresh=True)
    assert len(calls) == 3


def test_version_and_config_change_the_key(toy):
    exp, _ = toy
    k1 = exp.key({"n": 3, "label": "a"}, "cpu")
    assert exp.key({"n": 3, "label": "b"}, "cpu") != k1
    bumped = E.Experiment("toy", 2, "squares", exp.run, defaults=exp.defaults, modules=exp.modules)
    assert bumped.key({"n": 3, "label": "a"}, "cpu") != k1
    assert k1["code"] and k1["device"] == "cpu"


def test_unknown_names_and_keys(toy):
    with pytest.raises(ValueError, match="no experiment"):
        E.result("nope")
    with pytest.raises(ValueError, match="unknown configuration keys"):
        E.result("toy", {"m": 1})


def test_clear_by_name(toy):
    E.result("toy")
    assert E.clear(["toy"]) == 1 and not E.is_cached("toy")


def test_the_book_experiments_are_registered():
    names = {e.name for e in E.all_experiments()}
    assert {"sampler-table", "resolution-shift", "upsample-guidance", "skip-unet", "skip-tuning"} <= names
    for e in E.all_experiments():
        json.dumps(e.defaults)  # configurations are JSON (they key the cache)


def test_command_line(tmp_path, monkeypatch, capsys):
    """``diffmath experiments list | run | store | clear`` (in process: ``tests/test_cli.py`` runs ``python -m
    diffmath``), against an empty cache and an empty store."""
    from diffmath import cli

    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(E, "STORE", tmp_path / "stored")

    def run(*args):
        code = cli.main(["experiments", *args])
        return code, capsys.readouterr().out

    code, out = run("list")
    assert code == 0 and "sampler-table" in out and "not computed" in out and "stored: missing" in out
    code, out = run("run", "resolution-shift", "--json", str(tmp_path / "r.json"))
    assert code == 0 and "computed" in out and "read from the cache" not in out
    assert json.loads((tmp_path / "r.json").read_text())["rows"]
    assert "read from the cache" in run("run", "resolution-shift")[1]
    code, out = run("store", "resolution-shift")
    assert code == 0 and (tmp_path / "stored" / "resolution-shift.json").is_file()
    assert "removed" in run("clear")[1]
    listed = {line.split()[0]: line for line in run("list")[1].splitlines()}
    assert "[cached; stored: current]" in listed["resolution-shift"] and "not computed" in listed["sampler-table"]


def test_store_writes_what_result_then_reads(toy, tmp_path, monkeypatch, capsys):
    """store() writes the default configuration's result; a fresh cache then reads it instead of computing;
    a changed configuration or version is not served from it."""
    from diffmath import cli

    exp, calls = toy
    monkeypatch.setattr(E, "STORE", tmp_path / "stored")
    assert E.stored_state("toy") == "missing"
    assert cli.main(["experiments", "store", "toy"]) == 0 and "stored" in capsys.readouterr().out
    assert E.stored_state("toy") == "current" and len(calls) == 1
    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "fresh-cache"))
    assert E.is_cached("toy") and E.result("toy") == {"squares": [0, 1, 4], "device": "cpu"} and len(calls) == 1
    assert E.result("toy", {"n": 2})["squares"] == [0, 1] and len(calls) == 2
    monkeypatch.setitem(E._REGISTRY, "toy", E.Experiment("toy", 2, "squares", exp.run, defaults=exp.defaults, modules=exp.modules))
    assert E.stored_state("toy") == "stale" and not E.is_cached("toy")


def test_register_needs_the_modules_that_compute():
    with pytest.raises(ValueError, match="modules"):
        E.register(E.Experiment("no-modules", 1, "x", lambda c, d: {}))
    with pytest.raises(ValueError, match="modules"):
        E.register(E.Experiment("bad-modules", 1, "x", lambda c, d: {}, modules=("numpy",)))
    assert "no-modules" not in E._REGISTRY and "bad-modules" not in E._REGISTRY


@pytest.mark.repository
def test_stored_results_are_current():
    """Every experiment's result is stored with the code that computes it (``diffmath experiments store``,
    then commit ``diffmath/_stored/``): otherwise a fresh clone recomputes it, and the README's test
    command pays for it (the sampler table alone is minutes of CPU)."""
    states = {e.name: E.stored_state(e.name) for e in E.all_experiments()}
    assert all(s == "current" for s in states.values()), f"run `diffmath experiments store` and commit diffmath/_stored/: {states}"
    assert sorted(p.stem for p in E.STORE.glob("*.json")) == sorted(states), "stored files of experiments that no longer exist"
