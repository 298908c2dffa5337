"""All caption metrics, METEOR included, against pycocoevalcap on the official COCO captions.

Each METEOR JVM needs about 2.5 GB of memory and several seconds to start, so the module
starts exactly two: one inside ``caption_scores`` and one for pycocoevalcap's own ``Meteor``,
each shared by all tests through a module-scoped fixture.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from privcap.metrics import CAPTION_METRICS, CaptionScores, caption_scores, score_captions

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(shutil.which("java") is None, reason="java not installed"),
]

#: images scored: the first ones of val2017 by id (all 5,000 are in the benchmark)
N_IMAGES = 1000
EMPTY_ID_POSITIONS = (10, 500)  # candidates replaced by "" and by punctuation only


@pytest.fixture(scope="module")
def caption_sets(coco_mini_dir: Path) -> tuple[dict, dict]:
    """References (all captions but the first) and candidates (the first) of real images."""
    path = coco_mini_dir / "annotations" / "captions_val2017.json"
    with open(path, encoding="utf-8") as handle:
        annotations = json.load(handle)["annotations"]
    by_image: dict[int, list[str]] = defaultdict(list)
    for ann in sorted(annotations, key=lambda a: a["id"]):
        by_image[ann["image_id"]].append(ann["caption"])
    ids = sorted(by_image)[:N_IMAGES]
    references = {i: by_image[i][1:] for i in ids}
    candidates = {i: by_image[i][0] for i in ids}
    candidates[ids[EMPTY_ID_POSITIONS[0]]] = ""
    candidates[ids[EMPTY_ID_POSITIONS[1]]] = " . , "
    return references, candidates


@pytest.fixture(scope="module")
def ours(caption_sets) -> tuple[CaptionScores, list[str]]:
    """``caption_scores`` with all metrics (one METEOR JVM), and the warnings it gave."""
    references, candidates = caption_sets
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = caption_scores(references, candidates)
    return scores, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def reference_numbers(caption_sets) -> tuple[dict[str, float], dict[str, list[float]]]:
    """pycocoevalcap called directly: its tokenizer, then each scorer (no SPICE).

    Returns the corpus values and the per-image values (lists in the order of the ids).
    """
    references, candidates = caption_sets
    gts = PTBTokenizer().tokenize(
        {i: [{"caption": c} for c in refs] for i, refs in references.items()}
    )
    res = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in candidates.items()})
    with redirect_stdout(io.StringIO()):
        bleu, bleu_each = Bleu(4).compute_score(gts, res)
    scorer = Meteor()
    meteor, meteor_each = scorer.compute_score(gts, res)
    scorer.meteor_p.stdout.close()  # pycocoevalcap leaves these open
    scorer.meteor_p.stderr.close()
    del scorer  # its __del__ ends the JVM
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    corpus = dict(zip(CAPTION_METRICS, [*bleu, meteor, rouge, cider], strict=True))
    each = [*bleu_each, meteor_each, list(rouge_each), list(cider_each)]
    return corpus, dict(zip(CAPTION_METRICS, each, strict=True))


def test_input_is_real_and_has_the_known_trap(caption_sets):
    references, candidates = caption_sets
    assert len(references) == N_IMAGES and references.keys() == candidates.keys()
    assert all(len(refs) >= 4 for refs in references.values())
    # the official file has captions with a line break inside; pycocoevalcap replaces "\n"
    # itself, so they must give the same numbers
    n_newlines = sum("\n" in c for refs in references.values() for c in refs)
    assert n_newlines > 0


def test_exactly_pycocoevalcaps_numbers(ours, reference_numbers):
    scores = ours[0].corpus
    expected, _ = reference_numbers
    assert list(scores) == list(CAPTION_METRICS)
    for key in CAPTION_METRICS:
        assert isinstance(scores[key], float), key
        assert scores[key] == expected[key], key


def test_exactly_pycocoevalcaps_numbers_per_image(ours, reference_numbers, caption_sets):
    per_image = ours[0].per_image
    _, expected = reference_numbers
    ids = list(caption_sets[0])
    assert list(per_image) == ids
    for key in CAPTION_METRICS:
        assert [per_image[i][key] for i in ids] == expected[key], key
    # corpus CIDEr and ROUGE-L are the per-image means; METEOR and BLEU are not
    cider = [per_image[i]["CIDEr"] for i in ids]
    assert ours[0].corpus["CIDEr"] == pytest.approx(sum(cider) / len(ids), rel=1e-12)


def test_numbers_are_those_of_human_captions(ours):
    scores = ours[0].corpus
    # one human caption against the other four: the known range of COCO's human agreement
    assert 0.55 < scores["BLEU_1"] < 0.75
    assert 0.12 < scores["BLEU_4"] < 0.3
    assert 0.18 < scores["METEOR"] < 0.3
    assert 0.4 < scores["ROUGE_L"] < 0.6
    assert 0.6 < scores["CIDEr"] < 1.1
    assert scores["BLEU_1"] > scores["BLEU_2"] > scores["BLEU_3"] > scores["BLEU_4"]


def test_empty_candidates_reported(ours, caption_sets):
    result, messages = ours
    ids = sorted(caption_sets[0])
    assert result.empty_candidates == tuple(ids[pos] for pos in EMPTY_ID_POSITIONS)
    for pos in EMPTY_ID_POSITIONS:
        assert all(result.per_image[ids[pos]][k] == 0.0 for k in CAPTION_METRICS)
    assert len(messages) == 1
    assert f"2 of {N_IMAGES} candidate captions are empty" in messages[0]
    for pos in EMPTY_ID_POSITIONS:
        assert repr(ids[pos]) in messages[0]


def test_meteor_false_gives_the_other_numbers_unchanged(ours, caption_sets):
    scores = ours[0].corpus
    references, candidates = caption_sets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        without = score_captions(references, candidates, meteor=False)
    assert without["METEOR"] is None
    assert {k: v for k, v in without.items() if k != "METEOR"} == {
        k: v for k, v in scores.items() if k != "METEOR"
    }
