"""The committed notebooks: output-free, parameterised, thin, and all in the book.

Executed copies belong to the book build (``book/executed/``), never to ``notebooks/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from privcap.book import list_notebooks, notebook_parameters

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list_notebooks(REPO_ROOT)
IDS = [p.stem for p in NOTEBOOKS]

# a function or class defined at any indentation of a code cell
DEFINITION = re.compile(r"^\s*(async\s+def|def|class)\s+\w+", re.MULTILINE)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def toc_notebooks() -> list[str]:
    """Stems of the executed notebooks that ``_toc.yml`` lists as pages."""
    text = (REPO_ROOT / "_toc.yml").read_text(encoding="utf-8")
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(text))
    prefix = "book/executed/"
    return [f.removeprefix(prefix) for f in files if f.startswith(prefix)]


def test_book_has_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3, f"expected the chapters in notebooks/, found {IDS}"


def test_every_notebook_file_follows_the_naming_scheme() -> None:
    stray = [
        p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb") if p not in NOTEBOOKS
    ]  # fmt: skip
    assert stray == [], f"notebooks must be named NN_name.ipynb: {stray}"


def test_toc_lists_every_notebook_and_nothing_else() -> None:
    listed = toc_notebooks()
    assert sorted(listed) == sorted(IDS), f"_toc.yml: {listed}, notebooks/: {IDS}"
    assert len(set(listed)) == len(listed), f"_toc.yml lists a notebook twice: {listed}"


def test_toc_keeps_the_chapter_order() -> None:
    listed = toc_notebooks()
    assert listed == sorted(listed), listed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_valid(path: Path) -> None:
    nbformat.validate(read(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path: Path) -> None:
    nb = read(path)
    dirty = [
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]  # fmt: skip
    assert dirty == [], f"{path.name}: cells with outputs or execution counts: {dirty}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_one_parameters_cell_first_among_code_cells(path: Path) -> None:
    nb = read(path)
    params = tagged(nb, "parameters")
    assert len(params) == 1, f"{path.name}: {len(params)} cells tagged 'parameters'"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert params[0] == first_code, f"{path.name}: the parameters cell is not the first code cell"
    assert tagged(nb, "injected-parameters") == [], f"{path.name}: committed after papermill ran"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_include_profile_and_are_documented(path: Path) -> None:
    params = notebook_parameters(path)
    assert "profile" in params, f"{path.name}: no 'profile' parameter (the book passes one)"
    assert params["profile"]["default"].strip("'\"") == "quick", params["profile"]
    undocumented = [name for name, p in params.items() if not p["help"].strip()]
    assert undocumented == [], (
        f"{path.name}: parameters without an inline '# comment' (the parameters page "
        f"shows it): {undocumented}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_include_profile_and_smoke(path: Path) -> None:
    """``privcap book`` passes ``profile``, and ``smoke=True`` for the test suite's run."""
    params = notebook_parameters(path)
    missing = [name for name in ("profile", "smoke") if name not in params]
    assert missing == [], f"{path.name}: parameters cell lacks {missing}"
    assert params["smoke"]["default"] == "False", (
        f"{path.name}: smoke must default to False (the book's run), got {params['smoke']}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_thin(path: Path) -> None:
    nb = read(path)
    found = [
        (i, m.group(0).strip())
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for m in DEFINITION.finditer(c.source)
    ]
    assert found == [], f"{path.name}: define functions/classes in privcap, not here: {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_opens_with_a_title(path: Path) -> None:
    nb = read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), (
        f"{path.name}: the first cell must be a markdown cell with the chapter's '# title'"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_does_not_switch_matplotlib_off(path: Path) -> None:
    nb = read(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "MPLBACKEND" not in code and 'use("Agg")' not in code and "use('Agg')" not in code
