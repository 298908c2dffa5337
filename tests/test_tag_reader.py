"""The tag-reading privacy attacker and the calibration of the synthetic scenes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privcap.attacks.tag_reader import (
    TagReaderCNN,
    crop_tags,
    evaluate_tag_reader,
    prepare_inputs,
    train_tag_reader,
)
from privcap.data.synthetic import SyntheticScenes

IMAGE_SIZE = 128


def low_resolution_camera(factor: int):
    """Area downsampling by ``factor`` per side, nearest upsampling back to the input size."""

    def camera(images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.avg_pool2d(images, factor), scale_factor=factor, mode="nearest")

    return camera


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    train = SyntheticScenes(1000, IMAGE_SIZE, seed=0, split="train")
    test = SyntheticScenes(400, IMAGE_SIZE, seed=1, split="test")
    return train, test


@pytest.fixture(scope="module")
def clean_reader(data):
    return train_tag_reader(data[0], epochs=8, seed=0)


def test_reader_reads_clean_tags(clean_reader, data):
    """Calibration, first half: the tag is readable on clean images (held-out digits)."""
    result = evaluate_tag_reader(clean_reader, data[1])
    assert result["accuracy"] >= 0.90, result["accuracy"]
    assert result["num_images"] == 400 and result["chance"] == 0.1
    assert sum(map(sum, result["confusion"])) == 400
    assert min(v for v in result["per_class_accuracy"].values() if v is not None) > 0.6
    assert clean_reader.history[-1]["train_accuracy"] > 0.95
    assert clean_reader.history[-1]["loss"] < clean_reader.history[0]["loss"]


@pytest.mark.parametrize("factor", [16, 8], ids=["16x-per-side", "16x16-sensor"])
def test_low_resolution_camera_destroys_the_tag(clean_reader, data, factor):
    """Calibration, second half: through area downsampling by 16 per side (8 x 8 sensor at
    128 px) and through the paper's 16 x 16 sensor (by 8 at 128 px) the tag is near chance,
    for the clean reader and for a reader trained on such images (the adaptive attacker)."""
    camera = low_resolution_camera(factor)
    off_the_shelf = evaluate_tag_reader(clean_reader, data[1], degrade=camera)
    assert off_the_shelf["accuracy"] <= 0.30, off_the_shelf["accuracy"]
    adaptive = train_tag_reader(data[0], degrade=camera, epochs=8, seed=0)
    result = evaluate_tag_reader(adaptive, data[1], degrade=camera)
    assert result["accuracy"] <= 0.30, result["accuracy"]


def test_degrade_may_change_the_image_size():
    ds = SyntheticScenes(6, 128, seed=2)
    native, labels = prepare_inputs(ds, crop_size=12)  # the plate is 12 px at 128 px
    doubled, labels_2 = prepare_inputs(
        ds, crop_size=12, degrade=lambda x: F.interpolate(x, scale_factor=2, mode="nearest"))
    assert native.shape == doubled.shape == (6, 3, 12, 12)
    assert torch.equal(labels, labels_2)
    # boxes were scaled with the image: the same plate, up to resampling
    assert (native - doubled).abs().mean() < 0.06
    other, _ = prepare_inputs(SyntheticScenes(6, 128, seed=3), crop_size=12)
    assert (native - other).abs().mean() > 0.1
    with pytest.raises(ValueError, match="degrade must map"):
        prepare_inputs(ds, degrade=lambda x: x.mean(1))


def test_crop_tags_cuts_the_box():
    images = torch.zeros(2, 3, 10, 10)
    images[0, :, 2:5, 3:7] = 1.0
    crops = crop_tags(images, torch.tensor([[3, 2, 7, 5], [0, 0, 4, 3]]), crop_size=4)
    assert crops.shape == (2, 3, 4, 4)
    assert torch.allclose(crops[0], torch.ones(3, 4, 4)) and crops[1].abs().max() == 0
    with pytest.raises(ValueError, match="empty tag box"):
        crop_tags(images, torch.tensor([[3, 3, 3, 5], [0, 0, 4, 3]]), crop_size=4)


def test_whole_image_mode_runs():
    ds = SyntheticScenes(8, 32, seed=0)
    reader = train_tag_reader(ds, mode="image", epochs=1, batch_size=4, width=4)
    result = evaluate_tag_reader(reader, ds)
    assert reader.mode == "image" and result["num_images"] == 8
    assert TagReaderCNN("image", width=4)(torch.rand(2, 3, 40, 50)).shape == (2, 10)


def test_bad_arguments():
    ds = SyntheticScenes(4, 32)
    with pytest.raises(ValueError, match="mode"):
        TagReaderCNN("face")
    with pytest.raises(ValueError, match="mode"):
        prepare_inputs(ds, mode="pixels")
    with pytest.raises(ValueError, match="epochs"):
        train_tag_reader(ds, epochs=0)
    with pytest.raises(ValueError, match="empty"):
        prepare_inputs(SyntheticScenes(0, 32))
    with pytest.raises(ValueError, match="tag_box"):
        prepare_inputs([{"image": torch.rand(3, 8, 8), "captions": []}])
