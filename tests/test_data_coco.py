"""COCO captions and Karpathy split loaders (privcap.data.coco), caption hygiene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from privcap.data import collate_items
from privcap.data.captions import clean_captions, has_content, normalize_caption
from privcap.data.coco import load_coco_captions, load_karpathy_split
from privcap.data.images import ImageLoadError, load_image
from privcap.data.transforms import resize_and_crop

# ----------------------------------------------------------------------------- captions


def test_normalize_caption_whitespace_and_controls():
    assert normalize_caption("A dog\r\non a\u2028mat.\n") == "A dog on a mat."
    assert normalize_caption("  two\t\tcats \u2029 ") == "two cats"
    assert normalize_caption("zero\u200bwidth\u00ad soft\x07bell") == "zerowidth soft bell"
    assert normalize_caption("\x00\x1f") == ""
    assert normalize_caption("Café, naïve!") == "Café, naïve!"
    with pytest.raises(TypeError, match="string"):
        normalize_caption(None)  # type: ignore[arg-type]


def test_clean_captions_counts_what_it_drops():
    kept, dropped, changed = clean_captions(
        ["A cat.", "", "   \n", "...", " -- !", "A  dog\n", None, 42, "7 up"])
    assert kept == ["A cat.", "A dog", "7 up"]
    assert dropped == {"empty": 2, "punctuation_only": 2, "not_a_string": 2}
    assert changed == 1
    assert has_content("x") and not has_content("?!")


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def coco_mini(coco_mini_dir):
    return load_coco_captions(coco_mini_dir / "annotations" / "captions_val2017.json",
                              coco_mini_dir / "val2017")


@pytest.mark.shared
def test_coco_mini_join_and_report(coco_mini, coco_mini_dir):
    report = coco_mini.report
    assert len(coco_mini) == 159
    assert report.images_in_file == 5000 and report.captions_in_file == 25014
    assert report.images_with_captions == 5000
    assert report.files_present == 159 and report.images_used == 159
    assert report.skipped_images == {"missing_file": 4841}
    assert report.captions_used == sum(len(c) for c in coco_mini.references().values())
    assert report.captions_used >= 5 * 159
    assert report.files_not_listed == 0
    assert report.captions_normalised > 0  # the official file has captions ending in "\n"
    summary = report.summary()
    assert "missing_file 4841" in summary and "used: 159 images" in summary
    assert json.loads(json.dumps(report.to_dict()))["images_used"] == 159
    ids = coco_mini.image_ids
    assert ids == sorted(ids)
    on_disk = {int(p.stem) for p in (coco_mini_dir / "val2017").glob("*.jpg")}
    assert set(ids) == on_disk


@pytest.mark.shared
def test_coco_mini_captions_are_clean_and_match_the_file(coco_mini, coco_mini_dir):
    raw = json.loads((coco_mini_dir / "annotations" / "captions_val2017.json").read_text())
    by_id: dict[int, list[str]] = {}
    for ann in raw["annotations"]:
        by_id.setdefault(ann["image_id"], []).append(" ".join(ann["caption"].split()))
    refs = coco_mini.references()
    for image_id, captions in refs.items():
        assert captions == by_id[image_id]
        for caption in captions:
            assert caption == caption.strip()
            assert not any(c in caption for c in "\r\n\u2028\t")


@pytest.mark.shared
def test_coco_mini_items(coco_mini, coco_mini_dir):
    item = coco_mini[0]
    assert set(item) == {"image", "captions", "image_id", "file_name"}
    assert item["image"].shape == (3, 256, 256)
    assert item["image_id"] == coco_mini.image_ids[0]
    path = coco_mini_dir / "val2017" / item["file_name"]
    assert torch.equal(item["image"], resize_and_crop(load_image(path), 256))
    native = load_coco_captions(coco_mini_dir / "annotations" / "captions_val2017.json",
                                coco_mini_dir / "val2017", image_size=None, max_images=3)
    assert len(native) == 3 and native.report.images_used == 3
    assert native[0]["image"].shape == load_image(path).shape
    small = load_coco_captions(coco_mini_dir / "annotations" / "captions_val2017.json",
                               coco_mini_dir / "val2017", image_size=64, max_images=4)
    batch = next(iter(DataLoader(small, batch_size=4, collate_fn=collate_items)))
    assert batch["image"].shape == (4, 3, 64, 64) and len(batch["captions"]) == 4
    assert batch["image_id"].tolist() == coco_mini.image_ids[:4]


# ----------------------------------------------------------------------------- bad input


def _write_image(path: Path, value: int = 100) -> None:
    Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(path)


@pytest.fixture()
def messy(tmp_path):
    """A small COCO-format folder with every kind of problem."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "e.jpg", "extra.jpg"):
        _write_image(images / name)
    good = (images / "a.jpg").read_bytes()
    (images / "broken.jpg").write_bytes(good[: len(good) // 3])
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg"},
            {"id": 2, "file_name": "b.jpg"},
            {"id": 3, "file_name": "c.jpg"},
            {"id": 4, "file_name": "missing.jpg"},
            {"id": 5, "file_name": "e.jpg"},
            {"id": 6, "file_name": "broken.jpg"},
            {"id": 1, "file_name": "a.jpg"},  # duplicate id
            {"file_name": "nameless.jpg"},  # no id
        ],
        "annotations": [
            {"image_id": 1, "caption": "A plain caption."},
            {"image_id": 1, "caption": "Another one"},
            {"image_id": 2, "caption": "Line one\r\nline two"},
            {"image_id": 2, "caption": "para\u2028graph\n"},
            {"image_id": 2, "caption": ""},
            {"image_id": 3, "caption": "   "},
            {"image_id": 3, "caption": "?!..."},
            {"image_id": 4, "caption": "an image that is not there"},
            {"image_id": 6, "caption": "a broken file"},
            {"image_id": 99, "caption": "no such image"},
            {"image_id": 1, "caption": None},
            {"caption": "no image id"},
        ],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    return path, images


def test_messy_file_is_reported(messy):
    path, images = messy
    ds = load_coco_captions(path, images, image_size=16)
    report = ds.report
    assert ds.image_ids == [1, 2, 6]
    assert ds.references() == {1: ["A plain caption.", "Another one"],
                               2: ["Line one line two", "para graph"],
                               6: ["a broken file"]}
    assert report.images_in_file == 8 and report.captions_in_file == 12
    assert report.skipped_images == {"missing_file": 1, "no_captions": 1, "no_valid_captions": 1,
                                     "duplicate_id": 1, "malformed_entry": 1}
    assert report.dropped_captions == {"empty": 2, "punctuation_only": 1, "not_a_string": 1,
                                       "unknown_image": 1, "malformed_entry": 1}
    assert report.captions_normalised == 2
    assert report.files_present == 5 and report.files_not_listed == 1  # extra.jpg
    assert report.captions_used == 5
    assert "4 (" in report.examples["missing_file"][0]
    assert report.examples["no_captions"] == ["5"]
    assert report.examples["no_valid_captions"] == ["3"]
    summary = report.summary()
    for text in ("missing_file 1", "no_captions 1", "no_valid_captions 1", "empty 2",
                 "punctuation_only 1", "unknown_image 1", "does not list: 1"):
        assert text in summary, text
    # the corrupt file is kept unless checked, and fails with its name and id when read
    with pytest.raises(ImageLoadError, match=r"image id 6.*broken\.jpg"):
        ds[2]
    assert ds[0]["image"].shape == (3, 16, 16)


def test_check_images_skips_unreadable_files(messy):
    path, images = messy
    ds = load_coco_captions(path, images, check_images=True)
    assert ds.image_ids == [1, 2]
    assert ds.report.skipped_images["unreadable"] == 1
    assert "broken.jpg" in ds.report.examples["unreadable"][0]
    assert "unreadable 1" in ds.report.summary()


def test_captions_file_whose_images_are_all_missing(tmp_path):
    images = tmp_path / "empty"
    images.mkdir()
    data = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(3)],
            "annotations": [{"image_id": i, "caption": "x"} for i in range(3)]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    ds = load_coco_captions(tmp_path / "c.json", images)
    assert len(ds) == 0
    assert ds.report.skipped_images == {"missing_file": 3}
    assert "used: 0 images" in ds.report.summary()


def test_loader_errors(tmp_path, messy):
    path, images = messy
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_coco_captions(tmp_path / "nope.json", images)
    with pytest.raises(FileNotFoundError, match="image folder"):
        load_coco_captions(path, tmp_path / "no_dir")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid JSON"):
        load_coco_captions(tmp_path / "bad.json", images)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="'images' and 'annotations'"):
        load_coco_captions(tmp_path / "list.json", images)
    with pytest.raises(ValueError, match="image_size"):
        load_coco_captions(path, images, image_size=0)
    with pytest.raises(ValueError, match="max_images"):
        load_coco_captions(path, images, max_images=-1)


# ----------------------------------------------------------------------------- Karpathy


def _karpathy_file(tmp_path: Path, coco_mini_dir: Path) -> tuple[Path, dict[int, list[str]]]:
    """A dataset_coco.json in Karpathy's format over real coco-mini images."""
    raw = json.loads((coco_mini_dir / "annotations" / "captions_val2017.json").read_text())
    captions: dict[int, list[str]] = {}
    for ann in raw["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    files = sorted(p.name for p in (coco_mini_dir / "val2017").glob("*.jpg"))[:12]
    entries = []
    for k, name in enumerate(files):
        cocoid = int(Path(name).stem)
        entries.append({
            "filepath": "val2017", "filename": name, "imgid": k, "cocoid": cocoid,
            "split": ["train", "restval", "val", "test"][k % 4],
            "sentences": [{"raw": c, "tokens": c.lower().split(), "imgid": k, "sentid": j}
                          for j, c in enumerate(captions[cocoid])],
        })
    entries.append({"filepath": "val2017", "filename": "COCO_val2014_000000000001.jpg",
                    "imgid": 12, "cocoid": 1, "split": "test",
                    "sentences": [{"raw": "a missing image"}]})
    entries.append({"filepath": "val2017", "filename": files[0], "imgid": 13, "cocoid": 2,
                    "split": "test", "sentences": [{"raw": "..."}, {"raw": "\n"}]})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": entries, "dataset": "coco"}))
    return path, captions


@pytest.mark.shared
def test_karpathy_split_on_real_images(tmp_path, coco_mini_dir):
    path, captions = _karpathy_file(tmp_path, coco_mini_dir)
    test = load_karpathy_split(path, coco_mini_dir, split="test", image_size=32)
    assert len(test) == 3  # entries 3, 7, 11
    assert test.report.skipped_images == {"missing_file": 1, "no_valid_captions": 1}
    assert test.report.dropped_captions == {"punctuation_only": 1, "empty": 1}
    for image_id, refs in test.references().items():
        assert refs == [" ".join(c.split()) for c in captions[image_id]]
    item = test[0]
    assert item["image"].shape == (3, 32, 32) and item["image_id"] in captions
    train = load_karpathy_split(path, coco_mini_dir, split=("train", "restval"))
    assert len(train) == 6 and not set(train.image_ids) & set(test.image_ids)
    assert "split train+restval" in train.report.summary()
    assert train.report.images_in_file == 14


def test_karpathy_errors(tmp_path):
    (tmp_path / "k.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="split"):
        load_karpathy_split(tmp_path / "k.json", tmp_path, split="validation")
    with pytest.raises(ValueError, match="split"):
        load_karpathy_split(tmp_path / "k.json", tmp_path, split=())
    (tmp_path / "x.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="no list 'images'"):
        load_karpathy_split(tmp_path / "x.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="image root"):
        load_karpathy_split(tmp_path / "k.json", tmp_path / "missing")
    assert len(load_karpathy_split(tmp_path / "k.json", tmp_path)) == 0
