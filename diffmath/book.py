"""The book's claim pages, generated from the claim registry and a ``diffmath verify`` ledger.

Nothing in the book restates a claim by hand: every theorem block, derivation, check table, the
ledger page and the errata page come from :mod:`diffmath.claims` and the JSON ledger written by
``diffmath verify --json``. The generated files live in ``book/_generated/`` (not tracked by git,
excluded from Sphinx's own document discovery) and the chapters pull them in with MyST
``{include}`` directives:

* ``_generated/claims/<id>.md`` — one per claim: a ``{prf:theorem}`` block labelled
  ``claim.label`` holding the statement, its source, kind and verified status; a ``{prf:proof}``
  block with the sympy-checked derivation; the numeric check's measurements;
* ``_generated/ledger.md`` — every claim, its status, a link to its section and its tests;
* ``_generated/errata.md`` — every claim the suite found false as stated, with its counterexample;
* ``_generated/experiments/<name>.json`` (and ``.md`` when the experiment renders itself) — every
  registered experiment of :mod:`diffmath.experiments` (the sampler table of chapter 21, the
  resolution experiments of chapters 22-23, ...), read from the experiment cache or computed once.

Command line::

    python -m diffmath.book generate [--book-dir book] [--ledger book/_generated/ledger.json]
    python -m diffmath.book build    [--book-dir book] [--ledger ...] [--no-verify] [--no-strict]

``build`` is what ``scripts/book.sh`` runs: the experiments (from their cache, or computed), then
``diffmath verify -j N`` (outcomes of unchanged code come from the ledger cache), then ``generate``,
then ``jupyter-book build``
failing on any Sphinx warning — skipped when nothing that goes into the book has changed since the
last build into the same folder (a stamp of the library's code version, the book's sources, the
ledger's outcomes and the experiments' results).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence

STATUSES = ("verified", "refuted", "empirical", "documented", "failed")
NOT_RUN = "not run"

_STATUS_BADGE = {
    "verified": "✓ verified",
    "refuted": "refuted (counterexample verified)",
    "empirical": "empirical (measured)",
    "documented": "documented (not a mathematical claim; not checked)",
    "failed": "✗ **FAILED**",
    NOT_RUN: "not run",
}

_REL_TEX = {"<=": "≤", ">=": "≥"}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _default_book_dir() -> Path:
    """``book/`` of the repository this file lives in, else ``./book``."""
    here = Path(__file__).resolve().parent.parent / "book"
    return here if here.is_dir() else Path("book")


def _load_ledger(ledger_path) -> dict:
    if ledger_path is None:
        return {"device": None, "generated": None, "claims": []}
    path = Path(ledger_path)
    if not path.is_file():
        return {"device": None, "generated": None, "claims": []}
    data = json.loads(path.read_text(encoding="utf8"))
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ValueError(f"ledger {path} is not a diffmath verify ledger (no 'claims' list)")
    return data


def bib_keys(book_dir) -> set[str]:
    """The citation keys of ``book/references.bib`` (empty when there is none)."""
    bib = Path(book_dir) / "references.bib"
    if not bib.is_file():
        return set()
    return set(re.findall(r"^\s*@\w+\s*\{\s*([^,\s]+)\s*,", bib.read_text(encoding="utf8"), re.M))


def article_key(part: int) -> str:
    """The references.bib key of Su's article number ``part`` of the series."""
    return f"su-part{part}"


def _cell(text: str) -> str:
    """Text safe inside one markdown table cell (no newlines, escaped pipes)."""
    return " ".join(str(text).split()).replace("|", r"\|")


def _code(text: str) -> str:
    """Inline code for a table cell: backticks chosen longer than any run inside."""
    text = " ".join(str(text).split())
    runs = [len(r) for r in re.findall(r"`+", text)] or [0]
    fence = "`" * (max(runs) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", r"\|")


def _fence(body: str, minimum: int = 3) -> str:
    """A colon fence longer than any colon fence inside ``body``."""
    runs = [len(m) for m in re.findall(r"^\s*(:{3,})", body, re.M)] or [0]
    return ":" * max(minimum, max(runs) + 1)


def _num(x) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _cell(x)
    return f"{v:.3g}"


def _source_md(claim, keys: set[str]) -> str:
    """The claim's source in words, with citations where references.bib knows the work."""
    src = claim.source
    bits = []
    if getattr(src, "part", None):  # part 0 (or None) is the library's own foundations
        key = article_key(src.part)
        bits.append(f"part {src.part} {{cite:p}}`{key}`" if key in keys else f"part {src.part}")
    if getattr(src, "equation", None):
        eq = str(src.equation)
        bits.append(f"eq. {eq}" if eq.startswith("(") else f"eq. ({eq})")
    paper = getattr(src, "paper", None)
    if paper:
        cited = [k.strip() for k in re.split(r"[;,]", str(paper))]
        if cited and all(k in keys for k in cited):
            bits.append("{cite:p}`" + ",".join(cited) + "`")
        else:
            bits.append(str(paper))
    if getattr(src, "note", None):
        bits.append(str(src.note))
    return ", ".join(bits) if bits else "diffmath (the library's own foundations)"


#: words of the claims' plain-text quantity names that are symbols when they sit inside a formula
_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "eta", "theta", "lambda", "mu", "nu", "pi", "rho",
          "sigma", "tau", "phi", "psi", "omega", "Sigma", "Delta", "Lambda", "Phi")
_MATHY = re.compile(r"[\^]|_[A-Za-z0-9{]")


def typeset_quantity(text: str) -> str:
    r"""A measurement's plain-text name with its formulas typeset: each space-separated token written in ASCII math
    (it has a ``^``, a ``\``, or a subscript ``_x``) becomes inline math, with Greek names as symbols and
    ``*`` as :math:`\cdot` (``delta (e^{KT} - 1)/K`` -> ``delta ($e^{KT}$ - 1)/K``). Tokens with a ``$`` or unbalanced braces are left as
    they are; a pipe may stay inside (the table cell escapes it, and the table parser drops the escape before the
    math is read). Leading and trailing punctuation stays outside the formula."""
    out = []
    for token in str(text).split():
        core = token.strip(",;:")
        lead = token[: len(token) - len(token.lstrip(",;:"))]
        trail = token[len(lead) + len(core):]
        # an opening parenthesis not closed inside the token, or a closing one not opened, stays outside
        for o, c in ("()", "[]"):
            while core.startswith(o) and core.count(o) > core.count(c):
                lead, core = lead + o, core[1:]
            while core.endswith(c) and core.count(c) > core.count(o):
                core, trail = core[:-1], c + trail
        if not _MATHY.search(core) or "$" in core or core.count("{") != core.count("}") or core.startswith(("http", "`")):
            out.append(token)
            continue
        tex = re.sub(r"(?<![A-Za-z\\])(" + "|".join(_GREEK) + r")(?![A-Za-z])", r"\\\1", core).replace("*", r"\cdot ")
        out.append(f"{lead}${tex}${trail}")
    return " ".join(out)


def _measurement_table(check: dict) -> str:
    rows = ["| quantity | value | bound | passed |", "| --- | ---: | ---: | :---: |"]
    for m in check.get("measurements", []):
        rel = _REL_TEX.get(m.get("relation", "<="), m.get("relation", ""))
        quantity = _cell(typeset_quantity(m.get("quantity", "")))
        if m.get("note"):
            quantity += f" ({_cell(typeset_quantity(m['note']))})"
        rows.append(
            f"| {quantity} | {_num(m.get('value'))} | {rel} {_num(m.get('bound'))} | "
            f"{'✓' if m.get('passed') else '✗ **no**'} |"
        )
    return "\n".join(rows)


def _check_md(check: dict, heading: str = "Numeric check") -> str:
    setting = check.get("setting") or "—"
    device = check.get("device") or "?"
    verdict = "every measurement within its bound" if check.get("passed") else "**a measurement is out of bounds**"
    return (
        f"**{heading}** ({verdict}). Setting: {setting}. Device: `{device}`.\n\n"
        + _measurement_table(check)
        + "\n"
    )


# ----------------------------------------------------------------------------------------------
# pages
# ----------------------------------------------------------------------------------------------


def claim_page(claim, outcome: Optional[dict], keys: set[str], device: Optional[str] = None) -> str:
    """The MyST markdown of one claim: theorem, status, derivation, numeric check, tests."""
    status = outcome.get("status", NOT_RUN) if outcome else NOT_RUN
    kind = claim.kind.value if hasattr(claim.kind, "value") else str(claim.kind)

    theorem_body = claim.statement.strip() + "\n\n"
    theorem_body += (
        f"*Source:* {_source_md(claim, keys)} · *kind:* {kind} · "
        f"*status:* {_STATUS_BADGE.get(status, status)} ({{ref}}`ledger <claim-ledger>`)\n"
    )
    fence = _fence(theorem_body, 4)
    out = [
        f"<!-- generated by diffmath.book from claim {claim.id}; do not edit -->",
        "",
        f"{fence}{{prf:theorem}} {claim.id}: {claim.title}",
        f":label: {claim.label}",
        "",
        theorem_body.rstrip(),
        fence,
        "",
    ]

    derivation = getattr(claim, "derivation", None)
    if derivation is not None:
        d_out = (outcome or {}).get("derivation") or None
        if d_out is None:
            verdict = "each step below is checked by sympy (`diffmath verify` has not run it for this build)."
        elif d_out.get("passed"):
            assumed = derivation.assumed_steps() if hasattr(derivation, "assumed_steps") else []
            if assumed:
                nums = ", ".join(f"({k})" for k in assumed)
                verdict = (
                    f"sympy checked every step below except {nums}, "
                    f"{'a premise' if len(assumed) == 1 else 'premises'} the derivation assumes, and verified every one it checked."
                )
            else:
                verdict = "each step below is checked by sympy, and sympy verified every one."
        else:
            fails = "; ".join(_cell(f) for f in d_out.get("failures", [])) or "unknown"
            verdict = f"each step below is checked by sympy; **sympy could not verify**: {fails}."
        setting = (derivation.setting or "").strip()
        hyps = derivation.hypotheses() if hasattr(derivation, "hypotheses") else []
        hyp_text = (
            "*Hypotheses* (the inequality steps' gaps are shown to be nonnegative combinations of these): "
            + "; ".join(f"${h.to_latex()}$ ({h.why})" for h in hyps)
            + ".\n\n"
            if hyps
            else ""
        )
        proof_body = (
            (f"*Setting.* {setting}\n\n" if setting else "")
            + hyp_text
            + f"Derivation — {verdict}\n\n"
            + "```{math}\n"
            + derivation.to_latex().strip()
            + "\n```\n"
        )
        reasons = derivation.justifications() if hasattr(derivation, "justifications") else []
        if reasons:
            proof_body += "\n*Steps:* " + "; ".join(reasons) + ".\n"
        pfence = _fence(proof_body, 4)
        out += [f"{pfence}{{prf:proof}}", proof_body.rstrip(), pfence, ""]

    check = (outcome or {}).get("check")
    if check:
        out += [_check_md(check), ""]
    elif getattr(claim, "check", None) is not None and outcome is None:
        out += ["*Numeric check:* not run for this build (run `diffmath verify`).", ""]

    error = (outcome or {}).get("error")
    if error:
        out += ["```{error}", f"The check raised: {error}", "```", ""]

    remark = (getattr(claim, "remark", "") or "").strip()
    if remark:
        out += ["```{note}", remark, "```", ""]

    tests = tuple(getattr(claim, "tests", ()) or ())
    if tests:
        out += ["*Tests:* " + ", ".join(_code(t) for t in tests), ""]
    plants = tuple(getattr(claim, "plants", ()) or ())
    if plants:
        out += [
            "*Negative controls* (the check fails with each of these mistakes planted in the library; "
            "`tests/test_negative_controls.py`): "
            + "; ".join(
                _code(p.target + (f"[{p.index}]" if p.index is not None else "")) + f" {p.change_text()}"
                + (f", {p.why}" if p.why else "")
                + (f" (measured as about {p.reads:g})" if getattr(p, "reads", None) is not None else "")
                for p in plants
            )
            + ".",
            "",
        ]
    return "\n".join(out)


def _ref(claim) -> str:
    return f"{{prf:ref}}`{claim.id} <{claim.label}>`"


def ledger_page(claims, outcomes: dict, ledger: dict, keys: set[str]) -> str:
    """Every claim with its status, source, tests and a link to its section."""
    counts = {s: 0 for s in (*STATUSES, NOT_RUN)}
    for c in claims:
        counts[outcomes.get(c.id, {}).get("status", NOT_RUN)] += 1
    when = ledger.get("generated") or "never"
    device = ledger.get("device") or "—"
    tally = ", ".join(f"**{n}** {s}" for s, n in counts.items() if n or s in STATUSES)
    out = [
        "<!-- generated by diffmath.book; do not edit -->",
        "",
        f"{len(claims)} claims: {tally}. "
        f"Checks run by `diffmath verify` at {when} on device `{device}`.",
        "",
        "| claim | title | kind | status | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in claims:
        status = outcomes.get(c.id, {}).get("status", NOT_RUN)
        kind = c.kind.value if hasattr(c.kind, "value") else str(c.kind)
        out.append(
            f"| {_ref(c)} | {_cell(c.title)} | {kind} | {_STATUS_BADGE.get(status, status)} | "
            f"{_cell(_source_md(c, keys))} |"
        )
    out += ["", "**Tests behind each claim** (run one with `python -m pytest \"<node id>\"`):", ""]
    for c in claims:
        tests = ", ".join(_code(t) for t in getattr(c, "tests", ())) or "no test names it yet"
        out.append(f"- {_ref(c)}: {tests}")
    return "\n".join(out) + "\n"


def _verdict_group(title: str, intro: str, claims, field: str, outcomes: dict, keys: set[str]) -> list[str]:
    """A section of the errata page: one bullet per claim with its ``field`` text (erratum or extension)."""
    if not claims:
        return []
    out = [f"## {title}", "", intro, ""]
    for c in claims:
        status = outcomes.get(c.id, {}).get("status", NOT_RUN)
        out.append(
            f"- **{c.id}** ({_ref(c)}; {_source_md(c, keys)}; ledger status: "
            f"{_STATUS_BADGE.get(status, status)}): {getattr(c, field).strip()}"
        )
    return out + [""]


def errata_page(claims, outcomes: dict, keys: set[str]) -> str:
    """Every claim of kind *refuted* (the statement as made, the verified counterexample, the
    correction), then every claim with an ``erratum`` (imprecise as written, right as corrected)."""
    refuted = [c for c in claims if getattr(c.kind, "value", c.kind) == "refuted"]
    imprecise = [c for c in claims if (getattr(c, "erratum", "") or "").strip() and c not in refuted]
    extended = [c for c in claims if (getattr(c, "extension", "") or "").strip() and c not in refuted + imprecise]
    out = ["<!-- generated by diffmath.book; do not edit -->", ""]
    if not refuted and not imprecise and not extended:
        out += [
            "No errata yet in the chapters built so far: every claim checked up to now holds as "
            "stated (see the {ref}`claim ledger <claim-ledger>`).",
            "",
        ]
        return "\n".join(out)
    for c in refuted:
        o = outcomes.get(c.id, {})
        status = o.get("status", NOT_RUN)
        out += [
            f"## {c.id}: {c.title}",
            "",
            f"Source: {_source_md(c, keys)}. Section: {_ref(c)}. Ledger status: "
            f"{_STATUS_BADGE.get(status, status)}.",
            "",
            "**As stated:**",
            "",
            c.statement.strip(),
            "",
        ]
        if o.get("check"):
            out += [_check_md(o["check"], heading="Counterexample"), ""]
        else:
            out += ["*Counterexample:* not run for this build (run `diffmath verify`).", ""]
        remark = (getattr(c, "remark", "") or "").strip()
        if remark:
            out += ["**Correction:**", "", remark, ""]
    out += _verdict_group(
        "Imprecise as written",
        "These claims hold, in the corrected form each section states and checks; the article's "
        "own wording or coefficient differs as follows.",
        imprecise, "erratum", outcomes, keys,
    )
    out += _verdict_group(
        "Extensions",
        "The article is right in these claims; the suite sharpens or generalises what it says.",
        extended, "extension", outcomes, keys,
    )
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps Sphinx's incremental builds quiet)."""
    if path.is_file() and path.read_text(encoding="utf8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf8")
    return True


def write_experiments(book_dir) -> list[Path]:
    """``_generated/experiments/<name>.json`` and ``.md`` for every registered experiment (cached or computed)."""
    from diffmath import experiments

    out = Path(book_dir) / "_generated" / "experiments"
    written = []
    for exp in experiments.all_experiments():
        res = experiments.result(exp.name)
        path = out / f"{exp.name}.json"
        _write(path, json.dumps(res, indent=1, sort_keys=True) + "\n")
        written.append(path)
        if exp.markdown is not None:
            _write(out / f"{exp.name}.md", exp.markdown(res))
            written.append(out / f"{exp.name}.md")
    return written


def generate(book_dir=None, ledger_path=None, claims: Optional[Sequence] = None, experiments: bool = True) -> list[Path]:
    """Write ``book_dir/_generated/{claims/<id>.md, ledger.md, errata.md, experiments/...}``; return their paths.

    ``ledger_path`` is a JSON ledger of ``diffmath verify --json``; when it is ``None`` or missing,
    every claim is shown as *not run*. ``claims`` defaults to every registered claim. ``experiments``
    writes every registered experiment's result (computing those not yet cached).
    """
    book_dir = Path(book_dir) if book_dir is not None else _default_book_dir()
    if claims is None:
        from diffmath.claims import all_claims

        claims = all_claims()
    claims = list(claims)
    ledger = _load_ledger(ledger_path)
    outcomes = {o["id"]: o for o in ledger["claims"] if isinstance(o, dict) and "id" in o}
    keys = bib_keys(book_dir)

    gen = book_dir / "_generated"
    claim_dir = gen / "claims"
    claim_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    wanted = set()
    for c in claims:
        path = claim_dir / f"{c.id}.md"
        wanted.add(path.name)
        _write(path, claim_page(c, outcomes.get(c.id), keys, ledger.get("device")))
        written.append(path)
    for stale in claim_dir.glob("*.md"):
        if stale.name not in wanted:
            stale.unlink()
    _write(gen / "ledger.md", ledger_page(claims, outcomes, ledger, keys))
    _write(gen / "errata.md", errata_page(claims, outcomes, keys))
    written += [gen / "ledger.md", gen / "errata.md"]
    if experiments:
        written += write_experiments(book_dir)
    return written


# ----------------------------------------------------------------------------------------------
# build: verify -> generate -> jupyter-book build
# ----------------------------------------------------------------------------------------------


def run_verify(ledger_path, select: Iterable[str] = (), jobs: Optional[int] = None) -> int:
    """``python -m diffmath verify --json LEDGER -j N [SELECT...]``; its exit status.

    ``jobs`` defaults to ``$DIFFMATH_VERIFY_JOBS``, else the number of CPUs (at most 4)."""
    ledger_path = Path(ledger_path)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    if jobs is None:
        jobs = int(os.environ.get("DIFFMATH_VERIFY_JOBS") or min(4, os.cpu_count() or 1))
    cmd = [sys.executable, "-m", "diffmath", "verify", "--json", str(ledger_path), "-j", str(jobs), *select]
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


STAMP = ".diffmath-build-stamp"


def build_stamp(book_dir, ledger_path) -> str:
    """A fingerprint of everything that goes into the HTML: the library's code version, the book's own
    sources (not ``_build``, ``_generated``), the ledger's outcomes (not their timings or dates) and the
    experiments' results. Equal stamps: the previous build is current."""
    import hashlib

    from diffmath import experiments
    from diffmath.cache import code_version

    book_dir = Path(book_dir)
    h = hashlib.sha256(code_version().encode())
    for path in sorted(book_dir.rglob("*")):
        rel = path.relative_to(book_dir)
        if path.is_file() and rel.parts[0] not in ("_build", "_generated"):
            h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    ledger = _load_ledger(ledger_path)
    keep = ("id", "status", "passed", "derivation", "check", "error")
    h.update(json.dumps([{k: o.get(k) for k in keep} for o in ledger["claims"]], sort_keys=True).encode())
    h.update(json.dumps(ledger.get("device")).encode())
    for exp in experiments.all_experiments():
        h.update(json.dumps(experiments.result(exp.name), sort_keys=True).encode())
    return h.hexdigest()


#: ``python -c`` this, N, jupyter-book's arguments: jupyter-book's command line with Sphinx reading in N
#: processes (a separate interpreter that does not import diffmath, so torch stays out of Sphinx's forks)
JUPYTER_BOOK_PARALLEL = """
import functools, sys
import jupyter_book.sphinx
from jupyter_book.cli.main import main
jobs = int(sys.argv.pop(1))
jupyter_book.sphinx.build_sphinx = functools.partial(jupyter_book.sphinx.build_sphinx, jobs=jobs)
main(prog_name="jupyter-book")
"""


def book_jobs() -> int:
    """How many processes Sphinx reads the book's documents in: ``$DIFFMATH_BOOK_JOBS``, else twice the CPUs
    (at most 8). Reading a chapter executes its code, and Sphinx hands each process a fixed chunk of the
    documents (about ``n_documents / jobs``), so more chunks than cores balance the chapters better."""
    env = os.environ.get("DIFFMATH_BOOK_JOBS")
    if env:
        jobs = int(env)
        if jobs < 1:
            raise ValueError(f"DIFFMATH_BOOK_JOBS must be a positive integer, got {env!r}")
        return jobs
    return min(8, 2 * (os.cpu_count() or 1))


def run_jupyter_book(book_dir, strict: bool = True, output_dir=None, jobs: Optional[int] = None) -> int:
    """``jupyter-book build BOOK`` (``-W -n --keep-going`` when strict), its documents read (and the chapters
    executed) in ``jobs`` parallel processes (default :func:`book_jobs`); its exit status.

    jupyter-book 1.x has no ``-j`` option, but its build function passes ``jobs`` on to Sphinx: this runs
    jupyter-book's command line (:data:`JUPYTER_BOOK_PARALLEL`) with that argument set; the book's
    ``_ext/diffmath_parallel.py`` makes the parallel read possible. The chapters' kernels get
    ``OMP_NUM_THREADS = cpus // jobs`` (at least 1) unless the caller set it, so that parallel kernels do not
    oversubscribe the cores."""
    jobs = book_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    cmd = [sys.executable, "-c", JUPYTER_BOOK_PARALLEL, str(jobs), "build", str(book_dir)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if output_dir is not None:
        cmd += ["--path-output", str(output_dir)]
    print("$ jupyter-book", " ".join(cmd[4:]), f"  (Sphinx reading in {jobs} processes)", flush=True)
    env = dict(os.environ)
    # The chapters' figures come from matplotlib's inline backend in the kernel; a non-interactive
    # MPLBACKEND inherited from the caller (Agg, say) would silently drop every figure.
    env.pop("MPLBACKEND", None)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return subprocess.call(cmd, env=env)


def build(
    book_dir=None,
    ledger_path=None,
    verify: bool = True,
    strict: bool = True,
    output_dir=None,
    select: Iterable[str] = (),
    force: bool = False,
) -> int:
    """Run ``diffmath verify``, :func:`generate` (with the experiments) and ``jupyter-book build``; return an
    exit status.

    The book is built even when a check fails (the ledger then shows it as failed); the returned
    status is non-zero when verification or the build failed. ``strict`` turns every Sphinx warning
    into an error (``-W -n --keep-going``). Unless ``force``, the jupyter-book step is skipped when
    :func:`build_stamp` equals the stamp of the last successful build into the same folder.
    """
    book_dir = Path(book_dir) if book_dir is not None else _default_book_dir()
    ledger_path = Path(ledger_path) if ledger_path else book_dir / "_generated" / "ledger.json"
    status = 0
    write_experiments(book_dir)  # first: the longest computations, which some claims' checks read
    if verify:
        rc = run_verify(ledger_path, select)
        if rc != 0:
            print(f"diffmath verify exited {rc}: the book is built anyway, showing the failures.", flush=True)
            status = rc
    generate(book_dir, ledger_path)
    html = html_dir(book_dir, output_dir)
    stamp = build_stamp(book_dir, ledger_path)
    stamp_file = html / STAMP
    if not force and (html / "index.html").is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        print(f"the book is up to date ({html}): nothing that goes into it has changed since its last build", flush=True)
        return status
    rc = run_jupyter_book(book_dir, strict=strict, output_dir=output_dir)
    if rc != 0:
        print(f"jupyter-book build exited {rc}", flush=True)
        return rc
    stamp_file.write_text(stamp)
    return status


def html_dir(book_dir=None, output_dir=None) -> Path:
    """Where ``jupyter-book build`` writes the HTML."""
    base = Path(output_dir) if output_dir is not None else (Path(book_dir) if book_dir else _default_book_dir())
    return base / "_build" / "html"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffmath.book", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write book/_generated/ from the registry and a ledger")
    b = sub.add_parser("build", help="verify, generate, then jupyter-book build")
    for q in (g, b):
        q.add_argument("--book-dir", default=None, help="the book's folder (default: the repository's book/)")
        q.add_argument("--ledger", default=None, help="the JSON ledger (default: BOOK/_generated/ledger.json)")
    g.add_argument("--no-experiments", action="store_true", help="do not write (or compute) the experiments' results")
    b.add_argument("--no-verify", action="store_true", help="use the existing ledger, do not run the checks")
    b.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    b.add_argument("--path-output", default=None, help="build into this folder instead of BOOK/_build")
    b.add_argument("--force", action="store_true", help="run jupyter-book even when the book is up to date")
    b.add_argument("select", nargs="*", help="claim ids, parts or chapters to verify (default: all)")
    args = p.parse_args(argv)

    book_dir = Path(args.book_dir) if args.book_dir else _default_book_dir()
    ledger = Path(args.ledger) if args.ledger else book_dir / "_generated" / "ledger.json"
    if args.command == "generate":
        paths = generate(book_dir, ledger, experiments=not args.no_experiments)
        note = "" if ledger.is_file() else f" (no ledger at {ledger}: every claim shown as not run)"
        print(f"wrote {len(paths)} files under {book_dir / '_generated'}{note}")
        return 0
    rc = build(
        book_dir,
        ledger,
        verify=not args.no_verify,
        strict=not args.no_strict,
        output_dir=args.path_output,
        select=args.select,
        force=args.force,
    )
    index = html_dir(book_dir, args.path_output) / "index.html"
    if index.is_file():
        print(f"\nThe book: {index.resolve()}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
