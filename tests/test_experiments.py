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

    exp = E.Experiment("toy", 1, "squares", run, defaults={"n": 3, "label": "a"}, markdown=lambda r: str(r["squares"]))
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
    bumped = E.Experiment("toy", 2, "squares", exp.run, defaults=exp.defaults)
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
    assert {"sampler-table", "resolution-shift", "upsample-guidance"} <= names
    for e in E.all_experiments():
        json.dumps(e.defaults)  # configurations are JSON (they key the cache)


def test_command_line(tmp_path, monkeypatch, capsys):
    """``diffmath experiments list | run | clear`` (in process: ``tests/test_cli.py`` runs ``python -m diffmath``)."""
    from diffmath import cli

    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "cache"))

    def run(*args):
        code = cli.main(["experiments", *args])
        return code, capsys.readouterr().out

    code, out = run("list")
    assert code == 0 and "sampler-table" in out and "not computed" in out
    code, out = run("run", "resolution-shift", "--json", str(tmp_path / "r.json"))
    assert code == 0 and "computed" in out and "read from the cache" not in out
    assert json.loads((tmp_path / "r.json").read_text())["rows"]
    assert "read from the cache" in run("run", "resolution-shift")[1]
    code, out = run("list")
    assert code == 0 and "resolution-shift" in out
    assert "removed" in run("clear")[1]
    assert "not computed" in run("list")[1]
