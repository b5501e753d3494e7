"""The book's generated pages, checked without building the book.

``diffmath.book.generate`` turns the claim registry and a ``diffmath verify`` ledger into MyST
pages; these tests run it on a ledger made up from the registry (no checks are run) and read
what it wrote. The full build, rendered in a browser, is ``test_browser.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffmath import book
from diffmath.claims import Kind, all_claims
from diffmath.claims.registry import CheckResult, Claim, Measurement, Source

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def fake_outcome(claim, status=None) -> dict:
    """A ledger entry shaped like ``Outcome.as_dict()``, without running anything."""
    if status is None:
        status = {"refuted": "refuted", "empirical": "empirical"}.get(claim.kind.value, "verified")
    return {
        "id": claim.id,
        "title": claim.title,
        "chapter": claim.chapter,
        "kind": claim.kind.value,
        "source": claim.source.describe(),
        "status": status,
        "passed": status != "failed",
        "derivation": None if claim.derivation is None else {"passed": True, "failures": []},
        "check": None
        if claim.check is None
        else {
            "setting": "a made-up setting",
            "device": "cpu",
            "passed": status != "failed",
            "measurements": [
                {"quantity": "max |a - b| / |b|", "value": 1.23456e-13, "bound": 1e-10,
                 "relation": "<=", "passed": True, "note": ""},
            ],
        },
        "error": None,
        "seconds": 0.01,
        "tests": list(claim.tests),
    }


@pytest.fixture
def book_copy(tmp_path) -> Path:
    """The book's sources in a temporary folder (generate writes into it)."""
    dst = tmp_path / "book"
    shutil.copytree(BOOK, dst, ignore=shutil.ignore_patterns("_build", "_generated"))
    return dst


@pytest.fixture
def ledger(tmp_path) -> Path:
    path = tmp_path / "ledger.json"
    data = {"device": "cpu", "generated": "2025-01-01T00:00:00+00:00",
            "claims": [fake_outcome(c) for c in all_claims()]}
    path.write_text(json.dumps(data))
    return path


def test_registry_is_not_empty():
    assert all_claims(), "no claims registered"


def test_one_page_per_claim(book_copy, ledger):
    book.generate(book_copy, ledger, experiments=False)
    pages = sorted(p.stem for p in (book_copy / "_generated" / "claims").glob("*.md"))
    assert pages == sorted(c.id for c in all_claims())
    assert (book_copy / "_generated" / "ledger.md").is_file()
    assert (book_copy / "_generated" / "errata.md").is_file()


def test_claim_page_has_label_statement_and_status(book_copy, ledger):
    book.generate(book_copy, ledger, experiments=False)
    for c in all_claims():
        text = (book_copy / "_generated" / "claims" / f"{c.id}.md").read_text()
        assert "{prf:theorem}" in text
        assert f":label: {c.label}" in text
        assert c.statement.strip() in text
        assert c.title in text
        assert "verified" in text or c.kind in (Kind.REFUTED, Kind.EMPIRICAL)
        if c.derivation is not None:
            assert "{prf:proof}" in text
            assert "checked by sympy" in text
            assert c.derivation.to_latex().strip() in text
        if c.check is not None:
            assert "1.23e-13" in text  # the measurement, printed with %.3g
            assert "a made-up setting" in text
            assert r"max \|a - b\| / \|b\|" in text  # pipes escaped inside the table
        for node in c.tests:
            assert node in text
        assert ("*Negative controls*" in text) == bool(c.plants)
        for plant in c.plants:
            assert plant.target in text and plant.change_text() in text


def test_ledger_lists_every_claim_with_a_link(book_copy, ledger):
    book.generate(book_copy, ledger, experiments=False)
    text = (book_copy / "_generated" / "ledger.md").read_text()
    for c in all_claims():
        assert f"{{prf:ref}}`{c.id} <{c.label}>`" in text
        for node in c.tests:
            assert node in text
    n = len(all_claims())
    assert f"{n} claims:" in text


def test_missing_ledger_marks_claims_not_run(book_copy, tmp_path):
    book.generate(book_copy, tmp_path / "does-not-exist.json", experiments=False)
    text = (book_copy / "_generated" / "ledger.md").read_text()
    assert "not run" in text
    assert "verified" not in text.split("| claim |")[1]


def test_stale_claim_pages_are_removed(book_copy, ledger):
    stale = book_copy / "_generated" / "claims" / "C99.1.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    book.generate(book_copy, ledger, experiments=False)
    assert not stale.exists()


def _refuted_claim() -> Claim:
    return Claim(
        id="C99.1",
        title="A claim that is false",
        statement="For every $x$, $x^2 = x$.",
        source=Source(part=16, equation="3", paper="ho2020ddpm"),
        kind=Kind.REFUTED,
        chapter="nowhere",
        check=lambda device: CheckResult((Measurement("x^2 - x at x = 2", 2.0, 1.0, ">="),), "x = 2"),
        tests=("tests/test_x.py::test_counterexample",),
        remark="It holds only for $x \\in \\{0, 1\\}$.",
    )


def test_errata_lists_refuted_claims(book_copy, tmp_path):
    claim = _refuted_claim()
    outcome = fake_outcome(claim)
    outcome["check"]["measurements"] = [
        {"quantity": "x^2 - x at x = 2", "value": 2.0, "bound": 1.0, "relation": ">=", "passed": True, "note": ""}
    ]
    path = tmp_path / "l.json"
    path.write_text(json.dumps({"device": "cpu", "generated": "now", "claims": [outcome]}))
    book.generate(book_copy, path, claims=[claim], experiments=False)
    errata = (book_copy / "_generated" / "errata.md").read_text()
    assert "C99.1" in errata and claim.statement in errata
    assert "Counterexample" in errata and "≥ 1" in errata
    assert "It holds only for" in errata
    page = (book_copy / "_generated" / "claims" / "C99.1.md").read_text()
    # the source cites the article and the paper through references.bib keys
    assert "{cite:p}`su-part16`" in page and "{cite:p}`ho2020ddpm`" in page
    assert "eq. (3)" in page


def test_errata_without_refuted_or_imprecise_claims(book_copy, ledger):
    claims = [c for c in all_claims() if c.kind is not Kind.REFUTED and not c.erratum and not c.extension]
    book.generate(book_copy, ledger, claims=claims, experiments=False)
    assert "No errata yet" in (book_copy / "_generated" / "errata.md").read_text()


def test_errata_lists_imprecise_claims(book_copy, ledger):
    """Claims that hold only as corrected (an ``erratum``) are listed after the refuted ones."""
    book.generate(book_copy, ledger, experiments=False)
    text = (book_copy / "_generated" / "errata.md").read_text()
    imprecise = [c for c in all_claims() if c.erratum and c.kind is not Kind.REFUTED]
    assert imprecise, "expected at least one claim with an erratum"
    assert "## Imprecise as written" in text
    for c in imprecise:
        assert f"**{c.id}**" in text
    refuted = [c for c in all_claims() if c.kind is Kind.REFUTED]
    for c in refuted:
        assert text.index(f"## {c.id}:") < text.index("## Imprecise as written")


def test_errata_lists_extensions_in_their_own_group(book_copy, ledger):
    """Claims the article gets right and the suite sharpens (an ``extension``) form the third group."""
    book.generate(book_copy, ledger, experiments=False)
    text = (book_copy / "_generated" / "errata.md").read_text()
    extended = [c for c in all_claims() if c.extension and not c.erratum and c.kind is not Kind.REFUTED]
    assert extended, "expected at least one claim with an extension"
    assert "## Extensions" in text
    for c in extended:
        assert text.index(f"**{c.id}**") > text.index("## Extensions")


def test_documented_claims_take_no_check():
    """A documented (non-mathematical) claim has neither a derivation nor a check, and its ledger
    status says so."""
    from diffmath.claims import Claim, Source, verify_claim

    with pytest.raises(ValueError, match="documented"):
        Claim(id="C99.2", title="t", statement="s", source=Source(part=22), kind=Kind.DOCUMENTED,
              chapter="x", check=lambda device: None)
    c = Claim(id="C99.3", title="t", statement="s", source=Source(part=22), kind=Kind.DOCUMENTED, chapter="x")
    assert verify_claim(c, "cpu").status == "documented"
    with pytest.raises(ValueError, match="neither"):
        Claim(id="C99.4", title="t", statement="s", source=Source(part=22), kind=Kind.IDENTITY, chapter="x")


def test_every_claim_is_included_by_its_chapter():
    """Each claim's page is pulled into exactly one chapter, ``book/<claim.chapter>.md``."""
    sources = {p.stem: p.read_text() for p in BOOK.glob("*.md")}
    for c in all_claims():
        include = f"_generated/claims/{c.id}.md"
        holders = [name for name, text in sources.items() if include in text]
        assert holders == [c.chapter], f"{c.id} is included by {holders}, expected [{c.chapter!r}]"


def test_generated_pages_are_excluded_from_discovery():
    config = (BOOK / "_config.yml").read_text()
    assert re.search(r"exclude_patterns:.*_generated", config)
    toc = (BOOK / "_toc.yml").read_text()
    for name in ("intro", "notation", "toy-lab", "ledger", "errata", "bibliography"):
        assert re.search(rf"\b{name}\b", toc), name
        assert (BOOK / f"{name}.md").is_file()


def test_citations_exist_in_references_bib():
    keys = book.bib_keys(BOOK)
    assert {"ho2020ddpm", "karras2022edm", "su-part16", "su-part24", "su-multimodal-1"} <= keys
    used = set()
    for p in BOOK.glob("*.md"):
        for group in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", p.read_text()):
            used.update(k.strip() for k in group.split(","))
    assert used <= keys, f"cited but not in references.bib: {sorted(used - keys)}"
    for c in all_claims():
        if c.source.part is not None:
            assert book.article_key(c.source.part) in keys or c.source.part == 0, c.id


@pytest.mark.slow
def test_command_line_generate(tmp_path, book_copy, ledger, capsys):
    """``python -m diffmath.book generate`` (its parser and main, in process)."""
    assert book.main(["generate", "--book-dir", str(book_copy), "--ledger", str(ledger), "--no-experiments"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(list((book_copy / "_generated" / "claims").glob("*.md"))) == len(all_claims())


def test_experiments_are_written_for_the_chapters(tmp_path, book_copy, monkeypatch):
    """generate writes every registered experiment's JSON (and Markdown) from the experiment cache:
    computed on the first call, read back on the second."""
    from diffmath import experiments

    monkeypatch.setenv("DIFFMATH_CACHE", str(tmp_path / "cache"))
    calls = []

    def run(cfg, device):
        calls.append(cfg)
        return {"value": cfg["n"] * 2, "device": device}

    toy = experiments.Experiment("toy-for-book", 1, "a toy", run, defaults={"n": 21}, markdown=lambda r: f"value {r['value']}\n",
                                 modules=("diffmath.schedules",))
    monkeypatch.setattr(experiments, "all_experiments", lambda: [toy])
    monkeypatch.setattr(experiments, "get", lambda name: toy)
    book.write_experiments(book_copy)
    book.write_experiments(book_copy)
    out = book_copy / "_generated" / "experiments"
    assert json.loads((out / "toy-for-book.json").read_text()) == {"value": 42, "device": "cpu"}
    assert (out / "toy-for-book.md").read_text() == "value 42\n"
    assert len(calls) == 1


def test_claim_page_says_which_steps_are_assumed_and_states_the_hypotheses():
    """A derivation with a premise is not reported as "sympy verified every step": the page names the assumed
    step; a derivation whose inequality uses hypotheses lists them with their reasons."""
    import sympy as sp

    from diffmath.symbolic import Derivation, Hypothesis, Step

    x, B = sp.symbols("x B", real=True)
    n = sp.symbols("n", nonnegative=True)
    h = Hypothesis(n - B, "a one-sided bound")
    derivation = Derivation(
        [Step(sp.Symbol("y"), x + 1, why="the model", assumed=True), Step(B, n, "<=", hypotheses=(h,), variables=(B, n))]
    )
    claim = Claim(
        id="C99.2", title="t", statement="s", source=Source(part=16), kind=Kind.IDENTITY, chapter="nowhere",
        derive=lambda: derivation,
    )
    page = book.claim_page(claim, fake_outcome(claim), set())
    assert "except (1), a premise the derivation assumes" in page and "verified every one." not in page
    assert "a one-sided bound" in page and "*Hypotheses*" in page and r"\text{1, assumed}" in page
    plain = Claim(id="C99.3", title="t", statement="s", source=Source(part=16), kind=Kind.IDENTITY, chapter="nowhere",
                  derive=lambda: Derivation([Step(sp.Derivative(x**2, x), 2 * x)]))
    assert "sympy verified every one" in book.claim_page(plain, fake_outcome(plain), set())


# ----------------------------------------------------------------------------------------------
# the parallel read of the book (run_jupyter_book, book/_ext/diffmath_parallel.py)
# ----------------------------------------------------------------------------------------------


def test_book_jobs_from_the_environment(monkeypatch):
    monkeypatch.delenv("DIFFMATH_BOOK_JOBS", raising=False)
    assert book.book_jobs() == min(8, 2 * (os.cpu_count() or 1))
    monkeypatch.setenv("DIFFMATH_BOOK_JOBS", "3")
    assert book.book_jobs() == 3
    monkeypatch.setenv("DIFFMATH_BOOK_JOBS", "0")
    with pytest.raises(ValueError, match="DIFFMATH_BOOK_JOBS"):
        book.book_jobs()
    with pytest.raises(ValueError, match="jobs"):
        book.run_jupyter_book("unused", jobs=0)


def test_run_jupyter_book_passes_jobs_to_sphinx(monkeypatch, tmp_path):
    """The command runs jupyter-book's own command line with build_sphinx's ``jobs`` set: executed here with a
    stand-in build_sphinx that records what it was given."""
    calls = {}

    def fake_call(cmd, env):
        calls["cmd"], calls["env"] = cmd, env
        return 0

    monkeypatch.setattr(book.subprocess, "call", fake_call)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert book.run_jupyter_book(tmp_path, strict=True, jobs=3) == 0
    cmd = calls["cmd"]
    assert cmd[1] == "-c" and cmd[3:] == ["3", "build", str(tmp_path), "-W", "-n", "--keep-going"]
    assert calls["env"]["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 3))
    # run the snippet with jupyter-book's build_sphinx replaced by a recorder
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, sys, jupyter_book.sphinx as s\n"
        "def fake(*args, **kw):\n"
        "    print('JOBS', json.dumps(kw.get('jobs')))\n"
        "    raise SystemExit(0)\n"
        "s.build_sphinx = fake\n"
        f"sys.argv = ['-c', '3', 'build', {str(tmp_path / 'bk')!r}]\n"
        f"exec(compile({book.JUPYTER_BOOK_PARALLEL!r}, 'snippet', 'exec'))\n"
    )
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "bk" / "intro.md").write_text("# intro\n")
    out = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=120)
    assert "JOBS 3" in out.stdout, out.stdout + out.stderr


def _parallel_extension():
    import importlib.util

    spec = importlib.util.spec_from_file_location("diffmath_parallel", BOOK / "_ext" / "diffmath_parallel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parallel_extension_declares_only_undeclared_extensions():
    """Only an extension that declared nothing is marked safe; one that declared itself unsafe stays unsafe."""
    from types import SimpleNamespace

    mod = _parallel_extension()
    undeclared, unsafe = mod.PARALLEL_SAFE
    app = SimpleNamespace(
        extensions={
            undeclared: SimpleNamespace(parallel_read_safe=None, parallel_write_safe=None),
            unsafe: SimpleNamespace(parallel_read_safe=False, parallel_write_safe=None),
            "other": SimpleNamespace(parallel_read_safe=None, parallel_write_safe=None),
        }
    )
    mod._declare(app)
    assert app.extensions[undeclared].parallel_read_safe is True and app.extensions[undeclared].parallel_write_safe is True
    assert app.extensions[unsafe].parallel_read_safe is False and app.extensions[unsafe].parallel_write_safe is True
    assert app.extensions["other"].parallel_read_safe is None


def test_parallel_extension_gives_sphinx_proof_an_empty_merge():
    """After setup, sphinx-proof's domain merges (nothing) instead of raising NotImplementedError."""
    from types import SimpleNamespace

    from sphinx.domains import Domain
    from sphinx_proof.domain import ProofDomain

    connected = []
    app = SimpleNamespace(connect=lambda event, fn: connected.append(event))
    meta = _parallel_extension().setup(app)
    assert meta == {"parallel_read_safe": True, "parallel_write_safe": True} and connected == ["builder-inited"]
    assert ProofDomain.merge_domaindata is not Domain.merge_domaindata
    assert ProofDomain.merge_domaindata(None, {"a"}, {"version": 0}) is None


def test_quantity_names_are_typeset():
    """ASCII formulas of measurement names become inline math (Greek names as symbols); what a table cell or
    MathJax cannot take is left alone; surrounding prose and punctuation stay outside the formula."""
    from diffmath.book import typeset_quantity

    assert typeset_quantity("rel. error vs delta (e^{KT} - 1)/K") == "rel. error vs delta ($e^{KT}$ - 1)/K"
    assert typeset_quantity("d/sigma^2, x_t:") == r"$d/\sigma^2$, $x_t$:"
    assert typeset_quantity("E[(a) h(x_t)] = 0") == "E[(a) $h(x_t)$] = 0"
    assert typeset_quantity("max |x_t| and a_{b") == "max $|x_t|$ and a_{b"  # a pipe stays inside; unbalanced braces
    assert typeset_quantity("plain words only") == "plain words only"


def test_figure_cells_are_folded_in_the_sources():
    """Every code cell of a chapter that draws (matplotlib) carries the hide-input tag: the figure stays, its code is
    one click away. The browser test checks the same on the built pages."""
    import re

    draw = re.compile(r"\bplt\.|\.plot\(|imshow|fig\b|ax\.")
    offenders = []
    for path in sorted((Path(__file__).resolve().parents[1] / "book").glob("*.md")):
        for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", path.read_text(encoding="utf8"), re.S):
            if draw.search(m.group(1)) and not re.match(r":tags: \[[^\]]*hide-input", m.group(1)):
                offenders.append(f"{path.name}: {m.group(1)[:60]!r}")
    assert not offenders, offenders
