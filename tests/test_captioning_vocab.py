"""Tokenisation and vocabulary of the captioner."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from privcap.captioning.vocab import SPECIAL_TOKENS, Vocabulary, tokenize

CAPTIONS = [
    "A red circle on the left.",
    "a red circle, on the LEFT",
    "A blue square at the top!",
    "two red circles",
    "a blue square",
]


def test_tokenize_lowercases_and_strips_punctuation() -> None:
    assert tokenize("A Red, circle!  On the LEFT...") == ["a", "red", "circle", "on", "the", "left"]


def test_tokenize_splits_clitics_like_ptb_and_keeps_hyphens() -> None:
    assert tokenize("A man's T-shirt doesn't fit") == [
        "a",
        "man",
        "'s",
        "t-shirt",
        "does",
        "n't",
        "fit",
    ]


def test_tokenize_treats_every_whitespace_as_separator() -> None:
    assert tokenize("a dog\r\nruns\u2028fast\tnow") == ["a", "dog", "runs", "fast", "now"]


def test_tokenize_punctuation_only_gives_no_token() -> None:
    assert tokenize("... !? -- ,;") == []
    assert tokenize("") == []


def test_tokenize_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="caption must be a str"):
        tokenize(None)  # type: ignore[arg-type]


def test_build_applies_min_count_and_orders_by_frequency() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    assert vocab.words[:4] == list(SPECIAL_TOKENS)
    # counts: a 4, red 3, the 3, blue/circle/left/on/square 2; at/circles/top/two once
    assert vocab.words[4:] == ["a", "red", "the", "blue", "circle", "left", "on", "square"]
    assert "two" not in vocab and "top" not in vocab
    assert len(Vocabulary.build(CAPTIONS, min_count=1)) == 4 + 12


def test_build_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(CAPTIONS, min_count=0)
    with pytest.raises(ValueError, match="captions is empty"):
        Vocabulary.build([], min_count=1)


def test_encode_decode_round_trip() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    ids = vocab.encode("A red circle on the left.")
    assert ids[0] == vocab.start_id and ids[-1] == vocab.end_id
    assert vocab.decode(ids) == "a red circle on the left"
    for caption in CAPTIONS:
        assert vocab.decode(vocab.encode(caption)) == " ".join(tokenize(caption))


def test_unknown_words_become_unk() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    ids = vocab.encode("a purple circle")
    assert ids == [
        vocab.start_id,
        vocab.word_id("a"),
        vocab.unk_id,
        vocab.word_id("circle"),
        vocab.end_id,
    ]
    assert vocab.decode(ids) == "a <unk> circle"


def test_encode_batch_pads_and_truncates_at_max_len() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=1, max_len=3)
    batch = vocab.encode_batch(["a red circle on the left", "a blue square", "..."])
    assert batch.shape == (3, 5) and batch.dtype == torch.long
    a, red, circle = (vocab.word_id(w) for w in ("a", "red", "circle"))
    assert batch[0].tolist() == [1, a, red, circle, 2]
    assert batch[2].tolist() == [1, 2, 0, 0, 0]  # punctuation-only caption: empty
    assert vocab.decode(batch[2]) == ""


def test_decode_stops_at_end_and_rejects_bad_ids() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    red = vocab.word_id("red")
    assert vocab.decode([1, red, 2, red, red]) == "red"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([1, 999])


def test_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=2, max_len=7)
    path = vocab.save(tmp_path / "sub" / "vocab.json")
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.fingerprint() == vocab.fingerprint()
    assert loaded.max_len == 7 and loaded.min_count == 2
    assert json.loads(path.read_text())["words"][:4] == list(SPECIAL_TOKENS)


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Vocabulary.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        Vocabulary.load(bad)


def test_vocabulary_rejects_missing_special_tokens_and_duplicates() -> None:
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(words=["a", "b"])
    with pytest.raises(ValueError, match="duplicates"):
        Vocabulary(words=[*SPECIAL_TOKENS, "a", "a"])


def test_fingerprint_changes_with_words_and_max_len() -> None:
    vocab = Vocabulary.build(CAPTIONS, min_count=1)
    other = Vocabulary(words=[*vocab.words[:-1], "zebra"], max_len=vocab.max_len)
    longer = Vocabulary(words=list(vocab.words), max_len=vocab.max_len + 1)
    assert len({vocab.fingerprint(), other.fingerprint(), longer.fingerprint()}) == 3


@pytest.mark.shared
def test_tokenize_agrees_with_ptb_tokenizer_on_coco(coco_mini_dir) -> None:
    """Our tokens equal pycocoevalcap's PTB tokens on (almost) every real COCO caption."""
    if shutil.which("java") is None:
        pytest.skip("java is needed for the PTB tokenizer")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    data = json.loads((coco_mini_dir / "annotations" / "captions_val2017.json").read_text())
    captions = [" ".join(a["caption"].split()) for a in data["annotations"][:3000]]
    ptb = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(captions)})
    agree = sum(" ".join(tokenize(c)) == ptb[i][0] for i, c in enumerate(captions))
    # the rest differs only on abbreviations ("t.v.", "st.") and "a/b", "11:44"
    assert agree / len(captions) > 0.99


def test_caption_statistics() -> None:
    from privcap.captioning.vocab import caption_statistics

    stats = caption_statistics(["A red circle.", "a red circle", "two blue squares here", "..."])
    assert stats["num_captions"] == 4 and stats["num_empty"] == 1
    assert stats["length"] == {"min": 0, "max": 4, "mean": 2.5, "histogram": {0: 1, 3: 2, 4: 1}}
    assert stats["distinct_words"] == 7 and stats["distinct_captions"] == 3
    assert stats["top_words"][:3] == [["a", 2], ["circle", 2], ["red", 2]]
    with pytest.raises(ValueError, match="empty"):
        caption_statistics([])
