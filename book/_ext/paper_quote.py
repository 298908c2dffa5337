"""Sphinx extension of the book: the ``{paper}`...``` role for numbers quoted from the paper.

Every number of ours in the book is glued from a result file; a number the text quotes from
the paper is marked instead::

    the distorted images keep an SSIM of {paper}`0.48 ± 0.12` to the originals

It renders as the quoted text with a small superscript *paper* label that links to the note
explaining the book's numbers (the target ``paper-numbers`` of ``book/intro.md``); hovering
over the quote says where it comes from. ``privcap.book_prose`` does not count the role's
content as an unbacked number.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx import addnodes

#: label of the note (in book/intro.md) that every paper quote links to
TARGET = "paper-numbers"
#: shown when hovering over a quote
TITLE = "Quoted from the paper, not computed by this book"


class paper_quote(nodes.inline):  # noqa: N801 (docutils node classes are lower case)
    """A passage quoted from the paper (rendered as ``<span class="paper-quote">``)."""


def paper_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``{paper}`text```: ``text`` as written, followed by a linked *paper* label."""
    if not text.strip():
        message = inliner.reporter.error("the paper role needs the quoted text", line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    quote = paper_quote(rawtext, "", classes=["paper-quote"])
    quote += nodes.Text(text)
    label = addnodes.pending_xref(
        "", refdomain="std", reftype="ref", reftarget=TARGET, refexplicit=True,
        refwarn=True,
    )  # fmt: skip
    label += nodes.inline("paper", "paper")
    quote += nodes.superscript("", "", label, classes=["paper-label"])
    return [quote], []


def _visit_html(self: Any, node: paper_quote) -> None:
    self.body.append(self.starttag(node, "span", "", title=TITLE))


def _depart_html(self: Any, node: paper_quote) -> None:
    self.body.append("</span>")


def _visit_plain(self: Any, node: paper_quote) -> None:
    """Other builders (LaTeX, text, ...): the quote and its label as plain inline text."""


def _depart_plain(self: Any, node: paper_quote) -> None:
    pass


def setup(app: Any) -> dict[str, Any]:
    """Register the node and the ``paper`` role."""
    plain = (_visit_plain, _depart_plain)
    app.add_node(
        paper_quote,
        html=(_visit_html, _depart_html),
        latex=plain, text=plain, man=plain, texinfo=plain,
    )  # fmt: skip
    app.add_role("paper", paper_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
