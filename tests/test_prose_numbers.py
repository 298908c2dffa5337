"""The book states only what it computed.

A number in the text of a chapter is glued from a result (myst-nb ``glue``) or marked as
quoted from the paper (the ``{paper}`...``` role of ``book/_ext/paper_quote.py``); a
qualitative claim about a result is asserted in a hidden cell that only smoke runs skip.
:mod:`privcap.book_prose` finds the numbers no result backs; this file runs it on every
chapter and on every hand-written page of ``_toc.yml`` (the introduction among them), and
checks the checker itself on planted numbers.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from privcap.book import list_notebooks
from privcap.book_prose import (
    find_unbacked_numbers,
    glue_references,
    glued_names,
    notebook_unbacked_numbers,
    unbacked_numbers,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list_notebooks(REPO_ROOT)
IDS = [p.stem for p in NOTEBOOKS]
INTRO = REPO_ROOT / "book" / "intro.md"
EXTENSIONS = REPO_ROOT / "book" / "_ext"


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def paper_quote_module():
    spec = importlib.util.spec_from_file_location("paper_quote", EXTENSIONS / "paper_quote.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the book ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_states_no_unbacked_number(path: Path) -> None:
    found = notebook_unbacked_numbers(path)
    assert found == [], (
        f"{path.name}: numbers in the text that are neither glued ({{glue:text}}`name`) nor "
        f"quoted from the paper ({{paper}}`...`): {found}"
    )


def toc_markdown_pages() -> list[Path]:
    """The hand-written Markdown pages of ``_toc.yml`` (the introduction first); pages that
    the build generates (``book/_generated/``, a table of the notebooks' parameters and
    their defaults) state no results and are left out."""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return [REPO_ROOT / f"{f}.md" for f in files
            if (REPO_ROOT / f"{f}.md").is_file() and not f.startswith("book/_generated/")]


PAGES = toc_markdown_pages()


def test_the_introduction_is_checked() -> None:
    assert INTRO in PAGES, PAGES
    assert REPO_ROOT / "book" / "reproduction_notes.md" in PAGES, PAGES


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_states_no_unbacked_number(page: Path) -> None:
    found = [str(u) for u in find_unbacked_numbers(page.read_text(encoding="utf-8"))]
    assert found == [], f"{page.relative_to(REPO_ROOT)}: unbacked numbers {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_pasted_name_is_glued_by_the_chapter(path: Path) -> None:
    nb = read(path)
    pasted = {k for c in nb.cells if c.cell_type == "markdown" for k in glue_references(c.source)}
    glued = glued_names(c.source for c in nb.cells if c.cell_type == "code")
    assert sorted(pasted - glued) == [], f"{path.name}: pasted but never glued"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_claims_are_asserted_in_hidden_cells_skipped_only_at_smoke_size(path: Path) -> None:
    nb = read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not re.search(r"^\s*assert\b", cell.source, re.M):
            continue
        assert "remove-cell" in cell.metadata.get("tags", []), (
            f"{path.name}: cell {i} asserts a claim but is shown in the book (tag remove-cell)"
        )
        assert re.search(r"\bif not smoke\b", cell.source), (
            f"{path.name}: cell {i} asserts a claim without `if not smoke:` (smoke runs have "
            "tiny sizes whose numbers mean nothing)"
        )


def test_paper_role_is_registered_and_links_to_the_note() -> None:
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    local = config["sphinx"]["local_extensions"]
    assert local.get("paper_quote") == "book/_ext", local
    target = paper_quote_module().TARGET
    assert f"({target})=" in INTRO.read_text(encoding="utf-8"), (
        f"book/intro.md must define the target ({target})= that every paper quote links to"
    )


# --- the checker ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("The loss fell to 0.731 after the last epoch.", ["0.731"]),
        ("An SSIM of 0.48 ± 0.12 on 2,103 pairs.", ["0.48", "0.12", "2,103"]),
        ("a 16 x 16 sensor for 256px images", ["16", "16", "256px"]),
        ("Table 1 has 7 rows; Eq. 3 gives 0.5.", ["7", "0.5"]),
        ("It ends with 42.", ["42"]),
        ("{glue:text}`a:.2f` is glued, 12 is not", ["12"]),
        ("$x = 1$ in math, then 5 outside", ["5"]),
        ("`code 3` and [a link 4](page/5.html), but 6 here", ["6"]),
        ("1. first item\n2. second item with 3 parts", ["3"]),
        ("```{note}\nA note that holds 9 things.\n```", ["9"]),
        ("```python\nx = 5\n```\nand 7 after the code", ["7"]),
        ("the 4th term, in 12 steps", ["12"]),
        ("-0.5 and 1e-3", ["0.5", "1e", "3"]),
    ],
)
def test_checker_finds_planted_numbers(markdown: str, expected: list[str]) -> None:
    assert unbacked_numbers(markdown) == expected


@pytest.mark.parametrize(
    "markdown",
    [
        "See Eq. 3, Eqs. 6-9, Eq. (1), Eqs. 1 and 2, Sec. 2.1, Sec. 2.2.3, Fig. 2, Table 1.",
        "chapter 03 and chapters 04-08, Appendix 2, sections 3 to 5",
        "Zernike terms Z_4, Z4, Z_{11} and $Z_5$",
        "glued {glue:text}`ee_pct:.2f` % and {glue}`figure_name` and {glue:md}`table`",
        "quoted {paper}`0.48 ± 0.12` and {paper}`29.0 / 26.8 / 89.0`",
        "math $a = 3$, $$x = 2$$ and\n$$\ny = 10^{11}\n$$",
        "\\begin{align} z = 4 \\end{align}",
        "code `x = 5`, ``a `7` b``, roles {doc}`executed/01_fresnel_psf`",
        "[text 3](http://host/4) [ref 5][6] <https://host/7> https://host/8 ![img 9](f10.png)",
        "ResNet-101, MobileNetV2, BLEU-4, BLEU_4, val2017, DeblurGANv2, L2",
        "COCO 2014, Wang et al. 2004, Python 3.11, Jupyter Book 1.x, 1-D FFTs, 2-D, 3D",
        "1. the architecture\n2. the data\n10. more",
        "```bash\nmake book PROFILE=2\n```",
        "```{code-cell} python\nx = 3\n```",
        "(label-2)=\n## Title",
        "<!-- a comment with 3 -->",
        "the 4th term, the 2nd and 3rd, the 21st",
    ],
)
def test_checker_ignores_what_is_not_a_stated_number(markdown: str) -> None:
    assert unbacked_numbers(markdown) == []


def test_checker_reports_the_line_of_each_number() -> None:
    found = find_unbacked_numbers("# Title\n\nfine text\nthe error is 0.25 here")
    assert [(u.number, u.line) for u in found] == [("0.25", "the error is 0.25 here")]


def test_checker_refuses_a_non_string() -> None:
    with pytest.raises(TypeError, match="markdown must be a str"):
        unbacked_numbers(["0.5"])  # type: ignore[arg-type]


@pytest.mark.parametrize("path", NOTEBOOKS[:1], ids=IDS[:1])
def test_checker_catches_a_number_planted_in_a_chapter(path: Path, tmp_path: Path) -> None:
    planted = tmp_path / path.name
    shutil.copyfile(path, planted)
    nb = read(planted)
    markdown = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    nb.cells[markdown[-1]].source += "\n\nThe simulation is off by 0.731 % at most."
    nbformat.write(nb, str(planted))
    found = notebook_unbacked_numbers(planted)
    assert found == [f"cell {markdown[-1]}: '0.731' in 'The simulation is off by 0.731 % at most.'"]


def test_notebook_checker_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        notebook_unbacked_numbers(tmp_path / "missing.ipynb")


def test_glue_names_pasted_and_glued() -> None:
    markdown = (
        "{glue:text}`a:.3f`, {glue}`b`, {glue:text}`c`, {glue:md}`d`\n```{glue:figure} e\n```"
    )
    assert glue_references(markdown) == ["a", "b", "c", "d", "e"]
    code = ['glue("a", 1.0, display=False)', "glue('b', x)\nglue(f\"c_{k}\", y)"]
    assert glued_names(code) == {"a", "b"}


# --- the {paper} role, rendered by Sphinx ---------------------------------------------------


def build_site(tmp_path: Path, page: str) -> tuple[int, str, str]:
    """A two-page Sphinx site with the book's extension: (exit code, page HTML, warnings)."""
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    target = paper_quote_module().TARGET
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXTENSIONS)!r})\n"
        "extensions = ['myst_parser', 'paper_quote']\nnitpicky = True\n",
        encoding="utf-8",
    )
    (src / "index.md").write_text(
        f"# Home\n\n```{{toctree}}\npage\n```\n\n({target})=\n## Numbers\n\nA note.\n",
        encoding="utf-8",
    )
    (src / "page.md").write_text(f"# Page\n\n{page}\n", encoding="utf-8")
    warnings = tmp_path / "warnings.txt"
    out = tmp_path / "html"
    code = build_main(["-q", "-W", "-n", "-b", "html", "-w", str(warnings), str(src), str(out)])
    html = (out / "page.html").read_text(encoding="utf-8") if (out / "page.html").exists() else ""
    return code, html, warnings.read_text(encoding="utf-8")


def test_paper_role_renders_a_linked_label(tmp_path: Path) -> None:
    code, html, warnings = build_site(tmp_path, "The SSIM is {paper}`0.48 ± 0.12` there.")
    assert code == 0 and warnings == "", warnings
    quote = re.search(r'<span class="paper-quote" title="([^"]+)">(.*?)</sup></span>', html)
    assert quote is not None, html
    assert "paper" in quote.group(1).lower()
    assert quote.group(2).startswith("0.48 ± 0.12<sup class=\"paper-label\">")
    assert 'href="index.html#paper-numbers"' in quote.group(2)


def test_paper_role_without_text_fails_the_build(tmp_path: Path) -> None:
    code, _, warnings = build_site(tmp_path, "Empty: {paper}` ` here.")
    assert code != 0 and "paper role needs the quoted text" in warnings
