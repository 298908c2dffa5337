"""Hidden-detail readers: scores, crops, and a quick adaptive attack on clean scenes."""

from __future__ import annotations

import math

import pytest
import torch

from privcap.data.synthetic import SyntheticScenes
from privcap.privacy.readers import (
    CROP_PX,
    JITTER_PX,
    best_reader_accuracy,
    confusion_matrix,
    mutual_information_bits,
    prediction_entropy_bits,
    render_through,
    tag_crops,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_prediction_entropy():
    assert prediction_entropy_bits([3] * 50) == 0.0
    assert prediction_entropy_bits(list(range(10)) * 7) == pytest.approx(math.log2(10))
    assert prediction_entropy_bits([1, 2] * 5) == pytest.approx(1.0)
    assert prediction_entropy_bits([0, 0, 0, 1]) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        prediction_entropy_bits([10])
    with pytest.raises(ValueError, match="integer"):
        prediction_entropy_bits(torch.tensor([0.5]))


def test_confusion_and_mutual_information():
    c = confusion_matrix([0, 1, 1, 2], [1, 1, 1, 2])
    assert c.shape == (10, 10) and c[0, 1] == 1 and c[1, 1] == 2 and c[2, 2] == 1
    assert int(c.sum()) == 4
    perfect = confusion_matrix(list(range(10)) * 3, list(range(10)) * 3)
    assert mutual_information_bits(perfect) == pytest.approx(math.log2(10))
    independent = torch.ones(10, 10)  # prediction says nothing about the label
    assert mutual_information_bits(independent) == pytest.approx(0.0, abs=1e-12)
    constant = confusion_matrix(list(range(10)), [4] * 10)
    assert mutual_information_bits(constant) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="labels but"):
        confusion_matrix([0, 1], [1])


def test_tag_crops_are_native_at_128_px():
    scenes = SyntheticScenes(4, 128, seed=5, split="test")
    images, labels, boxes = render_through(scenes, None)
    assert images.shape == (4, 3, 128, 128) and labels.shape == (4,) and boxes.shape == (4, 4)
    crops = tag_crops(images, boxes)
    assert crops.shape == (4, 3, CROP_PX + 2 * JITTER_PX, CROP_PX + 2 * JITTER_PX)
    border = (CROP_PX + 2 * JITTER_PX - 12) // 2  # the plate is 12 px at 128 px
    for crop, image, (x0, y0, x1, y1) in zip(crops, images, boxes.tolist(), strict=True):
        if min(x0, y0) >= border and max(x1, y1) <= 128 - border:
            expected = image[:, y0 - border : y1 + border, x0 - border : x1 + border]
            assert torch.allclose(crop, expected)
    with pytest.raises(ValueError, match="outside"):
        tag_crops(images, torch.tensor([[120, 120, 132, 132]] * 4))
    with pytest.raises(ValueError, match="boxes must be"):
        tag_crops(images, boxes[:3])


def test_render_through_applies_the_camera_and_checks_its_shape():
    scenes = SyntheticScenes(3, 128, seed=5)
    dark, _, _ = render_through(scenes, lambda x: x * 0.5)
    clean, _, _ = render_through(scenes, None)
    assert torch.allclose(dark, clean * 0.5)
    with pytest.raises(ValueError, match="keep the image shape"):
        render_through(scenes, lambda x: x[..., :64, :64])


@pytest.fixture(scope="module")
def clean_scenes():
    train = render_through(SyntheticScenes(600, 128, seed=0, split="train"), None)
    test = render_through(SyntheticScenes(200, 128, seed=1, split="test"), None)
    return train, test


def test_quick_readers_beat_chance_on_clean_scenes(clean_scenes):
    (x, y, b), (xt, yt, bt) = clean_scenes
    result = best_reader_accuracy(x, y, xt, yt, (b, bt), seed=0,
                                  training={"cnn": {"epochs": 6}, "mobilenet_v2": {"epochs": 4}})
    per = result["per_reader"]
    assert set(per) == {"cnn", "mobilenet_v2"}
    assert result["reader"] == max(per, key=lambda r: per[r]["accuracy"])
    assert result["accuracy"] == per[result["reader"]]["accuracy"] >= 0.6, per
    assert min(p["accuracy"] for p in per.values()) >= 0.5, per  # both far above chance
    assert result["chance"] == 0.1 and result["majority"] < 0.2
    assert result["entropy_bits"] > 3.0  # answers spread over the digits
    assert result["mutual_information_bits"] > 1.0
    confusion = torch.tensor(result["confusion"])
    assert int(confusion.sum()) == 200
    assert torch.equal(confusion.sum(1), torch.bincount(yt, minlength=10))
    assert float(confusion.diag().sum()) / 200 == pytest.approx(result["accuracy"])
    assert (result["num_train"], result["num_test"]) == (600, 200)


def test_reader_on_destroyed_tags_is_at_chance(clean_scenes):
    (x, y, b), (xt, yt, bt) = clean_scenes
    grey = torch.full_like(x[:200], 0.5)  # a camera that delivers nothing
    result = best_reader_accuracy(grey, y[:200], torch.full_like(xt, 0.5), yt, (b[:200], bt),
                                  readers=["cnn"], training={"cnn": {"epochs": 2}})
    # with identical inputs the reader answers one class: no information
    assert result["entropy_bits"] == 0.0 and result["mutual_information_bits"] == 0.0
    assert result["accuracy"] <= result["majority"] + 1e-12


def test_reader_arguments_are_checked(clean_scenes):
    (x, y, b), (xt, yt, bt) = clean_scenes
    with pytest.raises(ValueError, match="readers must be"):
        best_reader_accuracy(x, y, xt, yt, (b, bt), readers=["resnet"])
    with pytest.raises(ValueError, match="pair"):
        best_reader_accuracy(x, y, xt, yt, b)
    with pytest.raises(ValueError, match="labels"):
        best_reader_accuracy(x, y[:-1], xt, yt, (b, bt))
    with pytest.raises(ValueError, match="unknown or unused"):
        best_reader_accuracy(x, y, xt, yt, (b, bt), readers=["cnn"],
                             training={"mobilenet_v2": {"epochs": 1}})
    with pytest.raises(ValueError, match="epochs and lr"):
        best_reader_accuracy(x[:4], y[:4], xt[:2], yt[:2], (b[:4], bt[:2]), readers=["cnn"],
                             training={"cnn": {"epochs": 0}})
