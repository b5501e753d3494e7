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
