"""``privcap.book``: notebook selection, the generated parameters page, papermill execution.

Runs on a throw-away project folder with tiny notebooks (a few seconds: one kernel start
per executed notebook); the real chapters are checked by tests/test_notebooks.py and, once
built, tests/test_book_site.py.
"""

from __future__ import annotations

import json
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
    timings = book.build_book(profile="coco-mini", root=project, html=False)
    assert list(timings) == ["01_first", "02_second"]
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
    timings = book.build_book(root=tmp_path, html=False, smoke=True)
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
