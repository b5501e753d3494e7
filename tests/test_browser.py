"""The built book, opened in a real browser: every chapter's math is typeset, offline.

A session fixture builds the book exactly as ``scripts/book.sh`` does, minus the set-up —
``diffmath verify --json -j N`` (outcomes shared with ``tests/test_claims.py`` through the ledger
cache), ``generate`` (the experiments from their cache), ``jupyter-book build -W -n --keep-going`` —
into a temporary copy of ``book/``, so it works on a fresh clone and leaves the real ``book/_build``
alone. Then every page of the table of contents is served from 127.0.0.1
and opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``; several browsers side by
side, :func:`browser_count`). For each page the
test waits for MathJax, then asserts that math was typeset, that no MathJax error and no raw TeX
is left in the visible text, that the measurement tables' quantity names show no untypeset ASCII formula, and
that nothing was loaded from outside the machine; it keeps a screenshot in ``test-artifacts/``. Every page's
figure-drawing code must sit behind a toggle (checked on the built HTML).

Without chromium or chromedriver the browser tests are skipped (with the reason); with
``DIFFMATH_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from diffmath import book

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.slow


def _toc_pages() -> list[str]:
    """Every document of ``book/_toc.yml``, in reading order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(p).with_suffix("")) for p in pages]


PAGES = _toc_pages()


def _binary(env: str, default: str, name: str) -> str | None:
    path = os.environ.get(env, default)
    if Path(path).is_file():
        return path
    return shutil.which(name)


# ----------------------------------------------------------------------------------------------
# the build
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> dict:
    """Build a temporary copy of the book: verify -> generate (with the experiments) -> jupyter-book build."""
    src = tmp_path_factory.mktemp("book-build") / "book"
    shutil.copytree(BOOK, src, ignore=shutil.ignore_patterns("_build", "_generated"))
    ledger = src / "_generated" / "ledger.json"
    book.write_experiments(src)  # first: the sampler table is the longest computation, and claims read it
    verify_rc = book.run_verify(ledger)
    assert ledger.is_file(), f"diffmath verify (exit {verify_rc}) wrote no ledger at {ledger}"
    book.generate(src, ledger)
    build_rc = book.run_jupyter_book(src, strict=True)
    assert build_rc == 0, "jupyter-book build -W -n --keep-going failed (its output is above)"
    html = book.html_dir(src)
    assert (html / "index.html").is_file()
    return {"html": html, "verify_rc": verify_rc, "ledger": ledger}


def test_book_builds_with_every_page(built_book):
    for page in PAGES:
        assert (built_book["html"] / f"{page}.html").is_file(), page


def test_claim_checks_pass_in_the_book_build(built_book):
    assert built_book["verify_rc"] == 0, "diffmath verify reported a failed claim; see the ledger page"


_REMOTE = re.compile(r"""<(?:script|img|iframe)\b[^>]*\bsrc\s*=\s*["'](?:https?:)?//""", re.I)
_REMOTE_LINK = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["'](?:https?:)?//[^"']*["'][^>]*>""", re.I)


def test_no_asset_is_loaded_from_the_internet(built_book):
    html = built_book["html"]
    offenders = []
    for page in sorted(html.rglob("*.html")):
        text = page.read_text(encoding="utf8", errors="replace")
        offenders += [f"{page.name}: {m.group(0)[:120]}" for m in _REMOTE.finditer(text)]
        for m in _REMOTE_LINK.finditer(text):
            tag = m.group(0)
            if re.search(r"""rel\s*=\s*["'](?:stylesheet|preload|modulepreload|icon)""", tag, re.I):
                offenders.append(f"{page.name}: {tag[:120]}")
    assert not offenders, "remote assets:\n" + "\n".join(offenders)
    # MathJax itself is the local copy sphinx-mathjax-offline installs.
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    toy = (html / "toy-lab.html").read_text(encoding="utf8")
    assert re.search(r"""<script[^>]+src=["']_static/mathjax/tex-chtml\.js""", toy)


def test_executed_chapters_show_their_figures(built_book):
    """The toy-lab chapter's code ran and its figures made it into the page (5 of them)."""
    page = (built_book["html"] / "toy-lab.html").read_text(encoding="utf8")
    images = re.findall(r"""<img[^>]+src=["'](_images/[^"']+\.png)""", page)
    assert len(images) >= 5, f"toy-lab.html shows {len(images)} figures: {images}"
    for src in images:
        assert (built_book["html"] / src).stat().st_size > 5000, src
    assert "Traceback" not in page


def test_chapter_21_prose_matches_the_sampler_table(built_book):
    """The sentences of the mean-value-sampling chapter (and C21.12's remark) that quote the table
    hold in the table this build generated: if the benchmark's numbers move, this fails and the prose
    must be rewritten."""
    from diffmath import sampler_table as T

    res = json.loads((built_book["ledger"].parent / "experiments" / "sampler-table.json").read_text())
    plain = [lab for lab, _, afs in T.ROWS if afs is not True]
    tables = res["tables"]
    for key, tab in tables.items():
        e, h, m = (tab[n] for n in ("euler", "heun", "dpm_solver_2"))
        assert all(e[n] < h[n] and e[n] < m[n] for n in ("3", "5")), key  # DDIM beats both at NFE <= 5
        assert 9.5 <= h["3"] / e["3"] <= 21.5, key  # "10 to 21 times"
        for n in ("3", "5"):
            assert T.best(res, key, int(n), plain) == "amed_plugin", (key, n)
        assert all(tab["amed"][n] < m[n] for n in ("3", "5", "7", "9")), key  # AMED-Solver beats DPM-Solver-2
    assert [(k, n) for k, tab in tables.items() for n in ("3", "5", "7", "9") if tab["amed"][n] < tab["ipndm"][n]] == [("d=2", "3")]
    for key in ("d=16", "d=256"):
        assert all(T.best(res, key, n, plain) == "ipndm" for n in (7, 9)), key
    first = {k: next((n for n in res["nfe"] if tab["heun"][str(n)] < tab["euler"][str(n)]), None) for k, tab in tables.items()}
    assert first == {"d=2": 25, "d=16": 25, "d=256": None}  # "Heun overtakes DDIM late, at NFE 25 on two of the mixtures"
    # the robust measures: median per-point error and the Frechet distance (d <= 16)
    pairs = [(k, n) for k in tables for n in (3, 5, 7, 9)]
    ranks = lambda measure, a, b: [T.compare(res, measure, k, n, a, b) for k, n in pairs if T.compare(res, measure, k, n, a, b)]
    assert ranks("median", "amed", "ipndm").count("better") == 5 and len(ranks("median", "amed", "ipndm")) == 12
    assert ranks("tables", "amed", "ipndm").count("better") == 1
    fr = ranks("frechet", "amed", "ipndm")
    assert len(fr) == 8 and fr.count("overlap") == 6
    assert ranks("median", "amed_plugin", "ipndm").count("better") == 9
    assert ranks("frechet", "amed_plugin", "ipndm").count("better") == 2
    floor = res["frechet"]["d=16"]["exact samples"]
    for n in ("15", "25"):  # "from NFE 15 on, every sampler's value lies inside the interval of exact samples"
        lo, hi = floor[n]["mean"] - floor[n]["half"], floor[n]["mean"] + floor[n]["half"]
        assert all(lo <= v[n]["mean"] <= hi for v in res["frechet"]["d=16"].values() if v.get(n)), n


def test_ledger_links_resolve_to_claim_sections(built_book):
    """The ledger's {prf:ref} links point at the theorem boxes in the chapters."""
    from diffmath.claims import get

    ledger = json.loads(built_book["ledger"].read_text())
    page = (built_book["html"] / "ledger.html").read_text(encoding="utf8")
    for outcome in ledger["claims"]:
        claim = get(outcome["id"])
        href = f'href="{claim.chapter}.html#{claim.label}"'
        assert href in page, f"ledger has no link {href}"
        chapter = (built_book["html"] / f"{claim.chapter}.html").read_text(encoding="utf8")
        assert f'id="{claim.label}"' in chapter, f"{claim.chapter}.html has no anchor {claim.label}"


# ----------------------------------------------------------------------------------------------
# the browser
# ----------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def _chromium_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver; skipped (or failed in CI) when missing."""
    chromium = _binary("DIFFMATH_CHROMIUM", "/usr/bin/chromium", "chromium")
    driver_path = _binary("DIFFMATH_CHROMEDRIVER", "/usr/bin/chromedriver", "chromedriver")
    if chromium is None or driver_path is None:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver_path)) if p is None)
        reason = f"{missing} not found: apt-get install chromium chromium-driver (CI's .ci/run does)"
        if os.environ.get("DIFFMATH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return chromium, driver_path


def _start_browser(chromium: str, driver_path: str, profile: Path):
    """One headless Chromium through chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_script_timeout(90)
    drv.set_page_load_timeout(90)
    return drv


@pytest.fixture(scope="session")
def server(built_book):
    """The built HTML served on 127.0.0.1 (a free port), for the length of the session."""
    handler = functools.partial(_QuietHandler, directory=str(built_book["html"]))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


_WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const start = Date.now();
if (!document.querySelector('script[src*="mathjax"]')) { done('no MathJax on the page'); return; }
(function poll() {
  const MJ = window.MathJax;
  if (MJ && MJ.startup && MJ.startup.promise) {
    MJ.startup.promise.then(() => done('typeset'), (e) => done('error: ' + e));
  } else if (Date.now() - start > 30000) {
    done(MJ ? 'MathJax never started' : 'no MathJax on the page');
  } else {
    setTimeout(poll, 100);
  }
})();
"""

# The page's prose as a reader sees it: the article, without code, scripts and typeset math.
_VISIBLE_PROSE = """
const root = document.querySelector('article') || document.querySelector('main') || document.body;
const clone = root.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
return clone.textContent;
"""

_RAW_TEX = [
    (re.compile(r"\\\(|\\\)|\\\[|\\\]"), r"\( \) \[ \] delimiters"),
    (re.compile(r"\$\$"), "$$ delimiters"),
    (re.compile(r"\$[^$\s][^$\n]{0,200}?\$"), "$...$ inline math"),
    (re.compile(r"\\(?:begin|end)\{"), r"\begin/\end environments"),
    (re.compile(r"\\[A-Za-z]{2,}"), "TeX commands"),
]

# The measurement tables' quantity names as a reader sees them (typeset math removed): ASCII formulas must have been
# typeset (diffmath.book.typeset_quantity), not left as e^{KT} or x_{t}.
_QUANTITY_CELLS = """
const out = [];
document.querySelectorAll('table').forEach(t => {
  const head = t.querySelector('thead th, tr th');
  if (!head || head.textContent.trim() !== 'quantity') return;
  t.querySelectorAll('tbody tr').forEach(r => {
    const cell = r.querySelector('td');
    if (!cell) return;
    const clone = cell.cloneNode(true);
    clone.querySelectorAll('mjx-container, code').forEach(e => e.remove());
    out.push(clone.textContent);
  });
});
return out;
"""
_ASCII_MATH = re.compile(r"[A-Za-z0-9)}\]]\^[A-Za-z0-9{(-]|[A-Za-z]_[A-Za-z0-9{]")


def _render(drv, server: str, html: Path, page: str) -> dict:
    """Open one page, wait for MathJax, keep a screenshot; what the page test asserts on."""
    source = (html / f"{page}.html").read_text(encoding="utf8")
    out = {"has_math": bool(re.search(r'class="math\b|class="[^"]*\bmath notranslate', source))}
    drv.set_window_size(1280, 900)
    drv.get(f"{server}/{page}.html")
    out["status"] = drv.execute_async_script(_WAIT_FOR_MATHJAX)
    out["n_typeset"] = len(drv.find_elements("css selector", "mjx-container"))
    height = drv.execute_script("return Math.min(document.documentElement.scrollHeight, 12000)")
    drv.set_window_size(1280, max(900, int(height)))
    drv.save_screenshot(str(ARTIFACTS / f"book-{page}.png"))
    drv.set_window_size(1280, 900)
    out["errors"] = [e.text for e in drv.find_elements("css selector", "mjx-merror")]
    out["prose"] = drv.execute_script(_VISIBLE_PROSE)
    out["quantities"] = drv.execute_script(_QUANTITY_CELLS)
    out["loaded"] = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat([...document.scripts].map(s => s.src).filter(Boolean))"
    )
    return out


def browser_count() -> int:
    """Browsers opened side by side: ``$DIFFMATH_BROWSERS``, else the CPUs (at most 4)."""
    return int(os.environ.get("DIFFMATH_BROWSERS") or min(4, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def rendered(tmp_path_factory, server, built_book) -> dict:
    """Every page of the table of contents opened in headless Chromium, :func:`browser_count` browsers side by
    side (each in its own thread, taking the next page from a shared queue): {page: what :func:`_render` saw,
    or the exception it raised}."""
    import queue

    chromium, driver_path = _chromium_paths()
    pytest.importorskip("selenium.webdriver")
    ARTIFACTS.mkdir(exist_ok=True)
    todo: queue.Queue = queue.Queue()
    for page in sorted(PAGES, key=lambda p: -(built_book["html"] / f"{p}.html").stat().st_size):  # largest first
        todo.put(page)
    results: dict = {}
    profiles = [tmp_path_factory.mktemp(f"chromium-profile-{i}") for i in range(browser_count())]

    def work(profile: Path) -> None:
        failure = None
        try:
            drv = _start_browser(chromium, driver_path, profile)
        except Exception as exc:  # reported by every page this browser would have opened
            drv, failure = None, exc
        try:
            while True:
                try:
                    page = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[page] = failure if drv is None else _render(drv, server, built_book["html"], page)
                except Exception as exc:
                    results[page] = exc
        finally:
            if drv is not None:
                drv.quit()

    threads = [threading.Thread(target=work, args=(profile,)) for profile in profiles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


_CELL = re.compile(r'<div class="cell(?P<tags>(?: tag_[^ "]+)*) docutils container"')  # a cell, not its cell_input/cell_output


def figure_cells(html_text: str) -> list[tuple[str, bool]]:
    """Each executed cell of a page that shows a figure: (its tags, whether its input sits behind a toggle)."""
    starts = [m for m in _CELL.finditer(html_text)]
    out = []
    for m, nxt in zip(starts, starts[1:] + [None]):
        segment = html_text[m.start(): nxt.start() if nxt else len(html_text)]
        if "cell_output" in segment and "<img" in segment.split("cell_output", 1)[1]:
            folded = "tag_hide-input" in m.group("tags") and bool(re.search(r"<details[^>]*hide[^>]*above-input", segment))
            out.append((m.group("tags").strip(), folded))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_figure_code_is_folded(built_book, page):
    """The book reads as mathematics: the code that draws a figure is one click away (a toggle above the figure),
    still executed (the figure is there)."""
    cells = figure_cells((built_book["html"] / f"{page}.html").read_text(encoding="utf8"))
    unfolded = [tags for tags, folded in cells if not folded]
    assert not unfolded, f"{page}: {len(unfolded)} of {len(cells)} figure cells show their code: {unfolded}"


@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES)
def test_page_math_is_typeset(rendered, server, page):
    seen = rendered[page]
    if isinstance(seen, Exception):
        raise seen
    if seen["has_math"]:
        assert seen["status"] == "typeset", f"{page}: MathJax status {seen['status']!r}"
        assert seen["n_typeset"] > 0, f"{page}: the page has math but no mjx-container"
    assert not seen["errors"], f"{page}: MathJax errors {seen['errors'][:5]}"

    for pattern, what in _RAW_TEX:
        hits = sorted({m.group(0) for m in pattern.finditer(seen["prose"])})
        assert not hits, f"{page}: raw TeX left in the text ({what}): {hits[:10]}"
    untypeset = [q for q in seen["quantities"] if _ASCII_MATH.search(q)]
    assert not untypeset, f"{page}: measurement names with untypeset formulas: {untypeset[:5]}"

    origin = server + "/"
    remote = [u for u in seen["loaded"] if not u.startswith((origin, "data:", "blob:", "about:"))]
    assert not remote, f"{page}: loaded from outside the machine: {remote}"
