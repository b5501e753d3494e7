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

``DIFFMATH_CACHE`` chooses the root (default: ``.diffmath-cache`` in the repository checkout the
package runs from, else ``~/.cache/diffmath``); ``DIFFMATH_CACHE=off`` disables caching.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

try:  # POSIX advisory locks; elsewhere the cache still works, without cross-process locking
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

ENV = "DIFFMATH_CACHE"
_PACKAGE = Path(__file__).resolve().parent
_CODE_VERSION: Optional[str] = None


def cache_root() -> Optional[Path]:
    """The cache's folder, or ``None`` when ``DIFFMATH_CACHE=off``."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("off", "0", "none", "false"):
        return None
    if value:
        return Path(value).expanduser()
    repo = _PACKAGE.parent
    if (repo / "pyproject.toml").is_file():
        return repo / ".diffmath-cache"
    return Path.home() / ".cache" / "diffmath"


def code_version() -> str:
    """SHA-256 of every ``.py`` file of the package (paths and bytes) and of torch's version.

    Any edit anywhere in the library changes it: conservative (an unrelated edit recomputes a
    result) but never stale."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import torch

        h = hashlib.sha256(torch.__version__.encode())
        for path in sorted(_PACKAGE.rglob("*.py")):
            h.update(str(path.relative_to(_PACKAGE)).encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
        _CODE_VERSION = h.hexdigest()
    return _CODE_VERSION


def fingerprint(obj) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys); ``obj`` must be JSON-able."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _checksum(value) -> str:
    return fingerprint(value)


def entry_path(namespace: str, key_obj) -> Optional[Path]:
    root = cache_root()
    return None if root is None else root / namespace / f"{fingerprint(key_obj)}.json"


def read(namespace: str, key_obj):
    """The cached value for ``key_obj``, or ``None`` (missing, disabled, or corrupt: reported on stderr)."""
    path = entry_path(namespace, key_obj)
    if path is None or not path.is_file():
        return None
    return _read(path, fingerprint(key_obj))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"key": fingerprint(key_obj), "fingerprint": key_obj, "checksum": _checksum(value), "value": value}
    text = json.dumps(entry, indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem[:16] + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
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
    keep: Optional[Callable[[object], bool]] = None,
) -> tuple[object, bool]:
    """``(value, hit)``: the cached value of ``key_obj``, else ``compute()`` stored under it.

    Under the entry's lock, so concurrent callers compute once. ``refresh`` recomputes and overwrites;
    ``keep(value)`` false leaves a computed value out of the cache (e.g. a failed check). The value
    must be JSON-able (it is stored as JSON, and returned as read back, so a cache hit and a miss give
    equal values)."""
    path = entry_path(namespace, key_obj)
    if path is None:
        return compute(), False
    key = fingerprint(key_obj)
    if not refresh and path.is_file():
        value = _read(path, key)
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
