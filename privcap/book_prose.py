"""Numbers in the book's prose that no result backs.

The rule of the book: a number in the text of a chapter is *glued* from a result file
(myst-nb, ``{glue:text}`name:.3f```), so a rerun that changes the result changes the text;
a number quoted from the paper is marked with the book's ``{paper}`...``` role (Sphinx
extension ``book/_ext/paper_quote.py``). :func:`unbacked_numbers` finds the numbers of a
Markdown text that are neither, so a test can refuse a chapter that states a number by hand.

What does *not* count as a stated number (it is masked before the search):

- anything between backticks: inline code, and therefore every role (``{glue:text}``,
  ``{paper}``, ``{doc}``, ...); code blocks (fences without a directive, or ``{code-cell}``,
  ``{math}`` and the like; the text inside prose directives such as ``{note}`` is checked);
- math: ``$...$``, ``$$...$$`` and ``\\begin{env} ... \\end{env}``;
- links and addresses: ``[text](target)``, ``[text][ref]``, ``<https://...>``, bare URLs,
  HTML tags, MyST targets ``(label)=``;
- references: ``Eq. 3``, ``Eqs. 6-9``, ``Eq. (1)``, ``Sec. 2.1``, ``Fig. 2``, ``Table 1``,
  ``chapter 03``, ``chapters 04-08``, ``Appendix 1`` (with ``,``, ``-``, ``and``, ``to``
  joining several);
- names that contain digits: Zernike terms ``Z_4``, ``Z4``, ``Z_{11}``; words with digits
  (``val2017``, ``MobileNetV2``, ``ResNet-101``, ``BLEU-4``); ``1-D``/``2-D``/``3-D``;
  ordinals (``4th``); a release year after ``COCO`` (``COCO 2014``); a year after
  ``et al.`` (a citation); versions (``Python 3.11``, ``1.x``);
- the number of an ordered-list item (``1.`` at the start of a line).

A number with its unit attached (``256px``) is reported like any other (write
``{glue:text}`size` px``); a number written in words is outside what the check can see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: directives whose body is code or math (masked); any other ``{directive}`` body is prose
CODE_DIRECTIVES = frozenset(
    {"code-cell", "code-block", "code", "sourcecode", "math", "literalinclude", "raw",
     "eval-rst", "glue:math", "mermaid"}
)  # fmt: skip

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>[^\n]*)$")
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.DOTALL)
_ENV_MATH = re.compile(r"\\begin\{(?P<env>[A-Za-z*]+)\}.*?\\end\{(?P=env)\}", re.DOTALL)
# inline math: no blank line inside, the opening $ not escaped
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?:[^$\\\n]|\\.|\n(?![ \t]*\n))+?\$")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]\n]*\](?:\([^)\n]*\)|\[[^\]\n]*\])")
_LINK_DEFINITION = re.compile(r"^[ \t]*\[[^\]\n]+\]:[^\n]*$", re.MULTILINE)
_FOOTNOTE = re.compile(r"\[\^[^\]\n]+\]")
_AUTOLINK = re.compile(r"<[A-Za-z][A-Za-z0-9+.-]*:[^>\s]*>")
_URL = re.compile(r"\b(?:https?|ftp|file)://[^\s)>\]]+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")
_TARGET = re.compile(r"^[ \t]*\([^()\n]+\)=[ \t]*$", re.MULTILINE)
_REF_NUMBER = r"\(?\d+(?:\.\d+)*[a-z]?\)?"
_REFERENCE = re.compile(
    r"\b(?:eqs?|equations?|secs?|sections?|figs?|figures?|tables?|chapters?|appendix|"
    r"appendices|algorithms?)\.?[ \t\n]*(?:no\.[ \t]*)?" + _REF_NUMBER
    + r"(?:[ \t\n]*(?:,|-|–|—|\band\b|\bto\b|\bor\b|&)[ \t\n]*" + _REF_NUMBER + r")*",
    re.IGNORECASE,
)
_ZERNIKE = re.compile(r"\bZ_?\{?\d+\}?")
_DIMENSION = re.compile(r"(?<![\w.])[1-4]-?D\b")
_COCO_YEAR = re.compile(r"\bCOCO[ \t]+(?:19|20)\d\d\b")
_CITATION_YEAR = re.compile(r"\bet[ \t]+al\.?,?[ \t\n]*\(?(?:19|20)\d\d[a-z]?\)?")
_VERSION = re.compile(r"\bPython[ \t]+\d+(?:\.\d+)*|(?<![\w.])\d+(?:\.\d+)*\.x\b")
_LIST_MARKER = re.compile(r"^[ \t]*\d+[.)](?=[ \t])", re.MULTILINE)
# a word that contains digits (starts with a letter or underscore, or letters-hyphen-digits)
_NAME_WITH_DIGITS = re.compile(r"\b[A-Za-z_][\w]*\d[\w]*|\b[A-Za-z][A-Za-z_]*-\d+\w*")

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?P<suffix>[A-Za-z]*)")
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})


@dataclass(frozen=True)
class UnbackedNumber:
    """A number of the prose that is neither glued, nor quoted, nor a reference."""

    number: str
    #: the line of the Markdown text that holds it (stripped)
    line: str

    def __str__(self) -> str:
        return f"{self.number!r} in {self.line!r}"


def _blank(text: str, start: int, end: int) -> str:
    """``text`` with ``[start, end)`` replaced by spaces (newlines kept: lines stay put)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _mask(text: str, pattern: re.Pattern[str]) -> str:
    for match in reversed(list(pattern.finditer(text))):
        text = _blank(text, match.start(), match.end())
    return text


def _mask_backticks(text: str) -> str:
    """Blank inline code spans (any number of backticks, CommonMark matching)."""
    out = text
    i = 0
    while i < len(text):
        if text[i] != "`":
            i += 1
            continue
        j = i
        while j < len(text) and text[j] == "`":
            j += 1
        ticks = text[i:j]
        close = re.compile(r"(?<!`)" + re.escape(ticks) + r"(?!`)")
        found = close.search(text, j)
        if found is None:  # an unmatched run is literal text
            i = j
            continue
        out = _blank(out, i, found.end())
        i = found.end()
    return out


def _mask_fences(text: str) -> str:
    """Blank code blocks, and the fence lines and options of prose directives."""
    lines = text.split("\n")
    masked = list(lines)
    stack: list[tuple[str, bool]] = []  # (fence, is code)
    for n, line in enumerate(lines):
        match = _FENCE.match(line)
        if stack:
            fence, is_code = stack[-1]
            stripped = line.strip()
            if match and stripped.startswith(fence[0] * len(fence)) and not match["info"].strip():
                stack.pop()
                masked[n] = ""
                continue
            if is_code:
                masked[n] = ""
                continue
            if re.match(r"^[ \t]*:[\w-]+:", line):  # a directive option
                masked[n] = ""
                continue
        if match:
            info = match["info"].strip()
            if match["fence"][0] == ":" and not info.startswith("{"):
                continue  # ":::" alone is not a fence opener
            directive = re.match(r"^\{([^}]+)\}", info)
            is_code = directive is None or directive.group(1).strip() in CODE_DIRECTIVES
            stack.append((match["fence"], is_code))
            masked[n] = ""
    return "\n".join(masked)


def find_unbacked_numbers(markdown: str) -> list[UnbackedNumber]:
    """The numbers of ``markdown`` that are not glued, quoted, nor references (module doc)."""
    if not isinstance(markdown, str):
        raise TypeError(f"markdown must be a str, got {type(markdown).__name__}")
    text = markdown.replace("\r\n", "\n")
    text = _mask_fences(text)
    text = _mask(text, _HTML_COMMENT)
    text = _mask_backticks(text)
    for pattern in (_DISPLAY_MATH, _ENV_MATH, _INLINE_MATH, _LINK, _LINK_DEFINITION,
                    _FOOTNOTE, _AUTOLINK, _URL, _HTML_TAG, _TARGET, _REFERENCE, _ZERNIKE,
                    _DIMENSION, _COCO_YEAR, _CITATION_YEAR, _VERSION, _LIST_MARKER,
                    _NAME_WITH_DIGITS):  # fmt: skip
        text = _mask(text, pattern)
    original_lines = markdown.replace("\r\n", "\n").split("\n")
    found: list[UnbackedNumber] = []
    for match in _NUMBER.finditer(text):
        suffix = match["suffix"]
        if suffix.lower() in _ORDINAL_SUFFIXES:
            continue
        number = match.group(0)[: len(match.group(0)) - len(suffix)].rstrip(",")
        row = text.count("\n", 0, match.start())
        found.append(UnbackedNumber(number + suffix, original_lines[row].strip()))
    return found


def unbacked_numbers(markdown: str) -> list[str]:
    """The numbers (as written) of ``markdown`` that no glue, paper quote or reference backs."""
    return [u.number for u in find_unbacked_numbers(markdown)]


def notebook_unbacked_numbers(path: str | Path) -> list[str]:
    """``"cell N: '0.5' in '<line>'"`` for every unbacked number of a notebook's markdown."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    nb = nbformat.read(str(path), as_version=4)
    return [
        f"cell {i}: {u}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for u in find_unbacked_numbers(cell.source)
    ]


_GLUE_ROLE = re.compile(r"\{glue(?P<kind>:[a-z]*)?\}`(?P<key>[^`]+)`")
_GLUE_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{glue(?::[a-z]*)?\}[ \t]+(?P<key>\S+)",
                             re.MULTILINE)
_GLUE_CALL = re.compile(r"\bglue\(\s*(?P<q>['\"])(?P<key>[^'\"]+)(?P=q)")


def glue_references(markdown: str) -> list[str]:
    """Names that ``markdown`` pastes with a glue role or directive (format specs removed)."""
    keys = []
    for match in _GLUE_ROLE.finditer(markdown):
        key = match["key"].strip()
        if match["kind"] == ":text":  # {glue:text}`name:.3f`: myst-nb splits at the last colon
            key = key.rsplit(":", 1)[0] if ":" in key.split("::")[-1] else key
        keys.append(key.split("::")[-1])
    keys += [m["key"].split("::")[-1] for m in _GLUE_DIRECTIVE.finditer(markdown)]
    return keys


def glued_names(code: str | Iterable[str]) -> set[str]:
    """Names glued by literal ``glue("name", ...)`` calls in ``code`` (one or more cells)."""
    sources = [code] if isinstance(code, str) else list(code)
    return {m["key"] for source in sources for m in _GLUE_CALL.finditer(source)}
