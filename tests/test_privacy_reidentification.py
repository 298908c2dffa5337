"""dlib face embeddings and top-1 re-identification against a gallery of originals."""

from __future__ import annotations

import math

import pytest
import torch

from privcap.privacy.blur import gaussian_blur
from privcap.privacy.face_crops import coco_face_crops, portrait_face_crops
from privcap.privacy.reidentification import (
    _rectangle,
    dlib_model_paths,
    face_embeddings,
    reidentification_accuracy,
    top1_reidentification,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_top1_on_hand_made_embeddings():
    gallery = torch.eye(4, dtype=torch.float64) * 10
    probes = gallery[[0, 1, 3, 2]] + 0.1  # probes 2 and 3 look like each other's identity
    result = top1_reidentification(probes, gallery)
    assert result["predicted"] == [0, 1, 3, 2]
    assert result["top1_accuracy"] == 0.5 and result["chance"] == 0.25
    assert (result["num_probes"], result["gallery_size"]) == (4, 4)
    assert result["nearest_distance_mean"] == pytest.approx(0.2)  # |(0.1, 0.1, 0.1, 0.1)|
    # explicit identities: three probes of gallery entries 3, 3 and 0 among 4
    named = top1_reidentification(probes[[2, 3, 0]], gallery, identities=[3, 3, 0])
    assert named["top1_accuracy"] == pytest.approx(2 / 3) and named["chance"] == 0.25
    with pytest.raises(ValueError, match="give identities"):
        top1_reidentification(probes[:3], gallery)
    with pytest.raises(ValueError, match="identities must be"):
        top1_reidentification(probes, gallery, identities=[0, 1, 2, 4])
    with pytest.raises(ValueError, match="dimensions"):
        top1_reidentification(probes[:, :3], gallery)
    with pytest.raises(ValueError, match="finite"):
        top1_reidentification(probes * math.nan, gallery)


def test_model_files_are_found():
    paths = dlib_model_paths()
    assert paths["recognition"].name == "dlib_face_recognition_resnet_model_v1.dat"
    assert paths["shape"].name == "shape_predictor_5_face_landmarks.dat"
    assert all(p.stat().st_size > 1_000_000 for p in paths.values())


def test_portrait_embeddings_separate_two_people():
    crops = portrait_face_crops(size=128).images
    emb = face_embeddings(crops)
    assert emb.shape == (2, 128) and emb.dtype == torch.float64
    # two people: farther apart than dlib's 0.6 same-person threshold; a mild blur of one
    # person stays well within it
    assert torch.dist(emb[0], emb[1]) > 0.6
    assert torch.dist(face_embeddings(gaussian_blur(crops[:1], 1.0))[0], emb[0]) < 0.3
    with pytest.raises(ValueError, match="floating"):
        face_embeddings((crops * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="rectangle"):
        face_embeddings(crops, rectangle="detector")


def test_face_rectangle_in_a_crop():
    # one head width (128 / 1.5 = 85.3 -> 85 px), centred horizontally, centre 0.56 down
    assert _rectangle(128, 128, "face") == (21, 29, 105, 113)
    assert _rectangle(128, 128, "full") == (0, 0, 127, 127)
    assert _rectangle(256, 256, "face") == (43, 58, 213, 228)


def test_reidentification_on_coco_faces(coco_mini_dir):
    crops = (coco_face_crops(coco_mini_dir, size=128, max_faces=10)
             + portrait_face_crops(size=128)).images
    gallery = face_embeddings(crops)
    clean = reidentification_accuracy(crops, crops, gallery)
    assert clean["top1_accuracy"] == 1.0 and clean["chance"] == pytest.approx(1 / 12)
    assert clean["true_distance_mean"] == pytest.approx(0.0, abs=1e-9)
    heavy = reidentification_accuracy(crops, gaussian_blur(crops, 8.0), gallery)
    assert heavy["top1_accuracy"] <= 0.5, heavy["top1_accuracy"]
    assert heavy["true_distance_mean"] > 0.3
    with pytest.raises(ValueError, match="same faces"):
        reidentification_accuracy(crops, crops[:3])
