"""A small on-disk cache of JSON results, keyed by what produced them: computed once, shared by every reader.

Expensive results — an experiment's table, a claim's verified outcome — are stored as
``<root>/<namespace>/<key>.json`` where ``key`` is the SHA-256 of a canonical JSON *fingerprint*
(the experiment's name, version and configuration, or the claim's id; the device; and the library's
:func:`code_version`). A change to any source file of the package, to torch's version or to the
configuration gives a new key, so a stale result is never served; old entries are simply not read
(``diffmath experiments clear`` removes them).

Guarantees:

* **atomic writes** — a temporary file in the same folder, then ``os.replace``; a reader sees the old
  entry or the new one, never half of one;
* **one computation at a time** — an exclusive ``fcntl`` lock per entry: when two processes (two pytest
  workers, ``diffmath verify -j 2``) ask for the same entry, one computes and the other waits, then reads;
* **integrity** — an entry stores its key and the SHA-256 of its value; a file that does not parse,
  whose key differs or whose checksum fails is reported on stderr and recomputed, never used.

A result can also be *stored* with the code: :func:`cached` takes the path of a committed entry
(``diffmath/_stored/``, written by ``diffmath experiments store``) and serves it when its key equals the
current one. Its key uses :func:`code_version` of the modules that compute the result (their import closure
within the package), not of the whole library, so an edit elsewhere leaves it valid; an edit to any of them
makes it stale, and a stale stored entry is simply not read (the result is recomputed).

``DIFFMATH_CACHE`` chooses the root (default: ``.diffmath-cache`` in the repository checkout the
package runs from, else ``~/.cache/diffmath``); ``DIFFMATH_CACHE=off`` disables caching, stored results
included; ``DIFFMATH_CACHE=stored`` caches nothing but serves the results stored with the code when current
(what the mutation harness runs under: a planted mistake outside an experiment's modules need not recompute it).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

try:  # POSIX advisory locks; elsewhere the cache still works, without cross-process locking
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

ENV = "DIFFMATH_CACHE"
_PACKAGE = Path(__file__).resolve().parent
_CODE_VERSION: Optional[str] = None


_OFF = ("off", "0", "none", "false")
STORED_ONLY = "stored"
"""The value of ``DIFFMATH_CACHE`` that caches nothing but reads the stored results."""


def cache_root() -> Optional[Path]:
    """The cache's folder, or ``None`` when ``DIFFMATH_CACHE`` is ``off`` or ``stored``."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in _OFF or value.lower() == STORED_ONLY:
        return None
    if value:
        return Path(value).expanduser()
    repo = _PACKAGE.parent
    if (repo / "pyproject.toml").is_file():
        return repo / ".diffmath-cache"
    return Path.home() / ".cache" / "diffmath"


def code_version(modules: Optional[Iterable[str]] = None, files: Iterable = ()) -> str:
    """SHA-256 of package source files (paths and bytes) and of the versions of the numerical libraries.

    Without ``modules``: every ``.py`` file of the package and torch's version (any edit anywhere in the
    library changes it: conservative, never stale). With ``modules`` (dotted names): the files of
    :func:`module_files` of them plus ``files`` (paths), and the versions of torch, numpy, scipy and sympy."""
    global _CODE_VERSION
    if modules is None:
        if _CODE_VERSION is None:
            import torch

            _CODE_VERSION = _hash_files(sorted(_PACKAGE.rglob("*.py")), [torch.__version__])
        return _CODE_VERSION
    import numpy
    import scipy
    import sympy
    import torch

    paths = sorted(set(module_files(modules)) | {Path(f).resolve() for f in files})
    return _hash_files(paths, [torch.__version__, numpy.__version__, scipy.__version__, sympy.__version__])


def _hash_files(paths, versions) -> str:
    h = hashlib.sha256("\0".join(versions).encode())
    for path in paths:
        h.update(str(Path(path).relative_to(_PACKAGE)).encode())
        h.update(b"\0")
        h.update(Path(path).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _module_file(name: str) -> Optional[tuple[Path, bool]]:
    """(file, is_package) of a module of this package, or None (not a module: an attribute, or not ours)."""
    parts = name.split(".")
    if parts[0] != _PACKAGE.name:
        return None
    base = _PACKAGE.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py", True
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py"), False
    return None


def _imported_names(path: Path, name: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` anywhere in the file may load (function bodies
    included; ``from m import a`` counts both ``m`` and ``m.a``, which may be a submodule)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def module_files(modules: Iterable[str]) -> list[Path]:
    """The package's source files that importing ``modules`` can execute: each module, the ``__init__`` of
    every package on its dotted path, and transitively every module of the package they import (found by
    reading the source, imports inside functions included). ``ValueError`` for a name that is not a module
    of the package."""
    todo = []
    for m in modules:
        if _module_file(m) is None:
            raise ValueError(f"modules must name modules of the {_PACKAGE.name} package, got {m!r}")
        todo.append(m)
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        found = _module_file(name)
        if found is None:
            continue
        path, is_package = found
        seen[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # the packages on the way
        todo.extend(n for n in _imported_names(path, name, is_package) if n.split(".")[0] == _PACKAGE.name)
    return sorted(seen.values())


def fingerprint(obj) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys); ``obj`` must be JSON-able."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _checksum(value) -> str:
    return fingerprint(value)


def entry_path(namespace: str, key_obj) -> Optional[Path]:
    root = cache_root()
    return None if root is None else root / namespace / f"{fingerprint(key_obj)}.json"


def read(namespace: str, key_obj, stored: Optional[Path] = None):
    """The cached value for ``key_obj``, or the stored one (``stored``, when its key is current), or ``None``
    (missing, disabled, stale, or corrupt: a corrupt entry is reported on stderr)."""
    path = entry_path(namespace, key_obj)
    if path is not None and path.is_file():
        value = _read(path, fingerprint(key_obj))
        if value is not None:
            return value
    return read_stored(stored, key_obj)


def read_stored(stored: Optional[Path], key_obj):
    """The value of the stored entry ``stored`` if its key is ``key_obj``'s, else ``None`` (a stale stored
    entry is not an error: the code changed since it was stored). With ``DIFFMATH_CACHE=off`` nothing is
    read, stored entries included: everything is computed."""
    if stored is None or os.environ.get(ENV, "").strip().lower() in _OFF or not Path(stored).is_file():
        return None
    key = fingerprint(key_obj)
    try:
        if json.loads(Path(stored).read_text(encoding="utf8")).get("key") != key:
            return None
    except (OSError, ValueError, AttributeError):
        pass  # _read reports it
    return _read(Path(stored), key)


def _read(path: Path, key: str):
    try:
        entry = json.loads(path.read_text(encoding="utf8"))
        if entry.get("key") != key:
            raise ValueError("its key does not match its file name")
        if entry.get("checksum") != _checksum(entry.get("value")):
            raise ValueError("its checksum does not match its value")
        return entry["value"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"[diffmath cache] ignoring a corrupt entry {path}: {exc}; recomputing", file=sys.stderr, flush=True)
        return None


def write(namespace: str, key_obj, value) -> Optional[Path]:
    """Store ``value`` (JSON-able) atomically; returns the path (``None`` when caching is off)."""
    path = entry_path(namespace, key_obj)
    if path is None:
        return None
    write_entry(path, key_obj, value)
    return path


def write_entry(path: Path, key_obj, value) -> Path:
    """Write one entry (key, fingerprint, checksum, value) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"key": fingerprint(key_obj), "fingerprint": key_obj, "checksum": _checksum(value), "value": value}
    text = json.dumps(entry, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem[:16] + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a stored entry unreadable to other users
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def cached(
    namespace: str, key_obj, compute: Callable[[], object], *, refresh: bool = False,
    keep: Optional[Callable[[object], bool]] = None, stored: Optional[Path] = None,
) -> tuple[object, bool]:
    """``(value, hit)``: the cached value of ``key_obj``, else the stored one (``stored``: a committed entry,
    used when its key is current), else ``compute()`` stored under it.

    Under the entry's lock, so concurrent callers compute once. ``refresh`` recomputes and overwrites;
    ``keep(value)`` false leaves a computed value out of the cache (e.g. a failed check). The value
    must be JSON-able (it is stored as JSON, and returned as read back, so a cache hit and a miss give
    equal values)."""
    path = entry_path(namespace, key_obj)
    if path is None:  # caching off (or DIFFMATH_CACHE=stored: only a current stored result is read)
        value = None if refresh else read_stored(stored, key_obj)
        return (value, True) if value is not None else (compute(), False)
    key = fingerprint(key_obj)
    if not refresh and path.is_file():
        value = _read(path, key)
        if value is not None:
            return value, True
    if not refresh:
        value = read_stored(stored, key_obj)
        if value is not None:
            return value, True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".lock").touch()
    except OSError as exc:  # a read-only or unusable folder: compute, say so, keep nothing
        print(f"[diffmath cache] cannot use {path.parent} ({exc}); computing without caching", file=sys.stderr, flush=True)
        return json.loads(json.dumps(compute())), False
    with locked(path):
        if not refresh and path.is_file():  # someone else computed it while we waited
            value = _read(path, key)
            if value is not None:
                return value, True
        value = compute()
        if keep is None or keep(value):
            write(namespace, key_obj, value)
        return json.loads(json.dumps(value)), False


def clear(namespace: Optional[str] = None) -> int:
    """Remove every entry (of ``namespace``, or of all); returns how many files were removed."""
    root = cache_root()
    if root is None or not root.is_dir():
        return 0
    folders = [root / namespace] if namespace else [p for p in root.iterdir() if p.is_dir()]
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if f.suffix in (".json", ".lock", ".tmp"):
                f.unlink()
                removed += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
    return removed
