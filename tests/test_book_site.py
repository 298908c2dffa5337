"""The built book, seen through a real browser (headless Chromium).

Serves ``book/_build/html`` over ``http://127.0.0.1:<free port>`` and checks, page by
page of the table of contents: the page exists and loads without script errors, every
notebook cell that produced a figure shows an image that actually loaded, no cell
produced an error, MathJax typeset every equation while no request left the local host,
and papermill's injected-parameters cell is hidden while the ``parameters`` cell shows.
A screenshot of each page is saved under the test's temporary folder.

The book is built by ``make book``. When it is missing the tests skip, except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SITE = REPO_ROOT / "book" / "_build" / "html"
EXECUTED = REPO_ROOT / "book" / "executed"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
HIDDEN_CELL_TAGS = ("remove-cell", "remove_cell")
HIDDEN_OUTPUT_TAGS = ("remove-output", "remove_output")
LOCAL_HOSTS = ("127.0.0.1", "localhost")

pytestmark = pytest.mark.book


def _missing(message: str) -> None:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message + " (required when CI is set)")
    pytest.skip(message)


def toc_files() -> list[str]:
    """Documents of ``_toc.yml`` in reading order (root first), without suffix."""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk([toc])
    return files


def notebook_pages() -> list[str]:
    """The toc documents that are executed notebooks."""
    return [f for f in toc_files() if f.startswith("book/executed/")]


@pytest.fixture(scope="module")
def site() -> Path:
    """The built HTML folder (skip or fail when the book was not built)."""
    if not (SITE / "index.html").exists():
        _missing(f"book not built ({SITE / 'index.html'} missing): run `make book`")
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """``http://127.0.0.1:<port>/`` serving the site from a background thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[object]:
    """Headless Debian Chromium driven by playwright."""
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        _missing("chromium not installed (`make test` installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class LoadedPage:
    """A page opened in the browser, with every request and script error it caused."""

    def __init__(self, browser: object, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.response = self.page.goto(url, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    @staticmethod
    def _route(route: object) -> None:
        """Let local requests through; refuse anything else (it is recorded and reported)."""
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS or host is None:
            route.continue_()
        else:
            route.abort()

    def wait_for_math(self) -> None:
        """Wait until MathJax has loaded and finished typesetting."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                timeout=20_000,
            )
        except PlaywrightTimeout:
            pytest.fail(
                f"MathJax never started on {self.page.url}; requests refused because they "
                f"left the local host: {self.remote_requests()}"
            )
        self.page.evaluate("() => MathJax.startup.promise.then(() => true)")

    def wait_for_images(self) -> None:
        """Wait until every image settled (loaded or failed)."""
        self.page.evaluate(
            """() => Promise.all(Array.from(document.images).map(img => img.complete ? 1 :
                 new Promise(res => { img.onload = img.onerror = res; })))"""
        )

    def remote_requests(self) -> list[str]:
        """Requests to any host other than the local server."""
        remote = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOCAL_HOSTS:
                remote.append(url)
        return remote

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def open_page(browser: object, base_url: str) -> Iterator[object]:
    """``open_page(doc)``: the page of a toc document, loaded once per module and reused."""
    opened: dict[str, LoadedPage] = {}

    def _open(doc: str) -> LoadedPage:
        if doc not in opened:
            opened[doc] = LoadedPage(browser, base_url + doc + ".html")
        return opened[doc]

    yield _open
    for loaded in opened.values():
        loaded.close()


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def rendered_code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Code cells that Jupyter Book keeps in the page (``remove-cell`` ones are dropped)."""
    return [
        c for c in nb.cells
        if c.cell_type == "code" and not any(t in HIDDEN_CELL_TAGS for t in _tags(c))
    ]  # fmt: skip


def has_figure(cell: nbformat.NotebookNode) -> bool:
    """True when a code cell shows an image output in the page."""
    if any(t in HIDDEN_OUTPUT_TAGS for t in _tags(cell)):
        return False
    return any(
        out.get("output_type") in ("display_data", "execute_result")
        and any(m in out.get("data", {}) for m in IMAGE_MIMES)
        for out in cell.get("outputs", [])
    )


def read_executed(doc: str) -> nbformat.NotebookNode:
    path = REPO_ROOT / f"{doc}.ipynb"
    if not path.exists():
        _missing(f"executed notebook missing: {path}: run `make book`")
    return nbformat.read(str(path), as_version=4)


# --- tests --------------------------------------------------------------------------------


def test_toc_lists_the_chapters() -> None:
    docs = toc_files()
    assert docs[0] == "book/intro"
    assert "book/_generated/parameters" in docs
    assert len(notebook_pages()) >= 3, docs


def test_index_redirects_to_the_introduction(open_page: object) -> None:
    loaded = open_page("index")
    assert loaded.response is not None and loaded.response.ok
    assert loaded.page.url.endswith("book/intro.html"), loaded.page.url


@pytest.mark.parametrize("doc", toc_files())
def test_page_exists_and_loads(site: Path, open_page: object, doc: str) -> None:
    assert (site / f"{doc}.html").exists(), f"{doc}.html missing from the build"
    loaded = open_page(doc)
    assert loaded.response is not None and loaded.response.status == 200
    title = loaded.page.locator("article h1").first.inner_text().strip()
    assert title, f"{doc}: page without a title"
    assert loaded.errors == [], f"{doc}: script errors {loaded.errors}"
    # every page shows the whole table of contents in the navigation bar
    nav_links = loaded.page.eval_on_selector_all(
        "nav.bd-links a.reference", "els => els.map(e => e.getAttribute('href'))"
    )
    assert len(nav_links) >= len(toc_files()) - 1, nav_links


@pytest.mark.parametrize("doc", notebook_pages())
def test_every_figure_cell_shows_a_loaded_image(open_page: object, doc: str) -> None:
    nb = read_executed(doc)
    cells = rendered_code_cells(nb)
    loaded = open_page(doc)
    loaded.wait_for_images()
    page_cells = loaded.page.eval_on_selector_all(
        "article div.cell",
        """els => els.map(el => Array.from(el.querySelectorAll('.cell_output img'))
                  .map(img => ({src: img.getAttribute('src'), complete: img.complete,
                                width: img.naturalWidth})))""",
    )
    assert len(page_cells) == len(cells), (
        f"{doc}: {len(cells)} code cells in the notebook, {len(page_cells)} in the page"
    )
    figures = 0
    for index, (cell, images) in enumerate(zip(cells, page_cells, strict=True)):
        if not has_figure(cell):
            continue
        figures += 1
        assert images, f"{doc}: code cell {index} made a figure but the page shows no <img>"
        for img in images:
            assert img["complete"] and img["width"] > 0, f"{doc}: image did not load: {img}"
    n_expected = sum(has_figure(c) for c in cells)
    assert figures == n_expected


@pytest.mark.parametrize("doc", notebook_pages())
def test_no_cell_produced_an_error(site: Path, doc: str) -> None:
    nb = read_executed(doc)
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", (
                f"{doc}: cell {index} raised {out.get('ename')}: {out.get('evalue')}"
            )
            if out.get("output_type") == "stream":
                assert "Traceback (most recent call last)" not in out.get("text", ""), (
                    f"{doc}: cell {index} printed a traceback"
                )
    html = (site / f"{doc}.html").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" not in html
    assert 'class="output traceback' not in html


@pytest.mark.parametrize("doc", toc_files())
def test_math_is_typeset_without_network(open_page: object, doc: str) -> None:
    loaded = open_page(doc)
    n_math = loaded.page.locator("article .math").count()
    if n_math:
        loaded.wait_for_math()
        n_typeset = loaded.page.locator("article mjx-container").count()
        assert n_typeset >= n_math, f"{doc}: {n_math} equations, {n_typeset} typeset"
        assert loaded.page.locator("mjx-merror").count() == 0, f"{doc}: TeX errors"
        fonts = [u for u in loaded.requests if "/mathjax/" in u]
        assert fonts, f"{doc}: MathJax was not loaded from the site"
    assert loaded.remote_requests() == [], f"{doc}: requests left the local host"
    assert loaded.errors == [], f"{doc}: script errors {loaded.errors}"


def test_some_page_has_math(open_page: object) -> None:
    loaded = open_page("book/intro")
    loaded.wait_for_math()
    assert loaded.page.locator("article mjx-container").count() >= 2


@pytest.mark.parametrize("doc", notebook_pages())
def test_parameters_cell_shown_injected_cell_hidden(open_page: object, doc: str) -> None:
    nb = read_executed(doc)
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1, f"{doc}: papermill's injected-parameters cell not found"
    assert "remove-cell" in _tags(injected[0])
    loaded = open_page(doc)
    params = loaded.page.locator("article div.cell.tag_parameters")
    assert params.count() == 1, f"{doc}: the parameters cell is not in the page"
    assert params.first.is_visible()
    assert loaded.page.locator("article .tag_injected-parameters").count() == 0


def test_screenshot_of_each_chapter(open_page: object, tmp_path: Path) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    for doc in toc_files():
        loaded = open_page(doc)
        loaded.wait_for_images()
        if loaded.page.locator("article .math").count():
            loaded.wait_for_math()
        shot = folder / (Path(doc).name + ".png")
        loaded.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000, f"{shot}: screenshot looks empty"
    print(f"\nscreenshots of the book: {folder}")
    assert len(list(folder.glob("*.png"))) == len(toc_files())
