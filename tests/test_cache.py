"""diffmath.cache: keys, atomic writes, corruption detection, and one computation across processes."""

import json
import multiprocessing
import os
import time

import pytest

from diffmath import cache


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


def test_hit_after_miss_and_keys_separate(root):
    calls = []
    v1, hit1 = cache.cached("ns", {"a": 1}, lambda: calls.append(1) or {"x": [1.5, 2]})
    v2, hit2 = cache.cached("ns", {"a": 1}, lambda: calls.append(1) or {"x": "other"})
    v3, hit3 = cache.cached("ns", {"a": 2}, lambda: calls.append(1) or {"x": 3})
    assert (hit1, hit2, hit3) == (False, True, False)
    assert v1 == v2 == {"x": [1.5, 2]} and v3 == {"x": 3} and len(calls) == 2
    assert cache.fingerprint({"b": 1, "a": 2}) == cache.fingerprint({"a": 2, "b": 1})
    _, hit = cache.cached("ns", {"a": 1}, lambda: {"x": 0}, refresh=True)
    assert hit is False and cache.read("ns", {"a": 1}) == {"x": 0}


def test_corrupt_entries_are_recomputed_not_used(root, capsys):
    cache.cached("ns", {"k": 1}, lambda: {"v": 1})
    path = cache.entry_path("ns", {"k": 1})
    entry = json.loads(path.read_text())
    entry["value"] = {"v": 999}  # tampered: the checksum no longer matches
    path.write_text(json.dumps(entry))
    value, hit = cache.cached("ns", {"k": 1}, lambda: {"v": 2})
    assert (value, hit) == ({"v": 2}, False)
    assert "corrupt" in capsys.readouterr().err
    path.write_text('{"key": "truncated')  # a partial file
    assert cache.read("ns", {"k": 1}) is None
    assert cache.cached("ns", {"k": 1}, lambda: {"v": 3}) == ({"v": 3}, False)


def test_off_disables_the_cache(monkeypatch):
    monkeypatch.setenv("DIFFMATH_CACHE", "off")
    calls = []
    cache.cached("ns", {"a": 1}, lambda: calls.append(1) or 1)
    cache.cached("ns", {"a": 1}, lambda: calls.append(1) or 1)
    assert len(calls) == 2 and cache.cache_root() is None


def test_code_version_changes_with_any_source_file(tmp_path, monkeypatch):
    """Editing, adding or renaming a source file gives a new code version (so no stale entry is served)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(cache, "_PACKAGE", pkg)

    def version():
        monkeypatch.setattr(cache, "_CODE_VERSION", None)
        return cache.code_version()

    v0 = version()
    assert v0 == version() and len(v0) == 64
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    v1 = version()
    (pkg / "c.py").write_text("")
    v2 = version()
    (pkg / "c.py").rename(pkg / "d.py")
    v3 = version()
    assert len({v0, v1, v2, v3}) == 4


def _slow_compute(args):
    root, log = args
    os.environ["DIFFMATH_CACHE"] = root

    def compute():
        with open(log, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)
        return {"answer": 42}

    return cache.cached("race", {"k": "same"}, compute)


@pytest.mark.slow
def test_two_processes_compute_once(tmp_path):
    """Two processes asking for the same entry at once: one computes, the other waits and reads it."""
    log = tmp_path / "log.txt"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(_slow_compute, [(str(tmp_path / "c"), str(log))] * 2)
    assert [r[0] for r in results] == [{"answer": 42}] * 2
    assert sorted(r[1] for r in results) == [False, True]
    assert log.read_text().count("computed") == 1


def test_clear(root):
    cache.cached("ns", {"a": 1}, lambda: 1)
    cache.cached("other", {"a": 1}, lambda: 1)
    assert cache.clear("ns") >= 1 and cache.read("ns", {"a": 1}) is None and cache.read("other", {"a": 1}) == 1
    assert cache.clear() >= 1 and cache.read("other", {"a": 1}) is None


def test_an_unwritable_cache_computes_and_says_so(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DIFFMATH_CACHE", str(blocker / "sub"))
    assert cache.cached("ns", {"a": 1}, lambda: {"v": 1}) == ({"v": 1}, False)
    assert "computing without caching" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# code versions of module closures, and entries stored with the code
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package named like ours (the closure follows imports of its own name) with a known import graph:
    a imports b inside a function, c relatively, and names an attribute of e; d is imported by nobody."""
    pkg = tmp_path / cache._PACKAGE.name
    name = pkg.name
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(f"from . import c\nfrom {name}.e import value\n\ndef f():\n    import {name}.b\n")
    (pkg / "b.py").write_text("B = 1\n")
    (pkg / "c.py").write_text("from .sub import g\n")
    (pkg / "d.py").write_text("D = 1\n")
    (pkg / "e.py").write_text("value = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "g.py").write_text("import math\n")
    monkeypatch.setattr(cache, "_PACKAGE", pkg)
    return pkg


def test_module_files_follow_every_import(fake_package):
    name = fake_package.name
    rel = lambda paths: sorted(str(p.relative_to(fake_package)) for p in paths)  # noqa: E731
    assert rel(cache.module_files([f"{name}.a"])) == ["__init__.py", "a.py", "b.py", "c.py", "e.py", "sub/__init__.py", "sub/g.py"]
    assert rel(cache.module_files([f"{name}.d"])) == ["__init__.py", "d.py"]
    for bad in ("math", f"{name}.nope", name + "x.a"):
        with pytest.raises(ValueError, match="modules"):
            cache.module_files([bad])


def test_code_version_of_modules_changes_only_with_their_closure(fake_package):
    name = fake_package.name
    v = lambda: cache.code_version([f"{name}.a"])  # noqa: E731
    v0 = v()
    (fake_package / "d.py").write_text("D = 2\n")  # outside a's closure
    assert v() == v0
    (fake_package / "sub" / "g.py").write_text("import math  # edited\n")  # two imports away
    v1 = v()
    assert v1 != v0
    assert cache.code_version([f"{name}.a"], files=[fake_package / "d.py"]) not in (v0, v1)


def test_the_real_closures():
    """The sampler table's closure holds the samplers it runs and AMED, not the claims or the book."""
    files = {p.relative_to(cache._PACKAGE).as_posix() for p in cache.module_files(["diffmath.sampler_table"])}
    assert {"__init__.py", "sampler_table.py", "amed.py", "samplers.py", "mixture.py", "flows.py"} <= files
    assert not any(f.startswith("claims/") for f in files) and "book.py" not in files


def test_stored_entries_are_read_only_when_current(root, tmp_path, capsys):
    stored = tmp_path / "stored" / "x.json"
    cache.write_entry(stored, {"k": 1}, {"v": "stored"})
    calls = []
    compute = lambda: calls.append(1) or {"v": "computed"}  # noqa: E731
    assert cache.cached("ns", {"k": 1}, compute, stored=stored) == ({"v": "stored"}, True) and not calls
    assert cache.read("ns", {"k": 1}, stored=stored) == {"v": "stored"}
    assert cache.cached("ns", {"k": 2}, compute, stored=stored) == ({"v": "computed"}, False) and calls == [1]  # stale
    assert cache.cached("ns", {"k": 1}, compute, stored=stored, refresh=True) == ({"v": "computed"}, False)
    assert "corrupt" not in capsys.readouterr().err  # a stale stored entry is not an error
    entry = json.loads(stored.read_text())
    entry["value"] = {"v": "tampered"}
    stored.write_text(json.dumps(entry))
    assert cache.read_stored(stored, {"k": 1}) is None and "corrupt" in capsys.readouterr().err


def test_stored_entries_are_not_read_with_the_cache_off(tmp_path, monkeypatch):
    stored = tmp_path / "x.json"
    cache.write_entry(stored, {"k": 1}, {"v": "stored"})
    monkeypatch.setenv("DIFFMATH_CACHE", "off")
    assert cache.cached("ns", {"k": 1}, lambda: {"v": "computed"}, stored=stored) == ({"v": "computed"}, False)


def test_stored_only_mode_reads_stored_entries_and_caches_nothing(tmp_path, monkeypatch):
    stored = tmp_path / "x.json"
    cache.write_entry(stored, {"k": 1}, {"v": "stored"})
    monkeypatch.setenv("DIFFMATH_CACHE", "stored")
    assert cache.cache_root() is None
    calls = []
    compute = lambda: calls.append(1) or {"v": "computed"}  # noqa: E731
    assert cache.cached("ns", {"k": 1}, compute, stored=stored) == ({"v": "stored"}, True) and not calls
    assert cache.cached("ns", {"k": 1}, compute, stored=stored, refresh=True) == ({"v": "computed"}, False)
    assert cache.cached("ns", {"k": 2}, compute, stored=stored) == ({"v": "computed"}, False)  # stale: computed
    assert cache.cached("ns", {"k": 2}, compute, stored=stored) == ({"v": "computed"}, False) and calls == [1, 1, 1]
    assert cache.read("ns", {"k": 1}, stored=stored) == {"v": "stored"} and cache.read("ns", {"k": 2}) is None
