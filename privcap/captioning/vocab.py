"""Tokenisation and the word vocabulary of the captioner.

Captions are turned into word tokens the way the COCO evaluation sees them: lower case,
punctuation removed, clitics split off as the Penn Treebank (PTB) tokenizer does
(``"man's" -> "man 's"``, ``"don't" -> "do n't"``), hyphenated words kept whole. A caption
generated from these tokens is therefore left unchanged by pycocoevalcap's PTB tokenizer.

The vocabulary holds the words seen at least ``min_count`` times in the training captions
plus four special tokens ``<pad> <start> <end> <unk>`` (ids 0-3). A caption is encoded as
``<start> w_1 ... w_n <end> <pad> ...`` with at most ``max_len`` words; words outside the
vocabulary become ``<unk>``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
#: special tokens, in the order of their ids
SPECIAL_TOKENS: tuple[str, ...] = (PAD, START, END, UNK)

# PTB-style clitics split from the word before them
_CLITIC_NT = re.compile(r"(?<=[^\W_])n't\b")
_CLITIC_OTHER = re.compile(r"(?<=[^\W_])'(s|re|ll|ve|m|d)\b")
# a token: a clitic, or letters/digits possibly joined by inner hyphens
_TOKEN = re.compile(r"n't|'(?:s|re|ll|ve|m|d)\b|[^\W_]+(?:-[^\W_]+)*")
_CURLY_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def tokenize(caption: str) -> list[str]:
    """Split a caption into lower-case word tokens, punctuation removed.

    Any whitespace (``\\r``, ``\\n``, ``\\u2028`` ...) separates words. Returns an empty list
    for a caption of punctuation only.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}: {caption!r}")
    text = caption.lower().translate(_CURLY_QUOTES)
    text = _CLITIC_NT.sub(" n't", text)
    text = _CLITIC_OTHER.sub(r" '\1", text)
    return _TOKEN.findall(text)


@dataclass
class Vocabulary:
    """Word <-> id mapping with special tokens ``<pad> <start> <end> <unk>`` (ids 0-3).

    Attributes:
        words: all tokens, index = id; the first four are :data:`SPECIAL_TOKENS`.
        max_len: maximum number of words per caption (longer captions are cut).
        min_count: the frequency threshold the vocabulary was built with (informative).
    """

    words: list[str]
    max_len: int = 16
    min_count: int = 5
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if list(self.words[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"words must start with {list(SPECIAL_TOKENS)}, got {list(self.words[:4])}"
            )
        if len(set(self.words)) != len(self.words):
            dupes = sorted(w for w, c in Counter(self.words).items() if c > 1)
            raise ValueError(f"words contains duplicates: {dupes[:10]}")
        if not isinstance(self.max_len, int) or self.max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {self.max_len!r}")
        self._index = {w: i for i, w in enumerate(self.words)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls, captions: Iterable[str], min_count: int = 5, max_len: int = 16
    ) -> Vocabulary:
        """Vocabulary of the words seen at least ``min_count`` times in ``captions``.

        Words are ordered by decreasing count, then alphabetically (deterministic).
        """
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        counts: Counter[str] = Counter()
        n_captions = 0
        for caption in captions:
            counts.update(tokenize(caption))
            n_captions += 1
        if n_captions == 0:
            raise ValueError("captions is empty: cannot build a vocabulary")
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
        return cls(words=[*SPECIAL_TOKENS, *kept], max_len=max_len, min_count=min_count)

    # ------------------------------------------------------------------ ids
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def start_id(self) -> int:
        return 1

    @property
    def end_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    def word_id(self, word: str) -> int:
        """Id of ``word``, ``<unk>``'s id for a word outside the vocabulary."""
        return self._index.get(word, self.unk_id)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, caption: str) -> list[int]:
        """``[<start>, w_1 .. w_n, <end>]`` ids, ``n <= max_len``, unknown words -> ``<unk>``."""
        tokens = tokenize(caption)[: self.max_len]
        return [self.start_id, *(self.word_id(t) for t in tokens), self.end_id]

    def encode_batch(self, captions: Sequence[str]) -> Tensor:
        """Padded ``N x (max_len + 2)`` int64 tensor of :meth:`encode` for each caption."""
        out = torch.full((len(captions), self.max_len + 2), self.pad_id, dtype=torch.long)
        for row, caption in enumerate(captions):
            ids = self.encode(caption)
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """Words of an id sequence: skips ``<start>``/``<pad>``, stops at the first ``<end>``."""
        words: list[str] = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < len(self.words):
                raise ValueError(f"token id {i} is outside the vocabulary of size {len(self)}")
            if i == self.end_id:
                break
            if i in (self.start_id, self.pad_id):
                continue
            words.append(self.words[i])
        return words

    def decode(self, ids: Iterable[int]) -> str:
        """Caption string of an id sequence (see :meth:`decode_tokens`)."""
        return " ".join(self.decode_tokens(ids))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-serialisable description (inverse of :meth:`from_dict`)."""
        return {"words": list(self.words), "max_len": self.max_len, "min_count": self.min_count}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        """Vocabulary from :meth:`to_dict`'s output."""
        if not isinstance(data, dict) or "words" not in data:
            raise ValueError(f"vocabulary data must be a dict with 'words', got {type(data)}")
        return cls(
            words=list(data["words"]),
            max_len=int(data.get("max_len", 16)),
            min_count=int(data.get("min_count", 5)),
        )

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"vocabulary file {path} is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def fingerprint(self) -> str:
        """Short sha256 of the word list and ``max_len``: equal iff the encodings agree."""
        payload = json.dumps([self.words, self.max_len]).encode("utf-8")
        return hashlib.sha256(payload).hexdigest()[:16]


def caption_statistics(captions: Iterable[str], top_words: int = 15) -> dict:
    """Statistics of a set of captions, in the tokens of :func:`tokenize`.

    Returns a JSON-serialisable dict: ``num_captions``, ``num_empty`` (no token left),
    ``length`` (``min``, ``max``, ``mean``, ``histogram`` {tokens: count}),
    ``distinct_words``, ``distinct_captions`` and ``top_words`` ``[[word, count], ...]``
    (by decreasing count, then alphabetically).
    """
    lengths: Counter[int] = Counter()
    words: Counter[str] = Counter()
    distinct: set[str] = set()
    for caption in captions:
        tokens = tokenize(caption)
        lengths[len(tokens)] += 1
        words.update(tokens)
        distinct.add(" ".join(tokens))
    total = sum(lengths.values())
    if total == 0:
        raise ValueError("captions is empty: no statistics")
    return {
        "num_captions": total,
        "num_empty": lengths.get(0, 0),
        "length": {
            "min": min(lengths),
            "max": max(lengths),
            "mean": sum(k * v for k, v in lengths.items()) / total,
            "histogram": {int(k): v for k, v in sorted(lengths.items())},
        },
        "distinct_words": len(words),
        "distinct_captions": len(distinct),
        "top_words": [
            [w, words[w]] for w in sorted(words, key=lambda w: (-words[w], w))[:top_words]
        ],
    }
