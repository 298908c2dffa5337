"""Build the book: execute the ordered notebooks with papermill, then render them as HTML.

The committed notebooks in ``notebooks/NN_name.ipynb`` carry no outputs. :func:`build_book`
executes them (working directory = repository top, so every run writes under
``results/<profile>/``) into ``book/executed/``, several at a time when ``jobs > 1`` (a
chapter starts once the chapters whose results it reads, :data:`NOTEBOOK_NEEDS`, are done).
It hides papermill's injected-parameters cell in the rendered page (the ``parameters``
cell stays visible as documentation), writes the generated page listing every notebook
parameter (``book/_generated/parameters.md``) and renders the site with Jupyter Book 1.x
into ``book/_build/html`` with warnings as errors.

MathJax is served from the build (``book/_static/mathjax``, copied from the ``mathjax`` npm
package by ``make mathjax``), so the pages typeset equations without network access.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tokenize
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from html.parser import HTMLParser
from pathlib import Path

from privcap.profiles import PROFILES as PROFILES  # data/model profiles of every notebook
from privcap.profiles import check_profile

#: top folder of the repository (the package is installed editable from it)
REPO_ROOT = Path(__file__).resolve().parents[1]

#: tag papermill puts on the cell it injects with the run's parameters
INJECTED_TAG = "injected-parameters"
#: tag that makes Jupyter Book drop a cell from the rendered page
REMOVE_TAG = "remove-cell"
#: tag of the cell that holds a notebook's default parameters
PARAMETERS_TAG = "parameters"

_NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")

#: The chapters whose results each chapter reads (notebook stem -> stems of earlier notebooks).
#: :func:`build_book` starts a chapter only once those it needs (and theirs, transitively)
#: have finished in the same build; a chapter missing here waits for every earlier one.
NOTEBOOK_NEEDS: dict[str, tuple[str, ...]] = {
    # optics checks; writes optics_validation.json, reads nothing of the others
    "01_fresnel_psf": (),
    # untrained cameras on sample photos; writes camera_ssim.json and camera_faces.json
    "02_lens_and_camera": (),
    # trains the clean captioner results/<profile>/captioner/best.pt
    "03_captioner": (),
    # fine-tunes from best.pt (base_checkpoint); trains Table 1's learned-lens run of its seed
    # (cameras/learned-lens/seed0) and writes a one-row table1.json
    "04_end_to_end": ("03_captioner",),
    # every Table 1 run from best.pt; reuses 04's learned-lens run (training it at the same
    # time would share its folder) and must write the full table1.json after 04's one-row one
    "05_table1": ("03_captioner", "04_end_to_end"),
    # best.pt's image size; the evaluation.json and cameras of every Table 1 run
    "06_qualitative": ("03_captioner", "05_table1"),
    # run_privacy loads the cameras of every Table 1 run (load_table1_cameras)
    "07_deconvolution_attacks": ("05_table1",),
    # run_frontier: lenses fine-tuned from best.pt; the Table 1 runs' cameras (measured
    # again with the sweep's attackers), evaluation.json and history.json, and table1.json in
    # the prose checks; not chapter 07's privacy.json, so 07 and 08 run side by side
    "08_privacy_utility": ("03_captioner", "05_table1"),
    # times its sections afresh on models of its own (bench.json); reads the full
    # results/bench.json of `privcap bench` if there is one, never a chapter's results
    "90_benchmark": (),
}

#: papermill parameter that sets a notebook's torch threads; :func:`build_book` sets it to
#: the notebook's share of the CPUs when it runs several notebooks at a time
THREADS_PARAMETER = "num_threads"

#: notebooks whose ``num_threads`` is a setting of what they measure, not a share of the
#: machine: they always run with their own default
FIXED_THREADS = frozenset({"90_benchmark"})

#: most notebooks run at a time by default (beyond that, kernels mostly compete for memory)
MAX_DEFAULT_JOBS = 4


def notebooks_dir(root: Path = REPO_ROOT) -> Path:
    """Folder of the committed (output-free) notebooks."""
    return root / "notebooks"


def executed_dir(root: Path = REPO_ROOT) -> Path:
    """Folder of the executed notebooks that the book renders (git-ignored)."""
    return root / "book" / "executed"


def parameters_page(root: Path = REPO_ROOT) -> Path:
    """The generated page that lists every notebook parameter (git-ignored)."""
    return root / "book" / "_generated" / "parameters.md"


def html_dir(root: Path = REPO_ROOT) -> Path:
    """Folder of the rendered site."""
    return root / "book" / "_build" / "html"


def mathjax_script(root: Path = REPO_ROOT) -> Path:
    """The MathJax bundle that the pages load from the build (no CDN)."""
    return root / "book" / "_static" / "mathjax" / "tex-mml-chtml.js"


def list_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """The book's notebooks ``notebooks/NN_name.ipynb``, in chapter order."""
    folder = notebooks_dir(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if _NOTEBOOK_NAME.match(p.name))


def select_notebooks(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Notebooks named in ``only`` (stem ``02_lens_and_camera``, file name or number ``02``).

    ``None`` or an empty list selects all. An unknown name raises ``ValueError``.
    """
    if not only:
        return list(notebooks)
    chosen: list[Path] = []
    for name in only:
        key = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in notebooks if p.stem == key or p.stem.split("_", 1)[0] == key]
        if len(hits) != 1:
            known = ", ".join(p.stem for p in notebooks) or "(none)"
            raise ValueError(f"only: no notebook named {name!r}; known notebooks: {known}")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return sorted(chosen)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def default_jobs(cpus: int | None = None) -> int:
    """Notebooks run at a time unless told: one per CPU, at most :data:`MAX_DEFAULT_JOBS`."""
    return max(1, min(available_cpus() if cpus is None else cpus, MAX_DEFAULT_JOBS))


def threads_per_job(jobs: int, cpus: int | None = None) -> int:
    """Torch threads of each notebook when ``jobs`` notebooks share the CPUs (at least 1)."""
    return max(1, (available_cpus() if cpus is None else cpus) // max(1, jobs))


def check_jobs(jobs: object) -> int:
    """``jobs`` as the number of notebooks run at a time; ``ValueError`` unless an int >= 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs (notebooks run at a time) must be a whole number >= 1, "
                         f"got {jobs!r}")
    return jobs


def notebook_dependencies(
    notebooks: Sequence[Path], needs: Mapping[str, Sequence[str]] = NOTEBOOK_NEEDS
) -> dict[str, set[str]]:
    """Stem -> every notebook it needs, directly or through others (stems of ``notebooks``).

    ``needs`` maps a stem to the stems whose results it reads (:data:`NOTEBOOK_NEEDS`); a
    notebook missing from it needs every earlier notebook. Dependencies must be earlier
    notebooks of the list, else ``ValueError``.
    """
    order = [nb.stem for nb in sorted(notebooks)]
    position = {stem: i for i, stem in enumerate(order)}
    closure: dict[str, set[str]] = {}
    for i, stem in enumerate(order):
        direct = needs[stem] if stem in needs else order[:i]
        found: set[str] = set()
        for dep in direct:
            if dep not in position:
                raise ValueError(f"notebook {stem} needs {dep!r}, which is not a notebook of "
                                 f"the book ({', '.join(order)})")
            if position[dep] >= i:
                raise ValueError(f"notebook {stem} needs {dep}, which does not come before it")
            found |= {dep} | closure[dep]
        closure[stem] = found
    return closure


def notebook_parameters(path: Path) -> dict[str, dict[str, str]]:
    """Parameters of a notebook's ``parameters`` cell: name -> {type, default, help}.

    Every top-level assignment of the cell is a parameter (papermill's ``-p NAME VALUE``
    overrides it). ``help`` is the comment at the end of the assignment's first or last line,
    else the comment lines right above it. Parsed with :mod:`ast`, so defaults that span lines
    or contain ``=`` are listed too (papermill's own inspection skips those).
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}")
    return parse_parameters(cells[0].source, name=path.name)


def parse_parameters(source: str, name: str = "parameters cell") -> dict[str, dict[str, str]]:
    """Parameters assigned in the Python ``source`` of a parameters cell (see above)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{name}: the parameters cell is not valid Python: {exc}") from exc
    lines = source.splitlines()
    comments = _line_comments(source)
    params: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, annotation = node.targets[0], None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, annotation = node.target, node.annotation
        else:
            continue
        if not isinstance(target, ast.Name) or node.value is None:
            continue
        default = _without_comments(ast.get_source_segment(source, node.value) or "")
        help_text = comments.get(node.lineno) or comments.get(node.end_lineno or node.lineno)
        if not help_text:  # comment lines right above the assignment
            above = []
            row = node.lineno - 1
            while row >= 1 and lines[row - 1].lstrip().startswith("#"):
                above.insert(0, lines[row - 1].strip().lstrip("#").strip())
                row -= 1
            help_text = " ".join(above)
        typed = ast.get_source_segment(source, annotation) if annotation is not None else None
        params[target.id] = {
            "type": _type_name(typed, default),
            "default": " ".join(default.split()),
            "help": help_text or "",
        }
    return params


def _line_comments(source: str) -> dict[int, str]:
    """Line number -> text of a comment that follows code on that line."""
    found: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            if tok.start[0] in code_lines:
                found[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    return found


def _without_comments(code: str) -> str:
    """``code`` with its comments blanked out (a default written over several lines)."""
    if "#" not in code:
        return code
    lines = code.splitlines()
    try:
        comments = [
            t for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type == tokenize.COMMENT
        ]  # fmt: skip
    except (tokenize.TokenError, SyntaxError):
        return code
    for tok in comments:
        row, col = tok.start
        lines[row - 1] = lines[row - 1][:col]
    return " ".join(" ".join(lines).split()).replace("( ", "(").replace(", )", ",)")


def _type_name(annotated: str | None, default: str) -> str:
    """The annotated type of a parameter, else the type of its literal default."""
    if annotated:
        return annotated
    try:
        return type(ast.literal_eval(default)).__name__
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "expression"


def _cell_text(value: str) -> str:
    """Escape a value for one cell of a Markdown table."""
    return " ".join(value.split()).replace("|", "\\|")


def _code_span(value: str) -> str:
    """A Markdown inline code span holding ``value`` even when it contains backticks."""
    value = " ".join(value.split()).replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def render_parameters_page(notebooks: Sequence[Path], root: Path = REPO_ROOT) -> str:
    """Markdown of the parameters page, generated from the notebooks' ``parameters`` cells."""
    lines = [
        "# Notebook parameters",
        "",
        "Every chapter starts with a code cell tagged `parameters` that holds its tunable",
        "values. This page is generated from those cells when the book is built, so it always",
        "matches the notebooks. Override any value for a one-off run with papermill, for",
        "example",
        "",
        "```bash",
        "papermill notebooks/02_lens_and_camera.ipynb out.ipynb -p profile full",
        "```",
        "",
        "or rebuild chapters of the book with another profile:",
        "`privcap book --profile coco-mini --only 03`.",
        "",
    ]
    manifest = _read_manifest(root)
    for nb in notebooks:
        params = notebook_parameters(nb)
        lines += [f"## {nb.stem}", ""]
        run = manifest.get(nb.stem)
        where = f"`notebooks/{nb.name}`"
        if run:
            where += f"; the page in this build ran with profile `{run['profile']}`"
            if run.get("smoke"):
                where += " at smoke size (tiny test run: its numbers are not meaningful)"
        lines += [f"Chapter: {{doc}}`../executed/{nb.stem}` ({where}).", ""]
        if not params:
            lines += ["This notebook has no parameters.", ""]
            continue
        lines += ["| parameter | type | default | meaning |", "|---|---|---|---|"]
        for name, p in params.items():
            lines.append(
                f"| `{name}` | {_cell_text(p['type'])} | {_code_span(p['default'])} "
                f"| {_cell_text(p['help'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps incremental builds cheap)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _manifest_path(root: Path) -> Path:
    return executed_dir(root) / "manifest.json"


def _read_manifest(root: Path) -> dict[str, dict]:
    path = _manifest_path(root)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def hide_injected_parameters(path: Path) -> int:
    """Tag papermill's injected-parameters cell(s) of an executed notebook ``remove-cell``.

    Returns how many cells were tagged. The ``parameters`` cell is left untouched.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    count = 0
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED_TAG in tags:
            count += 1
            if REMOVE_TAG not in tags:
                tags.append(REMOVE_TAG)
    nbformat.write(nb, str(path))
    return count


SMOKE_NOTE = (
    ":::{warning}\nThis page was executed at *smoke size* (tiny data and models, the test "
    "suite's run): the code and figures are the real ones, but its numbers are not "
    "meaningful. `make book` builds it at full size.\n:::"
)


def mark_smoke_run(path: Path) -> None:
    """Put :data:`SMOKE_NOTE` right after the title cell of an executed notebook."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cell = nbformat.v4.new_markdown_cell(SMOKE_NOTE)
    cell.metadata["tags"] = ["smoke-note"]
    nb.cells.insert(1, cell)
    nbformat.write(nb, str(path))


def execute_notebook(
    src: Path,
    dst: Path,
    profile: str = "quick",
    kernel_name: str = "python3",
    cwd: Path = REPO_ROOT,
    smoke: bool = False,
    *,
    parameters: Mapping[str, object] | None = None,
    progress_bar: bool = True,
) -> float:
    """Execute ``src`` into ``dst`` with papermill (parameters ``profile`` and ``smoke``);
    seconds taken.

    ``smoke=True`` asks the notebook for its tiny sizes (the test suite's run): numbers are
    then not meaningful and the notebook skips its checks of the prose's claims.
    ``parameters`` are further papermill parameters (e.g. ``num_threads``). The kernel
    starts in ``cwd`` without changing this process's working directory, so several
    notebooks can run at once from threads.

    A failing cell raises ``RuntimeError`` naming the notebook, the cell and the error; the
    partly executed copy with the traceback stays at ``dst``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    dst.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src),
            str(dst),
            parameters={"profile": profile, "smoke": bool(smoke), **(parameters or {})},
            kernel_name=kernel_name,
            # the kernel's working directory, passed to the kernel itself: papermill's own
            # ``cwd`` changes the directory of the whole process, which threads share
            resources={"metadata": {"path": str(cwd)}},
            progress_bar=progress_bar,
            log_output=False,
        )
    except PapermillExecutionError as exc:
        hide_injected_parameters(dst)
        raise RuntimeError(
            f"notebook {src.name} failed at In [{exc.exec_count}] "
            f"({exc.ename}: {exc.evalue}); executed copy with the traceback: {dst}"
        ) from exc
    seconds = time.perf_counter() - start
    if smoke:
        mark_smoke_run(dst)
    hidden = hide_injected_parameters(dst)
    if hidden != 1:
        raise RuntimeError(f"notebook {src.name}: expected 1 injected-parameters cell, {hidden}")
    return seconds


class _ResourceFinder(HTMLParser):
    """Collects the URLs a page loads by itself (scripts, stylesheets, images, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video") and a.get("src"):
            self.urls.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "modulepreload", "icon")):
                self.urls.append(a["href"] or "")


def external_resources(site: Path) -> dict[str, list[str]]:
    """Page -> URLs on other hosts that it would load (empty when the site is offline)."""
    found: dict[str, list[str]] = {}
    for page in sorted(site.rglob("*.html")):
        finder = _ResourceFinder()
        finder.feed(page.read_text(encoding="utf-8", errors="replace"))
        remote = [u for u in finder.urls if re.match(r"^(https?:)?//", u)]
        if remote:
            found[str(page.relative_to(site))] = remote
    return found


def _jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise FileNotFoundError("jupyter-book not found next to Python or on PATH")
    return [found]


def render_html(root: Path = REPO_ROOT) -> Path:
    """Render the site with Jupyter Book 1.x, warnings as errors; returns the HTML folder.

    Every page is re-read (``--all``) so that a warning can never hide in a cached page. The
    build's output also goes to ``book/_build/build.log``.
    """
    if not mathjax_script(root).exists():
        raise FileNotFoundError(
            f"MathJax not found: {mathjax_script(root)} (run `make mathjax`, which installs "
            "the mathjax npm package and copies it there)"
        )
    cmd = _jupyter_book_command() + [
        "build", str(root), "--path-output", str(root / "book"),
        "-W", "-n", "--keep-going", "--all",
    ]  # fmt: skip
    log_path = root / "book" / "_build" / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    warnings = 0
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            if "WARNING" in line or "ERROR" in line:
                warnings += 1
        rc = proc.wait()
    if rc != 0 or warnings:
        raise RuntimeError(
            f"jupyter-book build failed (exit {rc}, {warnings} warning/error lines; warnings "
            f"are errors): see {log_path}"
        )
    site = html_dir(root)
    remote = external_resources(site)
    if remote:
        raise RuntimeError(f"the built pages load resources from other hosts: {remote}")
    return site


def book_times_path(root: Path = REPO_ROOT) -> Path:
    """``results/book_times.json``: seconds each notebook took in the latest build."""
    from privcap.paths import RESULTS_ENV

    base = Path(os.environ[RESULTS_ENV]) if os.environ.get(RESULTS_ENV) else root / "results"
    return base / "book_times.json"


def write_book_times(
    timings: dict[str, float], profile: str, smoke: bool, html_seconds: float | None,
    root: Path = REPO_ROOT, *, wall_seconds: float | None = None, jobs: int | None = None,
) -> Path:
    """Merge this build's per-notebook seconds into :func:`book_times_path` (atomic write).

    Notebooks not executed in this build keep their previous entry; the file records the
    profile and mode of each entry, the sum of every entry plus the HTML (``total_seconds``),
    and of the latest build its wall-clock time (``wall_seconds``: its notebooks and HTML,
    several notebooks at a time when ``jobs > 1``) and ``jobs``."""
    path = book_times_path(root)
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    notebooks = dict(old.get("notebooks", {}))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for name, seconds in timings.items():
        notebooks[name] = {"seconds": round(seconds, 1), "profile": profile, "smoke": smoke,
                           "finished": stamp}
    data = {
        "notebooks": dict(sorted(notebooks.items())),
        "html_seconds": None if html_seconds is None else round(html_seconds, 1),
        "total_seconds": round(sum(v["seconds"] for v in notebooks.values())
                               + (html_seconds or 0.0), 1),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "jobs": jobs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def build_book(
    profile: str = "quick",
    only: Sequence[str] | None = None,
    html: bool = True,
    *,
    smoke: bool = False,
    root: Path = REPO_ROOT,
    kernel_name: str = "python3",
    jobs: int | None = None,
    needs: Mapping[str, Sequence[str]] = NOTEBOOK_NEEDS,
) -> dict[str, float]:
    """Execute the notebooks with papermill, ``jobs`` at a time, then render the book.

    Parameters
    ----------
    profile:
        Data/model profile passed to every notebook as the papermill parameter ``profile``
        (one of :data:`PROFILES`).
    only:
        Names of the notebooks to execute (``02``, ``02_lens_and_camera`` or the file
        name); default all. The others keep their previous executed copy; one that has
        none is copied without outputs, and the count is reported.
    html:
        Also render the HTML site (``book/_build/html``) with warnings as errors.
    smoke:
        Run every notebook at its tiny test size (papermill parameter ``smoke``): the
        site is complete, but its numbers are not meaningful (the test suite's build).
    jobs:
        Notebooks executed at a time (default :func:`default_jobs`: one per CPU, at most
        4). ``1`` runs them one after another in chapter order, each with its own
        defaults. With more, each kernel is a separate process started from a thread; a
        notebook starts once every selected notebook it needs (``needs``, transitively) has
        finished, those on the longest remaining chain first, and a notebook that declares
        :data:`THREADS_PARAMETER` gets ``max(1, cpus // jobs)`` torch threads (except
        :data:`FIXED_THREADS`). If one fails, the running ones finish, no other starts, and
        ``RuntimeError`` names the failed notebook and those not run.
    needs:
        Which chapters each chapter reads the results of (:data:`NOTEBOOK_NEEDS`). Needed
        notebooks not selected with ``only`` count as built already.

    Returns notebook name -> seconds its execution took (chapter order); they are also
    printed as a table and merged into ``results/book_times.json`` with the build's
    wall-clock time and ``jobs``.
    """
    jobs = default_jobs() if jobs is None else check_jobs(jobs)
    check_profile(profile)
    notebooks = list_notebooks(root)
    if not notebooks:
        raise FileNotFoundError(f"no notebooks NN_name.ipynb in {notebooks_dir(root)}")
    chosen = select_notebooks(notebooks, only)
    dependencies = notebook_dependencies(notebooks, needs)
    out_dir = executed_dir(root)
    out_dir.mkdir(parents=True, exist_ok=True)

    env_backend = os.environ.pop("MPLBACKEND", None)
    if env_backend is not None:
        print(f"MPLBACKEND={env_backend} unset for the kernels (figures must stay inline)")
    from privcap.paths import RESULTS_ENV

    previous_results = os.environ.get(RESULTS_ENV)
    if smoke:  # tiny runs never overwrite the results of real ones
        os.environ[RESULTS_ENV] = str(smoke_results_root(root))
        print(f"smoke run: results go to {os.environ[RESULTS_ENV]}")
    try:
        return _build(profile, notebooks, chosen, out_dir, html, smoke, root, kernel_name,
                      jobs, dependencies)
    finally:
        if smoke:
            if previous_results is None:
                os.environ.pop(RESULTS_ENV, None)
            else:
                os.environ[RESULTS_ENV] = previous_results


def smoke_results_root(root: Path = REPO_ROOT) -> Path:
    """Where a smoke build's notebooks write (``results/smoke``), apart from real runs."""
    from privcap.paths import RESULTS_ENV

    base = Path(os.environ[RESULTS_ENV]) if os.environ.get(RESULTS_ENV) else root / "results"
    return base if base.name == "smoke" else base / "smoke"


def _build(
    profile: str, notebooks: list[Path], chosen: list[Path], out_dir: Path, html: bool,
    smoke: bool, root: Path, kernel_name: str, jobs: int = 1,
    dependencies: Mapping[str, set[str]] | None = None,
) -> dict[str, float]:
    """Execute ``chosen`` and render (the body of :func:`build_book`)."""

    manifest = _read_manifest(root)
    timings: dict[str, float] = {}
    total = time.perf_counter()
    if jobs == 1:
        for i, nb in enumerate(chosen, 1):
            mode = f"profile {profile}" + (", smoke" if smoke else "")
            print(f"[{i}/{len(chosen)}] executing {nb.name} ({mode}) ...", flush=True)
            seconds = execute_notebook(nb, out_dir / nb.name, profile, kernel_name, cwd=root,
                                       smoke=smoke)
            timings[nb.stem] = seconds
            manifest[nb.stem] = {"profile": profile, "smoke": smoke,
                                 "seconds": round(seconds, 1)}
            print(f"[{i}/{len(chosen)}] {nb.name} done in {seconds:.0f} s", flush=True)
            _write_if_changed(_manifest_path(root), json.dumps(manifest, indent=2) + "\n")
    elif chosen:
        if dependencies is None:
            dependencies = notebook_dependencies(notebooks)
        timings = _execute_concurrently(profile, chosen, out_dir, smoke, root, kernel_name,
                                        jobs, dependencies, manifest)
    executed_seconds = time.perf_counter() - total

    unexecuted = [nb for nb in notebooks if not (out_dir / nb.name).exists()]
    for nb in unexecuted:
        shutil.copyfile(nb, out_dir / nb.name)
    if unexecuted:
        names = ", ".join(nb.stem for nb in unexecuted)
        print(f"{len(unexecuted)} notebook(s) never executed, shown without outputs: {names}")
    if chosen:
        print(f"executed {len(chosen)} notebook(s) in {executed_seconds:.0f} s"
              + (f" ({jobs} at a time)" if jobs > 1 else ""))

    page = parameters_page(root)
    _write_if_changed(page, render_parameters_page(notebooks, root))
    print(f"parameters page: {page}")
    html_seconds = None
    if html:
        start = time.perf_counter()
        site = render_html(root)
        html_seconds = time.perf_counter() - start
        print(f"book: {site / 'index.html'}")
    if timings:
        wall_seconds = executed_seconds + (html_seconds or 0.0)
        times_path = write_book_times(timings, profile, smoke, html_seconds, root,
                                      wall_seconds=wall_seconds, jobs=jobs)
        width = max(len(name) for name in timings)
        print("time per notebook:")
        for name, seconds in timings.items():
            print(f"  {name:<{width}}  {seconds:7.1f} s")
        if html_seconds is not None:
            print(f"  {'HTML':<{width}}  {html_seconds:7.1f} s")
        print(f"  {'total':<{width}}  {sum(timings.values()) + (html_seconds or 0):7.1f} s"
              f"  ({times_path})")
        if jobs > 1:
            print(f"  {'wall clock':<{width}}  {wall_seconds:7.1f} s  ({jobs} jobs)")
    return timings


def _estimated_seconds(names: Sequence[str], profile: str, smoke: bool, root: Path
                       ) -> dict[str, float]:
    """Expected seconds of each notebook: its time in ``results/book_times.json`` when that
    was measured with the same profile and mode, else the mean of those known (else 1)."""
    path = book_times_path(root)
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("notebooks", {})
    except (OSError, ValueError, AttributeError):
        old = {}
    known: dict[str, float] = {}
    for name in names:
        entry = old.get(name)
        if (isinstance(entry, dict) and entry.get("profile") == profile
                and entry.get("smoke") == smoke
                and isinstance(entry.get("seconds"), int | float)):
            known[name] = max(float(entry["seconds"]), 0.1)
    fallback = sum(known.values()) / len(known) if known else 1.0
    return {name: known.get(name, fallback) for name in names}


def _critical_paths(order: Sequence[str], waits: Mapping[str, set[str]],
                    seconds: Mapping[str, float]) -> dict[str, float]:
    """Seconds from a notebook's start to the end of the longest chain of notebooks that
    wait for it (``order``: a notebook comes after everything in its ``waits``)."""
    longest: dict[str, float] = {}
    for name in reversed(order):
        after = [longest[other] for other in order if name in waits[other]]
        longest[name] = seconds[name] + max(after, default=0.0)
    return longest


def _execute_concurrently(
    profile: str, chosen: list[Path], out_dir: Path, smoke: bool, root: Path,
    kernel_name: str, jobs: int, dependencies: Mapping[str, set[str]],
    manifest: dict[str, dict],
) -> dict[str, float]:
    """Execute ``chosen`` up to ``jobs`` at a time (see :func:`build_book`); notebook stem ->
    seconds, in chapter order."""
    stems = [nb.stem for nb in chosen]
    selected = set(stems)
    waits = {nb.stem: dependencies.get(nb.stem, set()) & selected for nb in chosen}
    longest = _critical_paths(stems, waits, _estimated_seconds(stems, profile, smoke, root))
    pending = sorted(chosen, key=lambda nb: (-longest[nb.stem], nb.name))
    threads = threads_per_job(jobs)
    extra: dict[str, dict[str, object]] = {}
    for nb in chosen:
        try:
            declared = THREADS_PARAMETER in notebook_parameters(nb)
        except ValueError:  # no single parameters cell: nothing to set
            declared = False
        if declared and nb.stem not in FIXED_THREADS:
            extra[nb.stem] = {THREADS_PARAMETER: threads}
    mode = f"profile {profile}" + (", smoke" if smoke else "")
    print(f"executing {len(chosen)} notebook(s), up to {jobs} at a time "
          f"({THREADS_PARAMETER}={threads} where a notebook has it)", flush=True)

    count = len(chosen)
    clock = time.perf_counter()
    finished: set[str] = set()
    timings: dict[str, float] = {}
    failures: list[tuple[Path, BaseException]] = []
    running: dict[Future[float], tuple[Path, int, float]] = {}
    started = 0
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="notebook") as pool:
        while pending or running:
            ready = [nb for nb in pending if waits[nb.stem] <= finished]
            while not failures and ready and len(running) < jobs:
                nb = ready.pop(0)
                pending.remove(nb)
                started += 1
                params = extra.get(nb.stem, {})
                note = "".join(f", {k}={v}" for k, v in params.items())
                print(f"[{started}/{count}] executing {nb.name} ({mode}{note}) at "
                      f"+{time.perf_counter() - clock:.0f} s ...", flush=True)
                future = pool.submit(execute_notebook, nb, out_dir / nb.name, profile,
                                     kernel_name, cwd=root, smoke=smoke, parameters=params,
                                     progress_bar=False)
                running[future] = (nb, started, time.perf_counter())
            if not running:
                break  # after a failure: nothing runs and nothing more starts
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0].name):
                nb, i, begun = running.pop(future)
                try:
                    seconds = future.result()
                except Exception as exc:  # reported with the others below
                    failures.append((nb, exc))
                    print(f"[{i}/{count}] {nb.name} FAILED after "
                          f"{time.perf_counter() - begun:.0f} s", flush=True)
                    continue
                finished.add(nb.stem)
                timings[nb.stem] = seconds
                manifest[nb.stem] = {"profile": profile, "smoke": smoke,
                                     "seconds": round(seconds, 1)}
                print(f"[{i}/{count}] {nb.name} done in {seconds:.0f} s at "
                      f"+{time.perf_counter() - clock:.0f} s", flush=True)
                _write_if_changed(_manifest_path(root), json.dumps(manifest, indent=2) + "\n")
    if failures or pending:
        raise _build_failure(failures, pending, timings)
    return {stem: timings[stem] for stem in stems}


def _build_failure(failures: Sequence[tuple[Path, BaseException]], not_run: Sequence[Path],
                   timings: Mapping[str, float]) -> RuntimeError:
    """The error of a build stopped by failed notebooks (chained to the first failure)."""
    parts = []
    for nb, exc in failures:
        text = str(exc)
        parts.append(text if nb.name in text else f"notebook {nb.name} failed: "
                     f"{type(exc).__name__}: {text}")
    if not failures:  # cannot happen with dependencies on earlier notebooks only
        parts.append("no notebook could start (circular dependencies)")
    skipped = ", ".join(nb.stem for nb in sorted(not_run)) or "none"
    done = ", ".join(sorted(timings)) or "none"
    error = RuntimeError(f"book build stopped: {'; '.join(parts)}; not run: {skipped}; "
                         f"finished: {done}")
    if failures:
        error.__cause__ = failures[0][1]
    return error
