"""The rendered book: equations typeset offline in headless Chromium, no broken internal links.

Builds the whole book once (the README's `make book` path: papermill, then Jupyter Book),
installs Debian's chromium when it is absent, and reads the pages as a browser shows them.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def html_dir() -> Path:
    """The book built from scratch (MIFD_TEST_BOOK=existing reads the last build instead, for
    checking pages while editing them)."""
    if os.environ.get("MIFD_TEST_BOOK") != "existing":
        subprocess.run([sys.executable, "-m", "mifd", "book"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    html = ROOT / "_build" / "book" / "_build" / "html"
    assert (html / "index.html").exists()
    return html


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        path = shutil.which("chromium")
    assert path, "chromium could not be installed"
    return path


@pytest.fixture(scope="session")
def served(html_dir):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _rendered_dom(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class _MathCollector(HTMLParser):
    """Text and typeset flag of every element with class "math" (Sphinx's math markup)."""

    def __init__(self):
        super().__init__()
        self.blocks: list[dict] = []
        self._depth = 0
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if self._current is not None:
            self._depth += 1
            if tag == "mjx-container":
                self._current["typeset"] = True
        elif "math" in classes:
            self._current = {"text": "", "typeset": False}
            self._depth = 1

    def handle_endtag(self, tag):
        if self._current is not None:
            self._depth -= 1
            if self._depth == 0:
                self.blocks.append(self._current)
                self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current["text"] += data


@pytest.mark.parametrize("page", ["book/intro.html", "notebooks/01_tasks.html"])
def test_equations_are_typeset_offline(served, chromium, html_dir, page):
    source = (html_dir / page).read_text()
    scripts = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', source)
    assert scripts and all(not s.startswith(("http:", "https:", "//")) for s in scripts), scripts
    collector = _MathCollector()
    collector.feed(_rendered_dom(chromium, f"{served}/{page}"))
    assert collector.blocks, "no equations found on the page"
    raw = [b["text"][:80] for b in collector.blocks if not b["typeset"]]
    assert not raw, f"equations left as raw TeX: {raw}"
    leftover = [b["text"][:80] for b in collector.blocks if re.search(r"\\[(\[]|\$\$", b["text"])]
    assert not leftover, leftover


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


@functools.cache
def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_no_broken_internal_links(html_dir):
    pages = [p for p in html_dir.rglob("*.html") if "_static" not in p.parts]
    broken = []
    for page in pages:
        for href in _parse(page).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(html_dir)} -> {href}")
            elif parts.fragment and target.suffix == ".html" and \
                    unquote(parts.fragment) not in _parse(target).ids:
                broken.append(f"{page.relative_to(html_dir)} -> {href} (no such anchor)")
    assert pages and not broken, broken


def test_no_table_cell_is_cut_short(html_dir):
    """pandas cuts a cell after 50 characters with "..."; the book shows every cell whole."""
    cut = [f"{page.relative_to(html_dir)}: {cell}" for page in html_dir.rglob("*.html")
           if not {"_static", "_sources"} & set(page.parts)
           for cell in re.findall(r"[^<>]{0,60}\.\.\.</td>", page.read_text(errors="replace"))]
    assert not cut, cut[:5]


def test_intro_cross_references_resolve_to_numbered_equations(html_dir):
    intro = (html_dir / "book" / "intro.html").read_text()
    assert re.search(r'href="#equation-eq-objective"', intro)
    assert "Eq. (1)" in intro and "Eq. (3)" in intro


@pytest.mark.parametrize("argv, needle", [
    (["-p", "nonexistent", "3"], "chapter 01_tasks has no parameter 'nonexistent'; its parameters: seed"),
    (["-p", "seed", '"x"'], "chapter 01_tasks: parameter seed must be a whole number, got 'x'"),
    (["-p", "seed", "1.5"], "parameter seed must be a whole number"),
])
def test_book_refuses_bad_chapter_parameters_before_staging(argv, needle, tmp_path, monkeypatch, capsys):
    from mifd import book
    from mifd.cli import main

    staged = []
    monkeypatch.setattr(book, "stage", lambda *a, **k: staged.append(a))
    assert main(["book", "--chapter", "01_tasks", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not staged


def test_chapter_parameter_forms():
    from mifd import book

    chapter = ROOT / "notebooks" / "04_functional_structural.ipynb"
    assert "lambda_mi" in book.parameters_of(chapter)  # a non-ASCII comment does not hide it
    book.check_parameters(chapter, {"lambda_mi": 1, "seeds": [1, 2], "epochs": None,
                                    "profile_name": "smoke", "train_missing": True})
    for bad, needle in (({"profile_name": "huge"}, "one of smoke, book, paper"),
                        ({"seeds": [1, "2"]}, "a list of whole numbers"),
                        ({"epochs": 0}, "a positive whole number or None"),
                        ({"train_missing": 1}, "True or False"),
                        ({"lambda_mi": "0.1"}, "a number")):
        with pytest.raises(ValueError, match=needle):
            book.check_parameters(chapter, bad)


def test_nbval_runs_every_parameterised_chapter_with_small_parameters():
    """notebooks/conftest.py gives nbval small parameters for every chapter that has a
    parameters cell (a new chapter left out would run at its book defaults in CI, minutes
    of records and studies), and each set fits its chapter."""
    import importlib.util
    import json

    from mifd import book

    spec = importlib.util.spec_from_file_location("nbval_parameters", ROOT / "notebooks" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parameterised = {nb.stem for nb in book.chapters() if any(
        "parameters" in c.get("metadata", {}).get("tags", []) for c in json.loads(nb.read_text())["cells"])}
    assert parameterised - set(module.PARAMETERS) == set()
    for chapter, given in module.PARAMETERS.items():
        book.check_parameters(ROOT / "notebooks" / f"{chapter}.ipynb", given)


# --- every page as a reader sees it ---------------------------------------------------------

_READER_SCRIPT = """<script>
function mifdReport() {
  const main = document.querySelector('main') || document.body;
  const name = (img) => (img.getAttribute('src') || '').split('/').pop().slice(0, 16);
  const report = {raw_tex: [], images: [], uncaptioned: [], errors: [], overflow: []};
  main.querySelectorAll('.math').forEach((m) => {
    if (!m.querySelector('mjx-container')) report.raw_tex.push(m.textContent.slice(0, 80));
  });
  // TeX that never became math: "$...\\command...$" in running text (e.g. printed Markdown)
  main.querySelectorAll('p, li, td').forEach((e) => {
    const text = e.cloneNode(true);
    text.querySelectorAll('code, pre, mjx-container, script').forEach((c) => c.remove());
    const tex = text.textContent.match(/\\$[^$]*\\\\[A-Za-z]+[^$]*\\$/);
    if (tex) report.raw_tex.push(tex[0].slice(0, 80));
  });
  main.querySelectorAll('img').forEach((img) => {
    // the width the page asks for (a retina PNG has twice as many pixels), else its pixels
    const drawn = parseFloat(img.style.width) || parseFloat(img.getAttribute('width')) || img.naturalWidth;
    if (!img.complete || img.naturalWidth === 0) report.images.push('not loaded: ' + name(img));
    else if (img.clientWidth < 0.8 * drawn)
      report.images.push(name(img) + ' shown at ' + img.clientWidth + ' of ' + drawn + ' px');
    const figure = img.closest('figure');
    if (img.closest('.cell_output') && !(figure && figure.querySelector('figcaption')))
      report.uncaptioned.push(name(img));
  });
  main.querySelectorAll('.output.stderr, .output.traceback, .output.error').forEach(
    (e) => report.errors.push(e.textContent.slice(0, 120)));
  if (main.textContent.includes('Traceback (most recent call last)')) report.errors.push('a traceback');
  // a value's repr where its content belongs, e.g. a glued Markdown object in {glue:text}
  const repr = main.textContent.match(/<[A-Za-z_.]+ object( at 0x[0-9a-f]+)?>/);
  if (repr) report.errors.push('a repr instead of its content: ' + repr[0]);
  main.querySelectorAll('.cell_output pre, .cell_output table, figure, p').forEach((e) => {
    if (e.clientWidth === 0) return;  // not displayed (a collapsed input)
    const box = e.tagName === 'TABLE' ? e.parentElement : e;
    if (e.scrollWidth > box.clientWidth + 2)
      report.overflow.push(e.tagName + ': ' + e.textContent.trim().slice(0, 60));
  });
  return report;
}
function mifdWrite(report) { console.log('mifd-reader-report ' + JSON.stringify(report)); }
// After the load event and MathJax's typesetting; the report goes to the browser's log.
window.addEventListener('load', () => {
  const done = () => {
    try { mifdWrite(mifdReport()); } catch (e) { mifdWrite({script_error: [String(e)]}); }
  };
  const startup = window.MathJax && window.MathJax.startup;
  if (startup && startup.promise) startup.promise.then(done, done); else done();
});
</script>"""


class _ReaderHandler(_QuietHandler):
    """Serves the book; a page requested with `?read` gets the reader's checks appended."""

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if query != "read" or not path.endswith(".html"):
            return super().do_GET()
        page = Path(self.directory) / unquote(path.lstrip("/"))
        body = page.read_text().replace("</body>", _READER_SCRIPT + "</body>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def reader(html_dir):
    handler = functools.partial(_ReaderHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _toc_pages() -> list[str]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [f"{toc['root']}.html"] + [f"{entry['file']}.html" for entry in toc["chapters"]]


@pytest.mark.parametrize("page", _toc_pages())
def test_every_page_reads_cleanly(reader, chromium, page):
    """No raw TeX, no missing or shrunken image (shown at ≥ 80 % of its drawn width), every
    output figure captioned, no traceback or stderr, no text cut at the column edge."""
    import json

    window = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
              "--enable-logging=stderr", "--v=0"]
    with tempfile.TemporaryDirectory() as profile:
        log = subprocess.run(
            [*window, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom",
             f"{reader}/{page}?read"], capture_output=True, text=True, timeout=180).stderr
    found = re.search(r'"mifd-reader-report (\{.*\})", source', log)
    assert found, f"{page}: the reader's checks did not run"
    report = json.loads(found.group(1).replace('\\"', '"'))
    problems = {k: v for k, v in report.items() if v}
    assert not problems, f"{page}: {problems}"


# --- the book's conclusions, guarded (#39) -------------------------------------------------

EXPECTED_VERDICTS = ROOT / "tests" / "expected_verdicts.csv"


def _glued(notebook: Path, name: str):
    """The value glued as `name` in an executed notebook (a str, read back from its repr)."""
    import ast
    import json

    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook", {})
            if scrapbook.get("name") == name:
                return ast.literal_eval(output["data"][scrapbook["mime_prefix"] + "text/plain"])
    raise AssertionError(f"{notebook} glues no {name!r}")


def test_the_results_page_concludes_what_is_committed(html_dir):
    """Every verdict of the results page and the numbers it prints for it, as the book build
    just computed them, against tests/expected_verdicts.csv. A change that moves one fails
    here until that file is updated in the same commit, with a message saying why:
    `MIFD_UPDATE_VERDICTS=1 MIFD_TEST_BOOK=existing .venv/bin/python -m pytest
    tests/test_book.py -k concludes` writes it from the last build."""
    import io

    import pandas as pd

    from mifd import claims

    found = pd.read_csv(io.StringIO(_glued(
        ROOT / "_build" / "staging" / "notebooks" / "results.ipynb", "verdict_guard")))
    if os.environ.get("MIFD_UPDATE_VERDICTS") == "1":
        found.to_csv(EXPECTED_VERDICTS, index=False)
    differences = claims.guard_differences(pd.read_csv(EXPECTED_VERDICTS), found)
    assert not differences, (
        "the results page concludes otherwise than tests/expected_verdicts.csv:\n"
        + "\n".join(differences) + "\nIf the change is meant, update the file in the same commit "
        "(MIFD_UPDATE_VERDICTS=1, see this test's docstring) and say why in its message.")


def test_a_page_without_parameters_has_none_and_refuses_any(capsys, monkeypatch):
    from mifd import book
    from mifd.cli import main

    assert book.parameters_of(ROOT / "notebooks" / "methods.ipynb") == {}
    monkeypatch.setattr(book, "stage", lambda *a, **k: None)
    assert main(["book", "--chapter", "methods", "-p", "seed", "1"]) == 2
    assert "has no parameter 'seed'" in capsys.readouterr().err
