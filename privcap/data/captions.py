"""Caption text hygiene shared by every loader.

Caption files in the wild contain line breaks (``\\n``, ``\\r``), Unicode line / paragraph
separators (``\\u2028``, ``\\u2029``), tabs, zero-width characters and captions that are
empty or consist of punctuation only. The COCO evaluation tools pass captions to a
line-based tokenizer, where one stray line break shifts every later caption onto the
wrong image without an error (DESIGN sec. 7). Every caption therefore goes through
:func:`normalize_caption` on loading, and :func:`clean_captions` drops (and counts) the
ones left without a single letter or digit.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

#: Reasons a caption is dropped, as used in the loaders' reports.
DROP_EMPTY = "empty"
DROP_PUNCTUATION = "punctuation_only"
DROP_NOT_TEXT = "not_a_string"


def normalize_caption(text: str) -> str:
    """Replace every line break, separator, tab or control character by one space, drop
    invisible format characters (zero-width space, soft hyphen, BOM), collapse runs of
    spaces and strip both ends. Letters, digits and punctuation are kept as they are."""
    if not isinstance(text, str):
        raise TypeError(f"caption must be a string, got {type(text).__name__}: {text!r}")
    out = []
    for char in text:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Cc", "Zl", "Zp", "Zs"):
            out.append(" ")
        elif category in ("Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(char)
    return " ".join("".join(out).split())


def has_content(text: str) -> bool:
    """True when ``text`` contains at least one letter or digit."""
    return any(char.isalnum() for char in text)


def clean_captions(captions: Iterable[object]) -> tuple[list[str], Counter[str], int]:
    """Normalise ``captions`` and drop the unusable ones.

    Returns:
        ``(kept, dropped, changed)``: the normalised captions worth keeping, counts of the
        dropped ones by reason (``"empty"``, ``"punctuation_only"``, ``"not_a_string"``),
        and how many kept captions were altered by the normalisation.
    """
    kept: list[str] = []
    dropped: Counter[str] = Counter()
    changed = 0
    for caption in captions:
        if not isinstance(caption, str):
            dropped[DROP_NOT_TEXT] += 1
            continue
        text = normalize_caption(caption)
        if not text:
            dropped[DROP_EMPTY] += 1
        elif not has_content(text):
            dropped[DROP_PUNCTUATION] += 1
        else:
            kept.append(text)
            changed += text != caption
    return kept, dropped, changed
