"""Real photos bundled with installed packages (privcap.data.photos)."""

from __future__ import annotations

import pytest
import torch

from privcap.data.photos import PHOTO_SOURCES, sample_photos


def test_all_photos_load_as_rgb():
    photos = sample_photos()
    assert list(photos) == list(PHOTO_SOURCES)
    for name, img in photos.items():
        assert img.ndim == 3 and img.shape[0] == 3 and min(img.shape[1:]) >= 256, name
        assert img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1, name
        assert img.std() > 0.05, name  # a real picture, not a blank
    assert photos["astronaut"].shape == (3, 512, 512)
    assert torch.equal(photos["camera"][0], photos["camera"][1])  # grayscale replicated
    assert photos["coffee"].shape == (3, 400, 600)
    # colour photos are not gray
    assert (photos["astronaut"][0] - photos["astronaut"][2]).abs().mean() > 0.05


def test_faces_and_licences_are_documented():
    faces = [n for n, info in PHOTO_SOURCES.items() if info["faces"]]
    assert {"astronaut", "grace_hopper"} <= set(faces)
    for info in PHOTO_SOURCES.values():
        assert info["licence"] in {"public domain", "CC0"} and info["source"]


def test_subset_and_resize():
    photos = sample_photos(["grace_hopper", "chelsea"], image_size=128)
    assert list(photos) == ["grace_hopper", "chelsea"]
    assert all(p.shape == (3, 128, 128) for p in photos.values())


def test_unknown_name():
    with pytest.raises(ValueError, match="lena"):
        sample_photos(["lena"])
