"""``privcap.book``: notebook selection, the generated parameters page, papermill execution.

Runs on a throw-away project folder with tiny notebooks (a few seconds: one kernel start
per executed notebook); the real chapters are checked by tests/test_notebooks.py and, once
built, tests/test_book_site.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import nbformat
import pytest

from privcap import book


def write_notebook(path: Path, params: str, body: str, title: str = "# A chapter") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(title), cell, nbformat.v4.new_code_cell(body)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(autouse=True)
def _results_under_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds write ``book_times.json`` under their throw-away project, never elsewhere."""
    monkeypatch.delenv("PRIVCAP_RESULTS", raising=False)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A project folder with two tiny notebooks."""
    write_notebook(
        tmp_path / "notebooks" / "01_first.ipynb",
        'profile = "quick"  # which profile\nsteps: int = 3  # how many steps | at most 10',
        'import json, pathlib\np = pathlib.Path("results", profile)\np.mkdir(parents=True, '
        'exist_ok=True)\n(p / "first.json").write_text(json.dumps({"steps": steps}))',
    )
    write_notebook(
        tmp_path / "notebooks" / "02_second.ipynb",
        'profile = "quick"  # which profile\nlabel = "a`b"  # odd characters',
        "print(label * 2)",
    )
    (tmp_path / "notebooks" / "notes.ipynb").write_text("{}")  # not a chapter: ignored
    return tmp_path


def test_list_notebooks_in_order_ignores_other_files(project: Path) -> None:
    names = [p.name for p in book.list_notebooks(project)]
    assert names == ["01_first.ipynb", "02_second.ipynb"]


def test_list_notebooks_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="notebooks"):
        book.list_notebooks(tmp_path)


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (None, ["01_first", "02_second"]),
        (["02"], ["02_second"]),
        (["02_second", "01_first.ipynb"], ["01_first", "02_second"]),
        (["notebooks/01_first.ipynb", "01"], ["01_first"]),
    ],
)
def test_select_notebooks(project: Path, only: list[str] | None, expected: list[str]) -> None:
    chosen = book.select_notebooks(book.list_notebooks(project), only)
    assert [p.stem for p in chosen] == expected


def test_select_unknown_notebook_names_it(project: Path) -> None:
    with pytest.raises(ValueError, match=r"only: no notebook named '03'.*01_first, 02_second"):
        book.select_notebooks(book.list_notebooks(project), ["03"])


def test_parameters_page_lists_every_parameter(project: Path) -> None:
    page = book.render_parameters_page(book.list_notebooks(project), project)
    assert "| `steps` | int | `3` | how many steps \\| at most 10 |" in page
    assert '| `profile` | str | `"quick"` | which profile |' in page
    assert '| `label` | str | ``"a`b"`` | odd characters |' in page
    assert "{doc}`../executed/01_first`" in page and "{doc}`../executed/02_second`" in page


def test_parse_parameters_handles_what_papermill_skips() -> None:
    source = (
        "import math  # not a parameter\n"
        "# wavelengths of the R, G, B channels (m)\n"
        "wavelengths_m = (\n    640e-9,\n    550e-9,  # green\n    460e-9,\n)\n"
        "n_terms: int = 15  # Noll terms j >= 5 are clamped, i.e. |a_j| <= 1\n"
        "options = dict(a=1, b=2)  # keyword defaults\n"
        "area_m2 = math.pi * 1e-6**2\n"
    )
    params = book.parse_parameters(source)
    assert list(params) == ["wavelengths_m", "n_terms", "options", "area_m2"]
    assert params["wavelengths_m"] == {
        "type": "tuple",
        "default": "(640e-9, 550e-9, 460e-9,)",
        "help": "wavelengths of the R, G, B channels (m)",
    }
    assert params["n_terms"] == {
        "type": "int", "default": "15", "help": "Noll terms j >= 5 are clamped, i.e. |a_j| <= 1"
    }  # fmt: skip
    assert params["options"]["help"] == "keyword defaults"
    assert params["area_m2"] == {"type": "expression", "default": "math.pi * 1e-6**2", "help": ""}


def test_parse_parameters_refuses_broken_cell() -> None:
    with pytest.raises(ValueError, match="cell 7: the parameters cell is not valid Python"):
        book.parse_parameters("x = (1,", name="cell 7")


def test_build_book_rejects_unknown_profile(project: Path) -> None:
    with pytest.raises(ValueError, match="profile must be one of .*'tiny'"):
        book.build_book(profile="tiny", root=project, html=False)


def test_build_book_executes_in_order_and_hides_injected_cell(project: Path) -> None:
    timings = book.build_book(profile="coco-mini", root=project, html=False, jobs=1)
    assert list(timings) == ["01_first", "02_second"]
    assert json.loads(book.book_times_path(project).read_text())["jobs"] == 1
    # the notebook ran with the repository top as working directory and got the profile
    result = json.loads((project / "results" / "coco-mini" / "first.json").read_text())
    assert result == {"steps": 3}
    nb = nbformat.read(str(project / "book" / "executed" / "02_second.ipynb"), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    injected = [t for t in tags if "injected-parameters" in t]
    assert injected == [["injected-parameters", "remove-cell"]]
    assert ["parameters"] in tags  # the defaults stay visible
    assert nb.cells[-1].outputs[0]["text"] == "a`ba`b\n"
    page = (project / "book" / "_generated" / "parameters.md").read_text()
    assert "ran with profile `coco-mini`" in page
    manifest = json.loads((project / "book" / "executed" / "manifest.json").read_text())
    assert manifest["01_first"]["profile"] == "coco-mini"
    # committed notebooks stay output-free
    src = nbformat.read(str(project / "notebooks" / "02_second.ipynb"), as_version=4)
    assert src.cells[-1].outputs == []


def test_build_book_only_copies_the_others(project: Path, capsys: pytest.CaptureFixture) -> None:
    timings = book.build_book(only=["02"], root=project, html=False)
    assert list(timings) == ["02_second"]
    copied = nbformat.read(str(project / "book" / "executed" / "01_first.ipynb"), as_version=4)
    assert all(c.get("outputs", []) == [] for c in copied.cells)
    assert (
        "1 notebook(s) never executed, shown without outputs: 01_first" in capsys.readouterr().out
    )


def test_failing_notebook_is_named(project: Path) -> None:
    write_notebook(
        project / "notebooks" / "03_broken.ipynb",
        'profile = "quick"  # which profile',
        'raise ValueError("lens too small")',
    )
    with pytest.raises(RuntimeError, match=r"03_broken\.ipynb failed .*ValueError: lens too small"):
        book.build_book(only=["03"], root=project, html=False)


def test_external_resources_found(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text(
        '<script src="_static/x.js"></script><script src="https://cdn.example/mj.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/f.css"><a href="https://paper.example">'
    )
    (tmp_path / "b.html").write_text('<img src="_images/a.png">')
    assert book.external_resources(tmp_path) == {
        "a.html": ["https://cdn.example/mj.js", "//fonts.example/f.css"]
    }


def test_render_html_needs_mathjax(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make mathjax"):
        book.render_html(tmp_path)


def test_smoke_build_passes_smoke_writes_apart_and_marks_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PRIVCAP_RESULTS", raising=False)
    write_notebook(
        tmp_path / "notebooks" / "01_only.ipynb",
        'profile = "quick"  # which profile\nsmoke = False  # tiny sizes',
        'import json, os, pathlib\nroot = pathlib.Path(os.environ.get("PRIVCAP_RESULTS", '
        '"results"))\n(root / profile).mkdir(parents=True, exist_ok=True)\n'
        '(root / profile / "run.json").write_text(json.dumps({"smoke": smoke}))',
    )
    timings = book.build_book(root=tmp_path, html=False, smoke=True, jobs=2)
    assert list(timings) == ["01_only"]
    written = json.loads((tmp_path / "results" / "smoke" / "quick" / "run.json").read_text())
    assert written == {"smoke": True}
    assert not (tmp_path / "results" / "quick").exists()  # real results untouched
    assert "PRIVCAP_RESULTS" not in __import__("os").environ  # restored after the build
    nb = nbformat.read(str(tmp_path / "book" / "executed" / "01_only.ipynb"), as_version=4)
    assert "smoke size" in nb.cells[1].source and nb.cells[0].source.startswith("# ")
    times = json.loads((tmp_path / "results" / "smoke" / "book_times.json").read_text())
    assert times["notebooks"]["01_only"]["smoke"] is True
    assert times["notebooks"]["01_only"]["seconds"] >= 0
    assert times["jobs"] == 2 and times["wall_seconds"] >= times["notebooks"]["01_only"]["seconds"]


# --- which chapters read which, and running several notebooks at a time -------------------


def test_notebook_needs_lists_every_chapter_with_earlier_dependencies() -> None:
    stems = [p.stem for p in book.list_notebooks()]
    assert sorted(book.NOTEBOOK_NEEDS) == stems  # every chapter, and nothing else
    for stem, needs in book.NOTEBOOK_NEEDS.items():
        for dep in needs:
            assert dep in stems, (stem, dep)
            assert stems.index(dep) < stems.index(stem), (stem, dep)
    closure = book.notebook_dependencies(book.list_notebooks())
    assert closure["01_fresnel_psf"] == closure["90_benchmark"] == set()
    assert closure["07_deconvolution_attacks"] == {"03_captioner", "04_end_to_end", "05_table1"}
    # 08 measures the Table 1 cameras itself: it does not wait for 07
    assert closure["08_privacy_utility"] == {"03_captioner", "04_end_to_end", "05_table1"}


def test_notebook_dependencies_checks_and_defaults(tmp_path: Path) -> None:
    nbs = [tmp_path / f"{n}.ipynb" for n in ("01_a", "02_b", "03_c", "04_d")]
    closure = book.notebook_dependencies(nbs, {"01_a": (), "02_b": ("01_a",), "03_c": ("02_b",)})
    assert closure == {"01_a": set(), "02_b": {"01_a"}, "03_c": {"01_a", "02_b"},
                       "04_d": {"01_a", "02_b", "03_c"}}  # unlisted: needs every earlier one
    with pytest.raises(ValueError, match="02_b needs 03_c, which does not come before it"):
        book.notebook_dependencies(nbs, {"02_b": ("03_c",)})
    with pytest.raises(ValueError, match="01_a needs '05_gone', which is not a notebook"):
        book.notebook_dependencies(nbs, {"01_a": ("05_gone",)})


@pytest.mark.parametrize(("cpus", "jobs", "threads"), [(1, 1, 1), (2, 2, 1), (3, 3, 1),
                                                       (16, 4, 4)])
def test_default_jobs_and_threads(cpus: int, jobs: int, threads: int) -> None:
    assert book.default_jobs(cpus) == jobs
    assert book.threads_per_job(jobs, cpus) == threads
    assert book.threads_per_job(8, cpus) == max(1, cpus // 8)


@pytest.mark.parametrize("jobs", [0, -1, True, 1.5, "2"])
def test_bad_jobs_refused(project: Path, jobs: object) -> None:
    with pytest.raises(ValueError, match=r"jobs \(notebooks run at a time\) must be a whole"):
        book.build_book(root=project, html=False, jobs=jobs)  # type: ignore[arg-type]
    assert not (project / "book").exists()  # refused before anything ran


def test_cli_jobs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from privcap.cli import main

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the book must not be built")

    monkeypatch.setattr(book, "list_notebooks", never)  # refused before the notebooks
    assert main(["book", "--jobs", "0", "--no-html"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("privcap: error: jobs") and "got 0" in err and "\n" not in err
    seen: dict[str, object] = {}
    monkeypatch.setattr(book, "build_book", lambda **kw: seen.update(kw) or {})
    assert main(["book", "--jobs", "3", "--no-html", "--smoke"]) == 0
    assert seen["jobs"] == 3 and seen["smoke"] is True
    assert main(["book", "--no-html"]) == 0
    assert seen["jobs"] is None  # build_book picks the default


class FakeRuns:
    """Stands in for :func:`book.execute_notebook`: records starts, ends and parameters."""

    def __init__(self, seconds: float = 0.05, fail: str | None = None) -> None:
        self.seconds, self.fail = seconds, fail
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.parameters: dict[str, dict] = {}
        self.failed = threading.Event()
        self.hold: dict[str, threading.Event] = {}

    def __call__(self, src: Path, dst: Path, profile: str, kernel_name: str, cwd: Path,
                 smoke: bool, *, parameters: dict | None = None,
                 progress_bar: bool = True) -> float:
        with self.lock:
            self.events.append(("start", src.stem))
            self.parameters[src.stem] = dict(parameters or {})
        if src.stem in self.hold:  # wait until the failure has happened
            assert self.failed.wait(30)
        time.sleep(self.seconds)
        if src.stem == self.fail:
            self.failed.set()
            raise RuntimeError(f"notebook {src.name} failed at In [2] (ValueError: boom)")
        with self.lock:
            self.events.append(("end", src.stem))
        return self.seconds

    def started(self) -> list[str]:
        return [name for kind, name in self.events if kind == "start"]


def real_named_project(root: Path, params: str = 'profile = "quick"') -> Path:
    """A project whose (tiny) notebooks carry the real chapters' names."""
    for p in book.list_notebooks():
        write_notebook(root / "notebooks" / p.name, params, "pass")
    return root


def test_schedule_respects_needs_and_starts_the_longest_chain_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = FakeRuns()
    monkeypatch.setattr(book, "execute_notebook", runs)
    timings = book.build_book(root=real_named_project(tmp_path), html=False, jobs=2)
    stems = [p.stem for p in book.list_notebooks()]
    assert list(timings) == stems  # chapter order, whatever the order of execution
    assert runs.started()[0] == "03_captioner"  # head of 03 -> 04 -> 05 -> 07 / 08
    for i, (kind, name) in enumerate(runs.events):
        if kind == "start":
            ended = {n for k, n in runs.events[:i] if k == "end"}
            assert book.notebook_dependencies(book.list_notebooks())[name] <= ended, name
    # never more than two at once, and the two at a time did overlap
    active, most = 0, 0
    for kind, _ in runs.events:
        active += 1 if kind == "start" else -1
        most = max(most, active)
    assert most == 2


def test_only_counts_unselected_needs_as_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = FakeRuns()
    monkeypatch.setattr(book, "execute_notebook", runs)
    book.build_book(root=real_named_project(tmp_path), html=False, jobs=2,
                    only=["08", "06", "03"])
    started = runs.started()
    assert sorted(started) == ["03_captioner", "06_qualitative", "08_privacy_utility"]
    # both wait for 03 (through 05, not selected) and start only after it ended
    assert runs.events[:2] == [("start", "03_captioner"), ("end", "03_captioner")]


def test_threads_set_only_where_declared_and_only_with_several_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, params in [("01_threads", 'profile = "quick"\nnum_threads = 1  # torch'),
                         ("02_plain", 'profile = "quick"'),
                         ("90_benchmark", 'profile = "quick"\nnum_threads = 1  # timed run')]:
        write_notebook(tmp_path / "notebooks" / f"{name}.ipynb", params, "pass")
    monkeypatch.setattr(book, "available_cpus", lambda: 6)
    runs = FakeRuns()
    monkeypatch.setattr(book, "execute_notebook", runs)
    independent = {"01_threads": (), "02_plain": (), "90_benchmark": ()}
    book.build_book(root=tmp_path, html=False, jobs=3, needs=independent)
    assert runs.parameters == {"01_threads": {"num_threads": 2}, "02_plain": {},
                               "90_benchmark": {}}  # the benchmark keeps its own
    runs = FakeRuns()
    monkeypatch.setattr(book, "execute_notebook", runs)
    book.build_book(root=tmp_path, html=False, jobs=1, needs=independent)  # as before
    assert runs.started() == ["01_threads", "02_plain", "90_benchmark"]
    assert runs.parameters == {"01_threads": {}, "02_plain": {}, "90_benchmark": {}}


def test_failure_lets_running_finish_and_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("01_bad", "02_after", "03_running", "04_later"):
        write_notebook(tmp_path / "notebooks" / f"{name}.ipynb", 'profile = "quick"', "pass")
    runs = FakeRuns(fail="01_bad")
    runs.hold["03_running"] = threading.Event()  # still running when 01_bad fails
    monkeypatch.setattr(book, "execute_notebook", runs)
    needs = {"01_bad": (), "02_after": ("01_bad",), "03_running": (), "04_later": ()}
    with pytest.raises(RuntimeError) as info:
        book.build_book(root=tmp_path, html=False, jobs=2, needs=needs)
    message = str(info.value)
    assert "01_bad.ipynb failed at In [2] (ValueError: boom)" in message
    assert "not run: 02_after, 04_later" in message and "finished: 03_running" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert runs.started() == ["01_bad", "03_running"]
    assert ("end", "03_running") in runs.events  # it was left to finish
    manifest = json.loads((tmp_path / "book" / "executed" / "manifest.json").read_text())
    assert list(manifest) == ["03_running"]


RENDEZVOUS = (
    "import json, os, pathlib, time\n"
    "here = pathlib.Path('results')\n"
    "here.mkdir(exist_ok=True)\n"
    "(here / '{me}.started').write_text('')\n"
    "deadline = time.monotonic() + 60\n"
    "while not (here / '{other}.started').exists():  # the other one runs at the same time\n"
    "    assert time.monotonic() < deadline, 'ran alone'\n"
    "    time.sleep(0.05)\n"
    "(here / '{me}.json').write_text(json.dumps(globals().get('num_threads')))\n"
)


def test_independent_notebooks_run_together_with_their_share_of_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_notebook(tmp_path / "notebooks" / "01_left.ipynb",
                   'profile = "quick"\nnum_threads = 1  # torch threads',
                   RENDEZVOUS.format(me="left", other="right"))
    write_notebook(tmp_path / "notebooks" / "02_right.ipynb", 'profile = "quick"',
                   RENDEZVOUS.format(me="right", other="left"))
    monkeypatch.setattr(book, "available_cpus", lambda: 4)
    timings = book.build_book(root=tmp_path, html=False, jobs=2,
                              needs={"01_left": (), "02_right": ()})
    assert list(timings) == ["01_left", "02_right"]
    results = tmp_path / "results"
    assert json.loads((results / "left.json").read_text()) == 2  # 4 CPUs / 2 jobs
    assert json.loads((results / "right.json").read_text()) is None  # not declared: not set
    times = json.loads(book.book_times_path(tmp_path).read_text())
    assert times["jobs"] == 2 and times["wall_seconds"] > 0


def test_dependent_notebook_runs_after_its_dependency(tmp_path: Path) -> None:
    write_notebook(
        tmp_path / "notebooks" / "01_writer.ipynb", 'profile = "quick"',
        "import json, pathlib, time\ntime.sleep(2)\npathlib.Path('results').mkdir()\n"
        "pathlib.Path('results/written.json').write_text(json.dumps(time.time()))",
    )
    write_notebook(
        tmp_path / "notebooks" / "02_reader.ipynb", 'profile = "quick"',
        "import json, pathlib, time\nstart = time.time()\n"
        "written = json.loads(pathlib.Path('results/written.json').read_text())\n"
        "pathlib.Path('results/read.json').write_text(json.dumps([written, start]))",
    )
    book.build_book(root=tmp_path, html=False, jobs=2,
                    needs={"01_writer": (), "02_reader": ("01_writer",)})
    written, start = json.loads((tmp_path / "results" / "read.json").read_text())
    assert start >= written


def test_failure_stops_dependents_and_names_the_notebook(tmp_path: Path) -> None:
    write_notebook(tmp_path / "notebooks" / "01_bad.ipynb", 'profile = "quick"',
                   'raise ValueError("lens too small")')
    write_notebook(tmp_path / "notebooks" / "02_after.ipynb", 'profile = "quick"',
                   "import pathlib\npathlib.Path('after.txt').write_text('ran')")
    with pytest.raises(RuntimeError, match=r"01_bad\.ipynb failed .*ValueError: lens too small"
                       r".*not run: 02_after"):
        book.build_book(root=tmp_path, html=False, jobs=2,
                        needs={"01_bad": (), "02_after": ("01_bad",)})
    assert not (tmp_path / "after.txt").exists()
    assert not (tmp_path / "book" / "executed" / "02_after.ipynb").exists()
