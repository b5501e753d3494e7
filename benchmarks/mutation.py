"""Mutation testing of the library: plant one small mistake at a time and see whether a test notices.

    python benchmarks/mutation.py [MODULE ...] [--workers 2] [--json benchmarks/results/mutation.json]
                                  [--remap] [--limit N] [--show-survivors]

MODULE is a dotted name under ``diffmath`` (``mixture``, ``claims.part16``) or ``core`` (the seven
modules issue 11 holds to 90%); with none, every library module is mutated.

How it works (a small harness of our own: it runs in one process tree, so torch and sympy are imported
once, not once per mutant):

1. **Mutants.** Each module's AST is walked; inside function bodies (not defaults, annotations or
   docstrings: changing those does not change the compiled body) every arithmetic operator is swapped
   (``+``/``-``, ``*``/``/``, ``**``→``*``, ``//``→``/``), every comparison flipped or loosened
   (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``, ``in``/``not in``), ``and``/``or``
   exchanged, a unary minus or ``not`` dropped, every number ``c`` replaced by ``c + 1`` and every
   ``True``/``False`` negated. A line ending in ``# pragma: no mutate`` is left alone, and so are the arguments of
   seeding calls (:data:`SEED_CALLS`: a seed's value is arbitrary).
2. **Which tests.** The quick tier and the claims' checks and negative controls, slow ones and those of the
   ``--controls`` tier included (``--controls -m "(not slow or claim_check) and not browser and not repository"``), run once under coverage with
   one context per test, giving for each line the tests that execute it, and each test's duration.
   The map is kept in ``.mutation-cache/`` and rebuilt when the package or the tests change; an older map also
   serves while the mutated modules are unchanged (tests added since are not credited: pass ``--remap``).
3. **Runs.** For each mutant a child is forked from a parent that has imported the package and every
   test module; the child compiles the mutated module, swaps the mutated function's code object into
   the live function (so every reference to it, in any module or registry, runs the mutant), and runs
   the tests covering the mutated line (the module's own test file first, then the rest, fastest first),
   stopping at the first failure. Killed: a test failed (or the child crashed or timed out). Survived:
   the covering tests passed, or ``--cap`` seconds of them did (20 by default: a mutant of the mixture's
   constructor is covered by hundreds of tests, and running them all for every survivor would take
   hours; a mutant that survives the module's own tests and 20 s of others is counted as survived, so
   the score is a lower bound). No coverage: no quick-tier test executes the line (counted as survived).

The score of a module is killed / (mutants − equivalent). Mutants judged equivalent (no test could
tell them apart from the original: e.g. ``<`` against ``<=`` on a continuous quantity, a tolerance
``+ 1`` in an error message's formatting) are listed in ``benchmarks/mutation_equivalent.txt`` with
the reason, one ``id  # reason`` per line. Nothing is cached in the children (``DIFFMATH_CACHE=stored``): a
cached passing outcome would hide a mutant. A result stored with the code (an experiment's table) is read only
when the mutated module is outside the code that computes it: the child marks the mutated file so that every code
version including it differs from the stored one.

Limits: tests that run the library in a subprocess (the CLI's, the notebooks', the book's) import the
file on disk, not the mutant, so they cannot kill one; the rest of the slow tier is not run (its kills are not
counted, so the score is a lower bound for the default suite).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import math
import os
import random
import signal
import sys
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "diffmath"
CACHE = ROOT / ".mutation-cache"
EQUIVALENT_FILE = ROOT / "benchmarks" / "mutation_equivalent.txt"
CORE = ("mixture", "schedules", "parametrisation", "flows", "samplers", "amed", "denoisers")
#: modules that are tooling rather than mathematics (CLI, book build, cache, hypothesis strategies):
#: mutated only when named
TOOLING = ("cli", "book", "cache", "experiments", "strategies", "__main__", "__init__", "claims.__init__")
#: the tests the harness maps and runs: the quick tier, and the claims' numeric checks and negative controls even when
#: slow (they run in process, so they can kill); not the browser's, and not the repository's (a stored result's key,
#: not mathematics)
QUICK = ["-m", "(not slow or claim_check) and not browser and not repository"]

_BINOP_SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv,
}
_CMP_SWAP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}


@dataclass(frozen=True)
class Mutant:
    """One planted mistake: where (module, function, line) and what (the operator and the text)."""

    module: str  # dotted, e.g. "diffmath.mixture"
    function: str  # qualname of the outermost function holding the mutation
    def_line: int  # co_firstlineno of that function's code object
    line: int
    col: int
    kind: str  # e.g. "Add->Sub", "1->2", "drop -"
    text: str  # the original expression
    occurrence: int  # how many earlier mutants in the same function have the same (kind, text)

    @property
    def id(self) -> str:
        return f"{self.module}:{self.function}:{self.kind}:{self.text}#{self.occurrence}"


def _no_mutate_lines(source: str) -> set[int]:
    return {i for i, line in enumerate(source.splitlines(), 1) if line.rstrip().endswith("# pragma: no mutate")}


def _skip_nodes(func: ast.AST) -> set[int]:
    """ids of nodes whose mutation would not change the compiled body (annotations, docstrings)."""
    skip: set[int] = set()

    def mark(node):
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(func):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            for d in [*args.defaults, *args.kw_defaults]:
                mark(d)  # defaults live in __defaults__, not in the code object
            if not isinstance(node, ast.Lambda):
                mark(node.returns)
                for a in [*args.args, *args.posonlyargs, *args.kwonlyargs, args.vararg, args.kwarg]:
                    if a is not None:
                        mark(a.annotation)
                for dec in node.decorator_list:
                    mark(dec)
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    mark(body[0])
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            mark(node)  # f-strings are messages
        elif isinstance(node, ast.Call) and _callee(node) in SEED_CALLS:
            for a in [*node.args, *(k.value for k in node.keywords)]:
                mark(a)  # a seed's value is arbitrary: any seed gives an equally valid draw
    return skip


#: calls whose arguments are random seeds (``torch.Generator().manual_seed(s)``, the claims' ``generator(device, s)``,
#: the tests' ``gen(s)``): their values are not mutated
SEED_CALLS = frozenset({"manual_seed", "generator", "gen", "_gen", "default_rng", "seed"})


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _mutations(node: ast.AST):
    """(kind, replace) pairs for one node; replace(node_copy) mutates the copy in place."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAP:
        new = _BINOP_SWAP[type(node.op)]
        yield f"{type(node.op).__name__}->{new.__name__}", lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                new = _CMP_SWAP[type(op)]

                def rep(n, i=i, new=new):
                    n.ops[i] = new()

                yield f"{type(op).__name__}->{new.__name__}", rep
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield f"{type(node.op).__name__}->{new.__name__}", lambda n, new=new: setattr(n, "op", new())
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        v = node.value
        nv = (not v) if isinstance(v, bool) else v + 1
        yield f"{v!r}->{nv!r}", lambda n, nv=nv: setattr(n, "value", nv)


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    out = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            out[id(child)] = parent
    return out


def _unary_drops(node):
    """A unary minus or ``not`` removed: the parent's field then points at the operand."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        yield ("drop -" if isinstance(node.op, ast.USub) else "drop not"), node


def module_source(module: str) -> tuple[Path, str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    return path, path.read_text()


def generate(module: str) -> list[Mutant]:
    """Every mutant of one module, in source order."""
    path, source = module_source(module)
    tree = ast.parse(source, str(path))
    no_mutate = _no_mutate_lines(source)
    code = compile(tree, str(path), "exec")
    out: list[Mutant] = []
    seen: dict[tuple, int] = {}

    def outer_functions(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node, prefix + node.name
            elif isinstance(node, ast.ClassDef):
                yield from outer_functions(node.body, prefix + node.name + ".")

    firstlines = {c.co_qualname: c.co_firstlineno for c in _code_objects(code)}
    for func, qualname in outer_functions(tree.body, ""):
        skip = _skip_nodes(func)
        def_line = firstlines[qualname]
        for node in ast.walk(func):
            if node is func or id(node) in skip or getattr(node, "lineno", None) in no_mutate:
                continue
            muts = [(k, None) for k, _ in _mutations(node)] + [(k, None) for k, _ in _unary_drops(node)]
            for kind, _ in muts:
                text = ast.unparse(node)
                if len(text) > 60:
                    text = text[:57] + "..."
                key = (qualname, kind, text)
                occ = seen.get(key, 0)
                seen[key] = occ + 1
                out.append(Mutant(module, qualname, def_line, node.lineno, node.col_offset, kind, text, occ))
    return out


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def mutated_code(m: Mutant) -> types.CodeType:
    """The code object of ``m.function`` with the mutation applied."""
    path, source = module_source(m.module)
    tree = ast.parse(source, str(path))
    parents = _parents(tree)
    target = None
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) == m.line and getattr(node, "col_offset", None) == m.col:
            kinds = [k for k, _ in _mutations(node)] + [k for k, _ in _unary_drops(node)]
            if m.kind in kinds and _short(ast.unparse(node)) == m.text:
                target = node
                break
    if target is None:
        raise LookupError(f"mutant not found in the source: {m.id}")
    for kind, rep in _mutations(target):
        if kind == m.kind:
            rep(target)
            break
    else:
        parent = parents[id(target)]
        _replace_child(parent, target, target.operand)
    ast.fix_missing_locations(tree)
    code = compile(tree, str(path), "exec")
    for c in _code_objects(code):
        if c.co_qualname == m.function and c.co_firstlineno == m.def_line:
            return c
    raise LookupError(f"compiled function not found: {m.id}")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _replace_child(parent, old, new):
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                if v is old:
                    value[i] = new
                    return
    raise LookupError("child not found")


def live_functions(module: types.ModuleType):
    """Every function object defined in ``module`` (module level, in classes, unwrapped)."""
    seen = set()

    def unwrap(obj):
        while obj is not None:
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
            elif isinstance(obj, property):
                for f in (obj.fget, obj.fset, obj.fdel):
                    yield from unwrap(f)
                return
            elif hasattr(obj, "func") and not isinstance(obj, types.FunctionType) and hasattr(obj, "attrname"):
                obj = obj.func  # functools.cached_property
            elif isinstance(obj, types.FunctionType):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    yield obj
                obj = getattr(obj, "__wrapped__", None)
            else:
                obj = getattr(obj, "__wrapped__", None)

    def walk_class(cls, depth=0):
        for value in vars(cls).values():
            if isinstance(value, type) and value.__module__ == module.__name__ and depth < 3:
                yield from walk_class(value, depth + 1)
            else:
                yield from unwrap(value)

    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == module.__name__:
            yield from walk_class(value)
        elif getattr(value, "__module__", None) == module.__name__:
            yield from unwrap(value)


def apply(m: Mutant) -> None:
    """Swap the mutant's code into the live function (in this process)."""
    module = importlib.import_module(m.module)
    new = mutated_code(m)
    for f in live_functions(module):
        code = f.__code__
        if code.co_qualname == m.function and code.co_firstlineno == m.def_line:
            f.__code__ = new
            return
    raise LookupError(f"live function not found: {m.id}")


def clear_memos() -> None:
    """Forget every result the package memoises in-process: the claims' built derivations
    (``registry._DERIVATIONS``) and every ``functools`` cache of a ``diffmath`` module
    (:func:`diffmath.claims.controls.clear_memos`). The coverage map clears them before each test, so that each
    test that needs a derivation builds it (and so covers it); a child clears them after planting its mutant, so
    that the mutant runs instead of a memo of the original."""
    from diffmath.claims import controls, registry

    controls.clear_memos()
    registry._DERIVATIONS.clear()


# ----------------------------------------------------------------------------- the coverage map


def _fingerprint() -> str:
    h = hashlib.sha256()
    for folder in ("diffmath", "tests"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


class _MapPlugin:
    def __init__(self, cov):
        self.cov = cov
        self.durations: dict[str, float] = {}
        self.failed: list[str] = []

    def pytest_runtest_setup(self, item):
        clear_memos()
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_logreport(self, report):
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.failed:
            self.failed.append(report.nodeid)


def build_map(extra_args=()) -> dict:
    """Run the mapped tests (:data:`QUICK`) under coverage (in a child process) and return {file: {line: [tests]}}."""
    import coverage
    import pytest

    cov = coverage.Coverage(data_file=None, include=[str(PACKAGE / "*")], branch=False)
    plugin = _MapPlugin(cov)
    cov.start()
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--controls", *QUICK, *extra_args, str(ROOT / "tests")], plugins=[plugin]
    )
    cov.stop()
    data = cov.get_data()
    lines: dict[str, dict[int, list[str]]] = {}
    for filename in data.measured_files():
        rel = str(Path(filename).resolve().relative_to(ROOT))
        by_line = data.contexts_by_lineno(filename)
        lines[rel] = {int(k): sorted(c for c in v if c) for k, v in by_line.items()}
    return {"exit": int(code), "durations": plugin.durations, "failed": plugin.failed, "lines": lines, "library": _library_hashes()}


def _library_hashes() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(PACKAGE.rglob("*.py"))}


def load_map(remap: bool, modules=()) -> dict:
    """The coverage map of the current package and tests; without ``remap``, an older map also serves when every
    module to be mutated is unchanged since it was built (tests added since then are not in it: they cannot kill,
    so the score stays a lower bound)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"map-{_fingerprint()}.json"
    if path.exists() and not remap:
        return json.loads(path.read_text())
    if not remap and modules:
        now = _library_hashes()
        wanted = {str(module_source(m)[0].relative_to(ROOT)) for m in modules}
        for old in sorted(CACHE.glob("map-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            data = json.loads(old.read_text())
            hashes = data.get("library", {})
            if hashes and all(hashes.get(w) == now.get(w) for w in wanted):
                print(f"[mutation] using {old.name}: the mutated modules are unchanged since it was built", flush=True)
                return data
    print(f"[mutation] mapping the tests under coverage (once per change of diffmath/ or tests/) -> {path}", flush=True)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child runs the tests; the parent stays clean
        try:
            result = build_map()
            path.write_text(json.dumps(result))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    if not path.exists():
        raise SystemExit("the coverage run failed")
    result = json.loads(path.read_text())
    print(f"[mutation] map built in {time.perf_counter() - t0:.0f} s; pytest exit code {result['exit']}", flush=True)
    if result["failed"]:
        # a test that fails on the unmutated library cannot tell a mutant apart: it is left out
        print(f"[mutation] warning: {len(result['failed'])} tests fail without mutants and are not used: {result['failed'][:5]}")
        bad = set(result["failed"])
        for by_line in result["lines"].values():
            for line, tests in by_line.items():
                by_line[line] = [t for t in tests if t not in bad]
    return result


# ----------------------------------------------------------------------------- running mutants


class _ChildPlugin:
    """In a mutant's child: stop at the first failure (killed), or once ``cap`` seconds of tests have passed
    (survived so far: the remaining, slower tests are not run, so the score is a lower bound)."""

    def __init__(self, cap: float):
        self.cap, self.t0, self.failed, self.capped = cap, time.perf_counter(), False, False

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed = True

    def pytest_runtest_logfinish(self, nodeid, location):
        if not self.failed and time.perf_counter() - self.t0 > self.cap:
            self.capped = True
            self._session.shouldstop = "mutation: time cap"

    def pytest_sessionstart(self, session):
        self._session = session


def _mark_mutated_file(m: Mutant) -> None:
    """Make every code version whose files include the mutated module's differ from the one on disk, so that a
    result stored with the code (:mod:`diffmath.cache`) is not served for a mutant of the code that computes it."""
    from diffmath import cache

    mutated = module_source(m.module)[0].resolve()
    original = cache._hash_files

    def marked(paths, versions):
        paths = list(paths)
        if any(Path(p).resolve() == mutated for p in paths):
            versions = [*versions, "mutant " + m.id]
        return original(paths, versions)

    cache._hash_files = marked
    cache._CODE_VERSION = None


def _run_child(m: Mutant, tests: list[str], cap: float) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        apply(m)
    except Exception:
        os._exit(5)
    clear_memos()
    _mark_mutated_file(m)
    import pytest

    plugin = _ChildPlugin(cap)
    code = pytest.main(
        ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", "--hypothesis-seed=0", "--controls", *tests],
        plugins=[plugin],
    )
    if plugin.failed:
        os._exit(1)
    if plugin.capped:
        os._exit(6)
    os._exit(int(code))


def selected_tests(m: Mutant, cmap: dict) -> list[str]:
    """The quick-tier tests that execute the mutated line: the module's own test file first (the likeliest to
    kill), then the rest, each group fastest first."""
    path = module_source(m.module)[0]
    rel = str(path.relative_to(ROOT))
    tests = set(cmap["lines"].get(rel, {}).get(str(m.line), []))
    durations = cmap["durations"]
    own = f"tests/test_{m.module.split('.')[-1]}.py::"
    return sorted(tests, key=lambda t: (not t.startswith(own), durations.get(t, 1e9), t))


def _source_hash(module: str) -> str:
    return hashlib.sha256(module_source(module)[1].encode()).hexdigest()[:16]


def function_hashes(module: str) -> dict[str, str]:
    """{qualname: hash of its source text} for the outermost functions of ``module`` (as :func:`generate` walks them)."""
    path, source = module_source(module)
    tree = ast.parse(source, str(path))
    out = {}

    def walk(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                text = ast.get_source_segment(source, node) or ast.unparse(node)
                out[prefix + node.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
            elif isinstance(node, ast.ClassDef):
                walk(node.body, prefix + node.name + ".")

    walk(tree.body, "")
    return out


def load_journal() -> dict[str, dict]:
    """Earlier results (``.mutation-cache/journal.jsonl``) of mutants whose function's source text is unchanged
    (or, for older records, whose whole module is): a killed mutant stays killed when tests are added or
    other functions change, so only those are reused; survivors are run again."""
    path = CACHE / "journal.jsonl"
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    modules: dict[str, tuple[str, dict]] = {}
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        mod = r["mutant"]["module"]
        if mod not in modules:
            try:
                modules[mod] = (_source_hash(mod), function_hashes(mod))
            except (OSError, SyntaxError):
                modules[mod] = ("", {})
        whole, funcs = modules[mod]
        same = r.get("function_source") == funcs.get(r["mutant"]["function"]) if "function_source" in r else r.get("source") == whole
        if same and r["status"] in ("killed", "timeout"):
            out[r["id"]] = r
    return out


def run(mutants: list[Mutant], cmap: dict, workers: int, progress=True, reuse: bool = True, cap: float = 20.0) -> dict[str, dict]:
    results: dict[str, dict] = {}
    previous = load_journal() if reuse else {}
    for m in mutants:
        if m.id in previous:
            results[m.id] = previous[m.id]
    queue = [m for m in mutants if m.id not in results]
    if progress and results:
        print(f"[mutation] {len(results)} mutants killed in an earlier run of the same source: reused", flush=True)
    CACHE.mkdir(exist_ok=True)
    journal = open(CACHE / "journal.jsonl", "a")
    hashes = {m.module: _source_hash(m.module) for m in mutants}
    fhashes = {mod: function_hashes(mod) for mod in hashes}

    def record(m: Mutant, entry: dict) -> None:
        entry.update(id=m.id, source=hashes[m.module], function_source=fhashes[m.module].get(m.function))
        results[m.id] = entry
        journal.write(json.dumps(entry) + "\n")
        journal.flush()

    running: dict[int, tuple[Mutant, float, float]] = {}
    done = 0
    t_start = time.perf_counter()
    while queue or running:
        while queue and len(running) < workers:
            m = queue.pop(0)
            tests = selected_tests(m, cmap)
            if not tests:
                record(m, {"status": "no coverage", "mutant": asdict(m)})
                done += 1
                continue
            durations = [cmap["durations"].get(t, 1.0) for t in tests]
            # past this the child is killed and the mutant counted as killed (a mutant that makes a solver wander)
            budget = 20.0 + 2.0 * (min(sum(durations), cap) + max(durations))
            pid = os.fork()
            if pid == 0:
                _run_child(m, tests, cap)
            running[pid] = (m, time.perf_counter(), budget)
        if not running:
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.perf_counter()
            for p, (m, t0, budget) in list(running.items()):
                if now - t0 > budget:
                    os.kill(p, signal.SIGKILL)
                    os.waitpid(p, 0)
                    del running[p]
                    record(m, {"status": "timeout", "seconds": now - t0, "mutant": asdict(m)})
                    done += 1
            time.sleep(0.02)
            continue
        m, t0, _ = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        state = {0: "survived", 1: "killed", 5: "not applied", 6: "survived"}.get(code, "killed")
        if code in (2, 3, 4):
            state = "error"
        record(m, {"status": state, "exit": code, "capped": code == 6, "seconds": time.perf_counter() - t0, "mutant": asdict(m)})
        done += 1
        if progress and (done % 25 == 0 or not queue):
            el = time.perf_counter() - t_start
            print(f"\r[mutation] {done} run, {len(mutants) - len(results)} left, {el:.0f} s", end="", flush=True)
    journal.close()
    if progress:
        print(flush=True)
    return results


def load_equivalent() -> dict[str, str]:
    out = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, reason = line.partition("  # ")
                out[key.strip()] = reason.strip()
    return out


def sample_mutants(mutants: list[Mutant], n: int, key: str) -> list[Mutant]:
    """A uniform random sample of ``n`` mutants (all of them when there are fewer), reproducible from ``key``, in source order."""
    if n < 1:
        raise ValueError(f"the sample size must be >= 1, got {n}")
    if n >= len(mutants):
        return list(mutants)
    rng = random.Random(key)
    keep = set(rng.sample(range(len(mutants)), n))
    return [m for i, m in enumerate(mutants) if i in keep]


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    r"""The Wilson score interval for a proportion ``k / n`` (95% by default): the set of :math:`p` with
    :math:`|k/n - p| \le z\sqrt{p(1-p)/n}`, solved for :math:`p`. A sample of mutants estimates a module's score;
    the interval says how far the module's full score can plausibly be."""
    if n == 0:
        return 0.0, 1.0
    ph = k / n
    centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(results: dict[str, dict], equivalent: dict[str, str], totals: dict[str, int] | None = None) -> list[dict]:
    rows: dict[str, dict] = {}
    for mid, r in results.items():
        mod = r["mutant"]["module"]
        row = rows.setdefault(
            mod, {"module": mod, "mutants": 0, "killed": 0, "survived": 0, "no coverage": 0, "equivalent": 0, "error": 0, "not applied": 0}
        )
        row["mutants"] += 1
        st = r["status"]
        if mid in equivalent and st in ("survived", "no coverage"):
            row["equivalent"] += 1
        elif st in ("killed", "timeout"):
            row["killed"] += 1
        elif st in ("survived", "no coverage", "error", "not applied"):  # not applied: the source changed since generation
            row[st] += 1
    for row in rows.values():
        denom = row["mutants"] - row["equivalent"] - row.get("not applied", 0)
        row["score"] = row["killed"] / denom if denom else 1.0
        row["of"] = (totals or {}).get(row["module"], row["mutants"])
        row["sampled"] = row["of"] > row["mutants"]
        # the interval of the full module's score; the equivalent share of the sample estimates that of the module
        row["low"], row["high"] = wilson_interval(row["killed"], denom) if row["sampled"] else (row["score"], row["score"])
    return sorted(rows.values(), key=lambda r: r["module"])


def all_modules() -> list[str]:
    mods = []
    for p in sorted(PACKAGE.rglob("*.py")):
        mod = ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        if mod not in TOOLING:
            mods.append(mod)
    return mods


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--remap", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="at most N mutants per module (for a quick look)")
    ap.add_argument("--sample", type=int, default=None,
                    help="a uniform random sample of N mutants per module (seeded by --seed and the module's name); "
                         "the score is then an estimate, reported with its 95%% Wilson interval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show-survivors", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="run every mutant, even those an earlier run of the same source killed")
    ap.add_argument("--cap", type=float, default=20.0,
                    help="seconds of passing tests after which a mutant counts as survived (default 20; the score is then a lower bound)")
    args = ap.parse_args(argv)

    os.environ["DIFFMATH_CACHE"] = "stored"  # nothing cached; a stored experiment result is read unless the mutant is in its code
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("DIFFMATH_VERIFY_JOBS", "1")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    torch.set_num_threads(1)
    names = args.modules or all_modules()
    names = [n for group in names for n in (CORE if group == "core" else [group])]
    cmap = load_map(args.remap, ["diffmath." + n for n in names])

    import pytest

    # import the package and every test module once, in the parent, without running anything
    pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", "-p", "no:xdist", str(ROOT / "tests")], plugins=[])
    mutants: list[Mutant] = []
    totals: dict[str, int] = {}
    for name in names:
        ms = generate("diffmath." + name)
        totals["diffmath." + name] = len(ms)
        if args.sample is not None:
            ms = sample_mutants(ms, args.sample, f"{args.seed}:{name}")
        mutants.extend(ms[: args.limit] if args.limit else ms)
    print(f"[mutation] {len(mutants)} mutants in {len(names)} modules, {args.workers} workers", flush=True)
    t0 = time.perf_counter()
    results = run(mutants, cmap, args.workers, reuse=not args.fresh, cap=args.cap)
    elapsed = time.perf_counter() - t0
    equivalent = load_equivalent()
    rows = summarise(results, equivalent, totals)
    print(f"\n{'module':32s} {'mutants':>8s} {'of':>6s} {'killed':>7s} {'surv.':>6s} {'no cov.':>8s} {'equiv.':>7s} {'score':>7s}  95% interval")
    for r in rows:
        ci = f"  [{r['low']:.1%}, {r['high']:.1%}]" if r["sampled"] else ""
        print(f"{r['module']:32s} {r['mutants']:8d} {r['of']:6d} {r['killed']:7d} {r['survived']:6d} {r['no coverage']:8d} {r['equivalent']:7d} {r['score']:7.1%}{ci}")
    print(f"[mutation] {elapsed:.0f} s")
    if args.show_survivors:
        for mid, r in sorted(results.items(), key=lambda kv: (kv[1]["mutant"]["module"], kv[1]["mutant"]["line"])):
            if r["status"] in ("survived", "no coverage", "error", "not applied") and mid not in equivalent:
                print(f"  {r['status']:12s} line {r['mutant']['line']:4d}  {mid}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seconds": elapsed, "summary": rows, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
