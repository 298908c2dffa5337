"""Synthetic captioned scenes with a handwritten-digit tag (privcap.data.synthetic)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from privcap.data import collate_items
from privcap.data.synthetic import (
    CAPTION_WORDS,
    COLOURS,
    KINDS,
    PLURALS,
    SyntheticScenes,
    position_phrase,
    relation,
    tag_geometry,
)


@pytest.fixture(scope="module")
def scenes() -> SyntheticScenes:
    return SyntheticScenes(40, image_size=64, seed=3)


def test_item_layout(scenes):
    item = scenes[0]
    assert set(item) == {"image", "captions", "image_id", "tag_label", "tag_box"}
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert len(item["captions"]) == 5 and all(isinstance(c, str) for c in item["captions"])
    assert item["image_id"] == 0
    assert item["tag_label"] in range(10)
    x0, y0, x1, y1 = item["tag_box"]
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert x1 - x0 == y1 - y0 == 4 + 2 * 1  # glyph S/16 plus a margin of S/64 each side
    assert len(scenes) == 40 and scenes[-1]["image_id"] == 39


def test_deterministic_and_seed_dependent():
    a, b = SyntheticScenes(3, 48, seed=5), SyntheticScenes(3, 48, seed=5)
    for i in range(3):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert a[i]["captions"] == b[i]["captions"]
        assert a[i]["tag_box"] == b[i]["tag_box"]
    other = SyntheticScenes(3, 48, seed=6)
    assert not torch.equal(a[0]["image"], other[0]["image"])
    # a longer data set starts with the same scenes (index-wise generation)
    assert torch.equal(SyntheticScenes(10, 48, seed=5)[2]["image"], a[2]["image"])


def test_resolution_independent_content():
    small, large = SyntheticScenes(4, 64, seed=1), SyntheticScenes(4, 256, seed=1)
    for i in range(4):
        assert small.scene(i).objects == large.scene(i).objects
        assert small[i]["captions"] == large[i]["captions"]
        assert small[i]["tag_label"] == large[i]["tag_label"]
        # the same scene: the 256 px image area-averaged to 64 px is close to the 64 px one
        down = torch.nn.functional.avg_pool2d(large[i]["image"][None], 4)[0]
        assert (down - small[i]["image"]).abs().mean() < 0.05
        assert large[i]["tag_box"][2] - large[i]["tag_box"][0] == 16 + 2 * 4


def test_train_and_test_use_disjoint_digit_samples():
    train = SyntheticScenes(50, 32, split="train")
    test = SyntheticScenes(50, 32, split="test")
    used_train = {train.scene(i).tag_digit_index for i in range(50)}
    used_test = {test.scene(i).tag_digit_index for i in range(50)}
    assert all(k % 2 == 0 for k in used_train) and all(k % 2 == 1 for k in used_test)
    assert not torch.equal(train[0]["image"], test[0]["image"])
    labels = [train.scene(i).tag_label for i in range(50)]
    assert len(set(labels)) >= 8  # many classes appear


def test_tag_is_rendered_at_its_box():
    ds = SyntheticScenes(20, 128, seed=2, noise_std=0.0)
    for i in range(20):
        item, spec = ds[i], ds.scene(i)
        x0, y0, x1, y1 = item["tag_box"]
        patch = item["image"][:, y0:y1, x0:x1]
        plate = torch.tensor(spec.plate_rgb).view(3, 1)
        # the plate's border rows are plain plate colour, the centre holds dark ink
        assert torch.allclose(patch[:, 0, :], plate.expand(3, x1 - x0), atol=1e-5)
        assert torch.allclose(patch[:, -1, :], plate.expand(3, x1 - x0), atol=1e-5)
        ink = torch.tensor(spec.ink_rgb).view(3, 1, 1)
        distance_to_ink = (patch[:, 2:-2, 2:-2] - ink).abs().sum(0)
        assert distance_to_ink.min() < 0.3  # some pixels are (almost) pure ink
        # no shape overlaps the tag: every object lies outside the plate
        for obj in spec.objects:
            cx, cy = obj.cx * 128, obj.cy * 128
            dx = max(x0 - cx, 0, cx - x1)
            dy = max(y0 - cy, 0, cy - y1)
            assert np.hypot(dx, dy) > 1.15 * obj.radius * 128


def test_objects_have_their_colours_and_do_not_overlap():
    ds = SyntheticScenes(30, 128, seed=4, noise_std=0.0)
    for i in range(30):
        spec, img = ds.scene(i), ds[i]["image"]
        assert 1 <= len(spec.objects) <= 3
        for obj in spec.objects:
            assert obj.kind in KINDS and obj.colour in COLOURS
            centre = img[:, int(obj.cy * 128), int(obj.cx * 128)]
            if obj.kind != "ring":  # a ring's centre is background
                assert torch.allclose(centre, torch.tensor(obj.rgb), atol=1e-4)
            assert (np.abs(np.asarray(obj.rgb) - np.asarray(COLOURS[obj.colour])) <= 0.05).all()
        for a in spec.objects:
            for b in spec.objects:
                if a is not b:
                    assert np.hypot(a.cx - b.cx, a.cy - b.cy) > 1.15 * (a.radius + b.radius)


def test_captions_never_mention_the_tag(scenes):
    forbidden = {
        "tag",
        "digit",
        "number",
        "plate",
        "label",
        "zero",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "handwritten",
    }
    for i in range(len(scenes)):
        for caption in scenes.captions(i):
            words = set(re.findall(r"[a-z]+", caption))
            assert not words & forbidden, caption
            assert not re.search(r"\d", caption), caption
            assert words <= CAPTION_WORDS, words - CAPTION_WORDS


def test_captions_describe_the_scene(scenes):
    for i in range(len(scenes)):
        spec, captions = scenes.scene(i), scenes.captions(i)
        assert len(set(captions)) >= 4  # varied wording
        kinds = {o.kind for o in spec.objects}
        colours = {o.colour for o in spec.objects}
        text = " ".join(captions)
        words = set(re.findall(r"[a-z]+", text))
        # every object kind and colour is mentioned somewhere, nothing that is absent
        mentioned_kinds = {k for k in KINDS if k in words or PLURALS[k] in words}
        assert mentioned_kinds == kinds, (captions, spec.objects)
        assert {c for c in COLOURS if c in words} == colours, (captions, spec.objects)
        for caption in captions:
            assert 2 <= len(caption.replace(",", " ").replace(":", " ").split()) <= 16
        if len(spec.objects) == 3:
            assert any("three" in c for c in captions) or any(
                c.count(" and ") + c.count(",") >= 2 for c in captions
            )


def test_position_words_follow_the_geometry():
    ds = SyntheticScenes(200, 32, seed=0)
    checked = 0
    for i in range(200):
        objs = ds.scene(i).objects
        for obj in objs:
            phrase = position_phrase(obj)
            if "left" in phrase:
                assert obj.cx < 0.36
            if "right" in phrase:
                assert obj.cx > 0.64
            if "top" in phrase:
                assert obj.cy < 0.36
            if "bottom" in phrase:
                assert obj.cy > 0.64
        for a in objs:
            for b in objs:
                if a is b:
                    continue
                rel = relation(a, b)
                checked += 1
                if rel == "to the left of":
                    assert b.cx - a.cx >= 0.15
                elif rel == "above":
                    assert b.cy - a.cy >= 0.15  # y grows downwards: above = smaller y
                elif rel == "below":
                    assert a.cy - b.cy >= 0.15
                # relations are antisymmetric
                assert (
                    relation(b, a)
                    == {
                        "to the left of": "to the right of",
                        "to the right of": "to the left of",
                        "above": "below",
                        "below": "above",
                        "next to": "next to",
                    }[rel]
                )
    assert checked > 100


def test_relative_caption_matches_pixels():
    """'X to the left of Y': the colour of X is found left of the colour of Y in the image."""
    ds = SyntheticScenes(60, 64, seed=9, noise_std=0.0)
    seen = 0
    for i in range(60):
        spec = ds.scene(i)
        for caption in ds.captions(i):
            m = re.fullmatch(r"an? (\w+) (\w+) to the left of an? (\w+) (\w+)", caption)
            if not m or m.group(1) == m.group(3):
                continue
            img = ds[i]["image"]
            xs = {}
            for colour in (m.group(1), m.group(3)):
                target = torch.tensor(COLOURS[colour]).view(3, 1, 1)
                mask = (img - target).abs().amax(0) < 0.06
                xs[colour] = mask.nonzero()[:, 1].float().mean().item()
            assert xs[m.group(1)] < xs[m.group(3)], (caption, spec.objects)
            seen += 1
    assert seen >= 3


def test_not_recoverable_from_one_global_colour():
    """Scenes with the same mean colour get different captions: clutter, several objects."""
    ds = SyntheticScenes(200, 32, seed=1)
    multi = sum(len(ds.scene(i).objects) > 1 for i in range(200))
    assert multi > 120
    stats = ds.describe()
    assert stats["objects_per_image"][3] > 40 and stats["objects_per_image"][1] > 20
    backgrounds = {ds.scene(i).background for i in range(200)}
    assert backgrounds == {"gradient", "stripes", "checker", "blotches"}


def test_references_and_describe(scenes):
    refs = scenes.references()
    assert sorted(refs) == list(range(40))
    assert refs[7] == scenes[7]["captions"]
    stats = scenes.describe()
    assert stats["num_images"] == 40 and stats["num_captions"] == 200
    assert stats["caption_length"]["min"] >= 2 and stats["caption_length"]["max"] <= 16
    assert sum(stats["caption_length"]["histogram"].values()) == 200
    assert stats["vocabulary_size"] <= len(CAPTION_WORDS)
    assert sum(stats["tag_labels"].values()) == 40
    assert scenes.describe(limit=10)["num_images"] == 10


def test_captions_per_image():
    ds = SyntheticScenes(5, 32, captions_per_image=9)
    assert all(len(ds.captions(i)) == 9 for i in range(5))
    one = SyntheticScenes(5, 32, captions_per_image=1)
    assert all(len(one[i]["captions"]) == 1 for i in range(5))


def test_dataloader_batches():
    loader = DataLoader(SyntheticScenes(6, 32), batch_size=4, collate_fn=collate_items)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["tag_box"].shape == (4, 4) and batch["tag_label"].shape == (4,)
    assert len(batch["captions"]) == 4 and len(batch["captions"][0]) == 5
    assert batch["image_id"].tolist() == [0, 1, 2, 3]


def test_tag_geometry_scales():
    ds = SyntheticScenes(1, 16)
    x0, y0, x1, y1, margin = tag_geometry(ds.scene(0), 16)
    assert (x1 - x0, margin) == (3, 1) and 0 <= x0 and x1 <= 16


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_images": -1}, "num_images"),
        ({"num_images": 2.0}, "num_images"),
        ({"num_images": 2, "image_size": 8}, "image_size"),
        ({"num_images": 2, "seed": -1}, "seed"),
        ({"num_images": 2, "captions_per_image": 0}, "captions_per_image"),
        ({"num_images": 2, "split": "val"}, "split"),
        ({"num_images": 2, "noise_std": -0.1}, "noise_std"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticScenes(**kwargs)


def test_index_errors():
    ds = SyntheticScenes(3, 32)
    with pytest.raises(IndexError, match="3 scenes"):
        ds[3]
    with pytest.raises(IndexError):
        ds[-4]
    assert len(list(ds)) == 3  # iteration stops cleanly
