"""Benchmark section ``metrics``: COCO caption metrics on the 5,000 images of val2017.

Times :func:`privcap.metrics.score_captions` (all seven metrics: one PTB tokenizer JVM and
one METEOR JVM per call) on the official ``captions_val2017.json`` -- for every image the
first human caption (lowest annotation id) is the candidate and the other four or more are
the references -- beside, in the same run and on the same input, the plain sequence of
pycocoevalcap 1.2 calls (``PTBTokenizer().tokenize`` for references and candidates, then
``Bleu(4)``, ``Meteor()``, ``Rouge()``, ``Cider()``). The two must give identical numbers;
the section records whether they did. Target: all metrics on 5,000 images in under 40 s.

The captions file is looked up in ``$PRIVCAP_COCO_CAPTIONS``, else in
``../shared/data/coco-mini/annotations/captions_val2017.json`` beside the repository.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from privcap.bench.timing import summarize_times
from privcap.metrics import CAPTION_METRICS, score_captions

#: environment variable naming a COCO-format captions file to benchmark on
CAPTIONS_ENV = "PRIVCAP_COCO_CAPTIONS"
#: default: the official val2017 captions in the shared coco-mini folder
DEFAULT_CAPTIONS_JSON = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "coco-mini"
    / "annotations"
    / "captions_val2017.json"
)
#: the issue's budget for scoring 5,000 images with all metrics
BUDGET_S = 40.0
#: images scored by a smoke run (the test suite's; its times mean nothing)
SMOKE_IMAGES = 100
#: interleaved rounds of the three timed calls in a full run
FULL_ROUNDS = 2


def captions_file(path: str | os.PathLike[str] | None = None) -> Path:
    """The captions file to use: ``path``, ``$PRIVCAP_COCO_CAPTIONS`` or the default."""
    chosen = Path(path or os.environ.get(CAPTIONS_ENV) or DEFAULT_CAPTIONS_JSON)
    if not chosen.is_file():
        raise FileNotFoundError(
            f"COCO captions file not found: {chosen}. The metrics benchmark scores the "
            "official captions_val2017.json (5,000 images); point the environment variable "
            f"{CAPTIONS_ENV} at a copy of it."
        )
    return chosen


def official_caption_sets(
    path: str | os.PathLike[str],
) -> tuple[dict[int, list[str]], dict[int, str]]:
    """References and candidates from a COCO captions file.

    For every image (ascending id) the caption with the lowest annotation id is the
    candidate and the others are the references; images with fewer than two captions are
    an error (``ValueError`` naming the file and the images).
    """
    with open(path, encoding="utf-8") as handle:
        annotations = json.load(handle).get("annotations")
    if not isinstance(annotations, list) or not annotations:
        raise ValueError(f"{path}: no 'annotations' list of captions")
    by_image: dict[int, list[str]] = defaultdict(list)
    for ann in sorted(annotations, key=lambda a: a["id"]):
        by_image[ann["image_id"]].append(ann["caption"])
    too_few = sorted(i for i, caps in by_image.items() if len(caps) < 2)
    if too_few:
        raise ValueError(
            f"{path}: {len(too_few)} images have fewer than two captions, e.g. {too_few[:5]}"
        )
    ids = sorted(by_image)
    return {i: by_image[i][1:] for i in ids}, {i: by_image[i][0] for i in ids}


def pycocoevalcap_sequence(
    references: dict[int, list[str]], candidates: dict[int, str]
) -> dict[str, float]:
    """The baseline: pycocoevalcap 1.2's tokenizer and scorers called one after the other.

    What ``COCOEvalCap.evaluate()`` does, minus SPICE: two tokenizer JVMs, one METEOR JVM
    (started after the others finished), BLEU's printing sent to a buffer.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    with _quiet_stderr_fd():  # the tokenizer JVM logs its speed on the inherited stderr
        gts = PTBTokenizer().tokenize(
            {i: [{"caption": c} for c in refs] for i, refs in references.items()}
        )
        res = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in candidates.items()})
    with redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    scorer = Meteor()
    meteor, _ = scorer.compute_score(gts, res)
    scorer.meteor_p.stdout.close()
    scorer.meteor_p.stderr.close()
    del scorer  # its __del__ ends the JVM
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    values = [*bleu, meteor, rouge, cider]
    return dict(zip(CAPTION_METRICS, (float(v) for v in values), strict=True))



@contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (child processes inherit it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)

def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _measurement(what: str, times_s: list[float], n_images: int) -> dict[str, Any]:
    median_s = statistics.median(times_s)
    return {**summarize_times(times_s, what, warmup=0), "n_images": n_images,
            "images_per_s": n_images / median_s}


def run(
    quick: bool, captions_json: str | os.PathLike[str] | None = None, smoke: bool = False
) -> dict[str, Any]:
    """Time the caption metrics on all images of the captions file (section contract).

    ``quick`` runs each of the three timed calls once; otherwise :data:`FULL_ROUNDS` times,
    interleaved (privcap, pycocoevalcap, privcap without METEOR) so that load on a shared
    machine hits all of them alike, reporting medians (a round takes about a minute: two
    keep the whole ``privcap bench`` within minutes). Every call starts its JVMs afresh:
    their start-up is part of the cost measured, as it is for a user. Both sizes use every
    image of the file; ``smoke`` (test suite) runs once on its first :data:`SMOKE_IMAGES`
    images.
    """
    path = captions_file(captions_json)
    references, candidates = official_caption_sets(path)
    if smoke:
        quick = True
        keep = sorted(references)[:SMOKE_IMAGES]
        references = {i: references[i] for i in keep}
        candidates = {i: candidates[i] for i in keep}
    n_images = len(references)
    repeats = 1 if quick else FULL_ROUNDS

    times: dict[str, list[float]] = {"ours": [], "baseline": [], "no_meteor": []}
    ours_scores: dict[str, float | None] = {}
    baseline_scores: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no empty candidate is expected here
        for _ in range(repeats):
            elapsed_s, ours_scores = _timed(lambda: score_captions(references, candidates))
            times["ours"].append(elapsed_s)
            elapsed_s, baseline_scores = _timed(
                lambda: pycocoevalcap_sequence(references, candidates)
            )
            times["baseline"].append(elapsed_s)
            elapsed_s, _ = _timed(lambda: score_captions(references, candidates, meteor=False))
            times["no_meteor"].append(elapsed_s)

    identical = all(ours_scores[k] == baseline_scores[k] for k in CAPTION_METRICS)
    source = f"{path.name}, {n_images} images, 1 candidate + the other captions as references"
    measurements = {
        "caption_metrics_privcap": _measurement(
            f"privcap.metrics.score_captions, all 7 metrics ({source})", times["ours"], n_images
        ),
        "caption_metrics_pycocoevalcap": _measurement(
            f"pycocoevalcap 1.2 tokenizer + Bleu/Meteor/Rouge/Cider called in turn ({source})",
            times["baseline"],
            n_images,
        ),
        "caption_metrics_privcap_no_meteor": _measurement(
            f"privcap.metrics.score_captions(meteor=False), 6 metrics ({source})",
            times["no_meteor"],
            n_images,
        ),
        "caption_metrics_agreement": {
            "what": "privcap's numbers equal pycocoevalcap's on the same input (1 = all 7 equal)",
            "identical_numbers": int(identical),
            **{f"privcap_{k}": ours_scores[k] for k in CAPTION_METRICS},
            **{f"pycocoevalcap_{k}": baseline_scores[k] for k in CAPTION_METRICS},
        },
    }
    t_ours = measurements["caption_metrics_privcap"]["median_s"]
    t_base = measurements["caption_metrics_pycocoevalcap"]["median_s"]
    notes = [
        f"{n_images} images of {path.name}; both sides start their JVMs inside the timed call "
        "(privcap: PTB tokenizer + METEOR, the latter loading while the other metrics run; "
        "pycocoevalcap: two tokenizer runs, then METEOR).",
        "numbers identical to pycocoevalcap's: " + ("yes" if identical else "NO (see agreement)"),
    ]
    if n_images != 5000:
        notes.append(f"the 40 s budget is set for 5,000 images; this file has {n_images}")
    return {
        "measurements": measurements,
        "ratios": {
            "speedup_vs_pycocoevalcap": t_base / t_ours,
            "metrics_time_ratio_to_40s_budget": t_ours / BUDGET_S,
        },
        "targets": {"metrics_time_ratio_to_40s_budget": ["<=", 1.0]},
        "ratio_descriptions": {
            "speedup_vs_pycocoevalcap": "pycocoevalcap calls' time / score_captions' time, "
            f"all 7 metrics on {n_images} images",
            "metrics_time_ratio_to_40s_budget": f"score_captions' time on {n_images} images / 40 s",
        },
        "notes": notes,
        "comparisons": [
            {
                "task": f"COCO caption metrics, {n_images} images",
                "bars": {
                    "privcap": t_ours,
                    "pycocoevalcap calls": t_base,
                    "privcap, no METEOR": measurements["caption_metrics_privcap_no_meteor"][
                        "median_s"
                    ],
                },
                "targets": [{"label": "budget", "seconds": BUDGET_S}],
            }
        ],
    }
