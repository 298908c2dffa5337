"""Caption metrics without METEOR: normalisation, input checks, java failures.

These tests start no METEOR JVM (``meteor=False`` or a fake ``java``); the comparison of all
metrics, METEOR included, with pycocoevalcap is in ``test_metrics_meteor.py``.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from privcap.metrics import (
    CAPTION_METRICS,
    _ptb_tokenize,
    caption_scores,
    find_java,
    normalise_caption,
    score_captions,
)

REAL_JAVA = shutil.which("java")
SLEEP = shutil.which("sleep") or "/bin/sleep"
needs_java = pytest.mark.skipif(REAL_JAVA is None, reason="java not installed")

# Ten images' captions in COCO style (written for this test): references and a candidate.
REFERENCES = {
    101: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave."],
    102: ["Two dogs play with a frisbee in the park.", "Dogs running on the grass."],
    103: ["A red bus parked on the side of a street.", "A double decker bus on a road."],
    104: ["A plate of food with broccoli and rice.", "Broccoli, rice and chicken on a plate."],
    105: ["A cat sleeping on a laptop keyboard.", "A cat lying on a computer."],
    106: ["A giraffe standing next to a tree.", "A tall giraffe eating leaves."],
    107: ["People walking down a busy city street.", "A crowd on a sidewalk in a city."],
    108: ["A kitchen with a stove and a refrigerator.", "A small kitchen with white cabinets."],
    109: ["A train traveling down the tracks.", "A yellow train on a railway."],
    110: ["A little girl holding an umbrella.", "A child with a pink umbrella in the rain."],
}
CANDIDATES = {
    101: "a surfer riding a wave",
    102: "two dogs playing in the grass",
    103: "a red bus on a street",
    104: "a plate with broccoli and rice",
    105: "a cat on a laptop",
    106: "a giraffe next to a tree",
    107: "a crowd walking on a city street",
    108: "a kitchen with a stove",
    109: "a yellow train on the tracks",
    110: "a girl with an umbrella",
}


def _pycocoevalcap_without_meteor(references: dict, candidates: dict) -> dict[str, float]:
    """The naive sequence of pycocoevalcap calls (tokenizer, then scorers), no METEOR."""
    gts = PTBTokenizer().tokenize(
        {i: [{"caption": c} for c in refs] for i, refs in references.items()}
    )
    res = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in candidates.items()})
    with redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    values = [*bleu, float(rouge), float(cider)]
    keys = ["BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr"]
    return dict(zip(keys, values, strict=True))


def _without_meteor(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k != "METEOR"}


# ------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A dog.", "A dog."),
        ("A dog\r\non a mat", "A dog  on a mat"),
        ("A\u2028dog\u2029on\x0ba\x0cmat", "A dog on a mat"),
        ("\tA  dog\x85on\x00a mat \n", " A  dog on a mat  "),
        ("  \r\n ", "     "),
        ("café ½ “quoted”", "café ½ “quoted”"),
    ],
)
def test_normalise_caption(raw, expected):
    assert normalise_caption(raw) == expected


def test_normalise_caption_rejects_non_str():
    with pytest.raises(ValueError, match="caption must be a str"):
        normalise_caption(42)


# ------------------------------------------------------------------ agreement, no METEOR


@needs_java
def test_same_numbers_as_pycocoevalcap_without_meteor():
    ours = score_captions(REFERENCES, CANDIDATES, meteor=False)
    assert list(ours) == list(CAPTION_METRICS)
    assert ours["METEOR"] is None
    expected = _pycocoevalcap_without_meteor(REFERENCES, CANDIDATES)
    assert _without_meteor(ours) == expected
    assert 0.5 < ours["BLEU_1"] < 1 and ours["CIDEr"] > 0.5


@needs_java
def test_per_image_values_are_pycocoevalcaps():
    result = caption_scores(REFERENCES, CANDIDATES, meteor=False)
    gts = PTBTokenizer().tokenize(
        {i: [{"caption": c} for c in refs] for i, refs in REFERENCES.items()}
    )
    res = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in CANDIDATES.items()})
    _, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    _, cider_each = Cider().compute_score(gts, res)
    _, rouge_each = Rouge().compute_score(gts, res)
    ids = list(REFERENCES)
    assert list(result.per_image) == ids
    for n in range(4):
        assert [result.per_image[i][f"BLEU_{n + 1}"] for i in ids] == bleu_each[n]
    assert [result.per_image[i]["CIDEr"] for i in ids] == list(cider_each)
    assert [result.per_image[i]["ROUGE_L"] for i in ids] == list(rouge_each)
    assert all(result.per_image[i]["METEOR"] is None for i in ids)
    assert result.empty_candidates == ()
    assert result.corpus == score_captions(REFERENCES, CANDIDATES, meteor=False)


@needs_java
def test_references_and_candidates_are_tokenised_in_separate_runs():
    """The PTB tokenizer looks across line ends: ``"... D."`` keeps its period before a line
    that starts in lower case or at the end of the input, and loses it before a capital.
    pycocoevalcap tokenises references and candidates in two runs, so must we."""
    refs = {i: list(r) for i, r in REFERENCES.items()}
    refs[110] = ["A little girl holding an umbrella.", "A girl on 8th Ave D."]
    cands = dict(CANDIDATES)
    cands[101] = "A surfer riding a wave"  # first candidate line starts with a capital
    cands[110] = "a girl on 8th ave d."
    ref_lines = [c for r in refs.values() for c in r]
    cand_lines = list(cands.values())
    joint = _ptb_tokenize(ref_lines + cand_lines, java=find_java(), timeout_s=60)
    separate = _ptb_tokenize(ref_lines, java=find_java(), timeout_s=60)
    assert separate[-1] == "a girl on 8th ave d."
    assert joint[len(ref_lines) - 1] == "a girl on 8th ave d"
    assert _without_meteor(score_captions(refs, cands, meteor=False)) == (
        _pycocoevalcap_without_meteor(refs, cands)
    )


@needs_java
def test_bleu_prints_nothing(capsys):
    score_captions(REFERENCES, CANDIDATES, meteor=False)
    assert capsys.readouterr().out == ""


@needs_java
@pytest.mark.parametrize("separator", ["\r", "\u2028", "\u2029", "\x0b", "\x0c"])
def test_line_separator_in_a_caption_does_not_shift_images(separator):
    """A ``\\r`` (etc.) inside one caption makes the PTB tokenizer emit an extra line.

    Called directly, pycocoevalcap then hands every later image the caption of the image
    before it, without any error; ``score_captions`` scores the captions where they belong.
    """
    dirty = dict(CANDIDATES)
    dirty[103] = "a red bus" + separator + "on a street"
    clean = dict(CANDIDATES)
    clean[103] = "a red bus on a street"

    # the naive call misaligns: image 104 receives the second half of image 103's caption
    naive_res = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in dirty.items()})
    assert naive_res[103] == ["a red bus"]
    assert naive_res[104] == ["on a street"]
    assert naive_res[110] == ["a yellow train on the tracks"]  # image 109's caption
    naive = _pycocoevalcap_without_meteor(REFERENCES, dirty)

    ours = score_captions(REFERENCES, dirty, meteor=False)
    correct = _pycocoevalcap_without_meteor(REFERENCES, clean)
    assert _without_meteor(ours) == correct
    assert naive["CIDEr"] < correct["CIDEr"] - 0.3
    assert naive["BLEU_4"] != correct["BLEU_4"]


@needs_java
def test_line_break_in_a_reference_is_handled():
    dirty = {i: list(refs) for i, refs in REFERENCES.items()}
    dirty[105] = ["A cat sleeping\ron a laptop keyboard.", "A cat lying\u2028on a computer."]
    assert score_captions(dirty, CANDIDATES, meteor=False) == score_captions(
        REFERENCES, CANDIDATES, meteor=False
    )


# ------------------------------------------------------------------------ empty captions


@needs_java
def test_empty_candidates_score_zero_with_a_warning():
    cands = dict(CANDIDATES)
    cands[102] = ""
    cands[107] = " ... ! "  # no word left after tokenisation
    with pytest.warns(UserWarning, match=r"2 of 10 candidate captions are empty.*102.*107"):
        ours = score_captions(REFERENCES, cands, meteor=False)
    # same as pycocoevalcap scoring empty strings, and lower than with the captions
    assert _without_meteor(ours) == _pycocoevalcap_without_meteor(REFERENCES, cands)
    full = score_captions(REFERENCES, CANDIDATES, meteor=False)
    assert ours["CIDEr"] < full["CIDEr"] and ours["ROUGE_L"] < full["ROUGE_L"]


@needs_java
def test_all_candidates_empty_give_zero():
    with pytest.warns(UserWarning, match="10 of 10"):
        ours = score_captions(REFERENCES, dict.fromkeys(CANDIDATES, ""), meteor=False)
    assert all(ours[k] == 0.0 for k in CAPTION_METRICS if k != "METEOR")


@needs_java
def test_empty_reference_is_an_error():
    refs = {i: list(r) for i, r in REFERENCES.items()}
    refs[108] = ["A kitchen with a stove.", "  ,  "]
    with pytest.raises(ValueError, match=r"empty reference caption.*108"):
        score_captions(refs, CANDIDATES, meteor=False)


# --------------------------------------------------------------------------- bad input


def test_id_mismatch_lists_ids():
    cands = {i: c for i, c in CANDIDATES.items() if i not in (101, 105)}
    cands[999] = "an extra caption"
    with pytest.raises(
        ValueError, match=r"2 ids without a candidate: 101, 105.*ids without references: 999"
    ):
        score_captions(REFERENCES, cands, meteor=False)


def test_many_missing_ids_are_abbreviated():
    with pytest.raises(
        ValueError, match=r"10 ids without a candidate: 101, 102, 103, 104, 105 and 5 more"
    ):
        score_captions(REFERENCES, {}, meteor=False)


@pytest.mark.parametrize(
    ("refs", "cands", "pattern"),
    [
        ({1: "a dog"}, {1: "a dog"}, r"references\[1\] must be a list of str"),
        ({1: []}, {1: "a dog"}, r"references\[1\] is an empty list"),
        ({1: ["a dog", None]}, {1: "a dog"}, r"references\[1\] holds a non-str"),
        ({1: ["a dog"]}, {1: ["a dog"]}, r"candidates\[1\] must be one str"),
        ({}, {}, "references is empty"),
        ([["a dog"]], {0: "a dog"}, "must be dicts"),
    ],
)
def test_bad_input(refs, cands, pattern):
    with pytest.raises(ValueError, match=pattern):
        score_captions(refs, cands, meteor=False)


def test_bad_timeout():
    with pytest.raises(ValueError, match="meteor_timeout_s=0"):
        score_captions(REFERENCES, CANDIDATES, meteor_timeout_s=0)


# ----------------------------------------------------------------- missing / broken java


def _fake_java(folder: Path, body: str) -> Path:
    """Put an executable ``java`` shell script with ``body`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "java"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _gone_or_zombie(pid: int, wait_s: float = 5.0) -> bool:
    """True once ``pid`` has exited (or is a zombie) within ``wait_s`` seconds.

    A SIGKILL sent to a process group is delivered asynchronously: a grandchild of the
    killed leader may still be listed for a moment on a busy machine, so poll briefly.
    """
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if "\nState:\tZ" in status.read_text():
                return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.parametrize("meteor", [True, False])
def test_missing_java_says_so(monkeypatch, tmp_path, meteor):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="java was not found on PATH.*meteor=False"):
        score_captions(REFERENCES, CANDIDATES, meteor=meteor)


@needs_java
def test_meteor_jvm_that_never_answers_times_out(monkeypatch, tmp_path):
    """The METEOR JVM hangs (here: a ``java`` that sleeps); the tokenizer still works."""
    pid_file = tmp_path / "meteor.pid"
    _fake_java(
        tmp_path / "bin",
        f'case "$*" in\n  *meteor*) echo $$ > {pid_file}; exec sleep 600;;\n'
        f'  *) exec {REAL_JAVA} "$@";;\nesac',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(
        RuntimeError, match=r"METEOR: no answer from java within meteor_timeout_s=1 s"
    ):
        score_captions(REFERENCES, CANDIDATES, meteor_timeout_s=1.0)
    assert _gone_or_zombie(int(pid_file.read_text()))


@needs_java
def test_meteor_jvm_that_cannot_start_reports_its_error(monkeypatch, tmp_path):
    _fake_java(
        tmp_path / "bin",
        'case "$*" in\n  *meteor*) echo "Error: Could not create the Java Virtual Machine." >&2;'
        f' exit 1;;\n  *) exec {REAL_JAVA} "$@";;\nesac',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match=r"java exited with status 1.*Could not create the Java"):
        score_captions(REFERENCES, CANDIDATES, meteor_timeout_s=60.0)


@pytest.mark.parametrize("meteor", [True, False])
def test_java_that_hangs_times_out_in_the_tokenizer(monkeypatch, tmp_path, meteor):
    """A ``java`` that never returns (and leaves a child behind) is killed with its children."""
    pid_file = tmp_path / "child.pid"
    _fake_java(tmp_path / "bin", f"{SLEEP} 600 &\necho $! >> {pid_file}\nwait")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(RuntimeError, match=r"java.*tokenizer_timeout_s=0.5 s"):
        score_captions(REFERENCES, CANDIDATES, meteor=meteor, tokenizer_timeout_s=0.5)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == (3 if meteor else 2)  # two tokenizer runs, and METEOR
    assert all(_gone_or_zombie(pid) for pid in pids)
