"""The ``metrics`` benchmark section: input building and the section contract.

The timed calls themselves are replaced by stand-ins here (timings belong in the benchmark
run, not in tests); the real METEOR comparison is in ``test_metrics_meteor.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import privcap.bench.metrics as bench_metrics
from privcap.bench import _check_section_result, merge_sections
from privcap.metrics import CAPTION_METRICS


def _write_captions(path: Path, captions: dict[int, list[str]]) -> Path:
    annotations = []
    ann_id = 100
    for image_id, caps in captions.items():
        for cap in caps:
            ann_id -= 1  # annotation ids descending: the order must come from the ids
            annotations.append({"id": ann_id, "image_id": image_id, "caption": cap})
    path.write_text(json.dumps({"images": [], "annotations": annotations}), encoding="utf-8")
    return path


def test_official_caption_sets_takes_lowest_annotation_id_as_candidate(tmp_path):
    path = _write_captions(tmp_path / "caps.json", {7: ["first", "second", "third"], 3: ["x", "y"]})
    references, candidates = bench_metrics.official_caption_sets(path)
    assert list(references) == [3, 7]
    # ids were written descending, so the last written caption has the lowest id
    assert candidates == {3: "y", 7: "third"}
    assert references == {3: ["x"], 7: ["second", "first"]}


def test_official_caption_sets_rejects_single_caption_images(tmp_path):
    path = _write_captions(tmp_path / "caps.json", {1: ["a", "b"], 2: ["only one"]})
    with pytest.raises(ValueError, match=r"caps.json: 1 images have fewer than two.*\[2\]"):
        bench_metrics.official_caption_sets(path)


def test_missing_captions_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(bench_metrics.CAPTIONS_ENV, str(tmp_path / "nowhere.json"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.json.*PRIVCAP_COCO_CAPTIONS"):
        bench_metrics.run(quick=True)


def test_section_answer_follows_the_bench_contract(tmp_path, monkeypatch):
    path = _write_captions(tmp_path / "caps.json", {i: [f"c{i}a", f"c{i}b"] for i in range(6)})
    fake = dict(zip(CAPTION_METRICS, [0.7, 0.5, 0.3, 0.2, 0.25, 0.5, 0.9], strict=True))
    calls = []

    def fake_score(references, candidates, meteor=True):
        calls.append(("privcap", meteor, len(references)))
        return {**fake, "METEOR": fake["METEOR"] if meteor else None}

    def fake_sequence(references, candidates):
        calls.append(("pycocoevalcap", True, len(references)))
        return dict(fake)

    monkeypatch.setattr(bench_metrics, "score_captions", fake_score)
    monkeypatch.setattr(bench_metrics, "pycocoevalcap_sequence", fake_sequence)
    answer = _check_section_result("metrics", bench_metrics.run(True, captions_json=path))
    assert calls == [("privcap", True, 6), ("pycocoevalcap", True, 6), ("privcap", False, 6)]
    measurements = answer["measurements"]
    assert measurements["caption_metrics_privcap"]["n_images"] == 6
    assert measurements["caption_metrics_agreement"]["identical_numbers"] == 1
    assert set(answer["ratios"]) == {
        "speedup_vs_pycocoevalcap",
        "metrics_time_ratio_to_40s_budget",
    }
    merged = merge_sections({"metrics": answer}, quick=True)
    assert merged["targets"]["metrics_time_ratio_to_40s_budget"]["met"] is True
    assert any("budget is set for 5,000 images" in note for note in merged["notes"])
