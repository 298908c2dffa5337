"""Face detectors (MTCNN, Haar), the kept-face rules and the camera table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from privcap.data.photos import sample_photos
from privcap.privacy.face_crops import (
    PORTRAIT_KEYPOINTS,
    face_box_from_keypoints,
    portrait_face_crops,
)
from privcap.privacy.faces import (
    box_iou,
    detect_faces,
    detection_rate,
    face_detection_table,
    to_uint8_hwc,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def portraits() -> torch.Tensor:
    return portrait_face_crops(size=128).images


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return sample_photos(["astronaut"])["astronaut"]


def _inside(box, point) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_detector_finds_the_astronaut_and_nothing_on_grey(detector, astronaut, portraits):
    found = detect_faces(astronaut, detector)
    assert len(found) == 1 and len(found[0]) == 1, found
    box = found[0][0]
    nose, left_eye, right_eye = (PORTRAIT_KEYPOINTS["astronaut"][3 * k: 3 * k + 2]
                                 for k in range(3))
    assert all(_inside(box, p) for p in (nose, left_eye, right_eye)), box
    assert 60 < box[2] - box[0] < 130  # a face, not the whole 512 px photo
    assert box_iou(box, face_box_from_keypoints(PORTRAIT_KEYPOINTS["astronaut"])) > 0.3
    on_crops = detect_faces(portraits, detector)
    assert [len(b) >= 1 for b in on_crops] == [True, True]
    grey = torch.full((2, 3, 128, 128), 0.5)
    assert detect_faces(grey, detector) == [[], []]
    assert detect_faces(torch.zeros(1, 3, 12, 12), detector) == [[]]  # smaller than a face


def test_mtcnn_probability_threshold(portraits):
    assert detect_faces(portraits[:1], "mtcnn", min_probability=1.0) == [[]]
    with pytest.raises(ValueError, match="min_probability"):
        detect_faces(portraits, "mtcnn", min_probability=1.5)


def test_bad_inputs_are_rejected(portraits):
    with pytest.raises(ValueError, match="floating"):
        detect_faces((portraits * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        detect_faces(torch.rand(2, 4, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        detect_faces(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="detector must be one of"):
        detect_faces(portraits, "yolo")
    with pytest.raises(ValueError, match="same scenes"):
        detection_rate([[]], [[], []])
    with pytest.raises(ValueError, match="iou_threshold"):
        detection_rate([[]], [[]], iou_threshold=0.0)
    with pytest.raises(ValueError, match="rule"):
        detection_rate([[]], [[]], rule="most")


def test_uint8_conversion_clips_and_rounds():
    x = torch.tensor([-0.2, 0.5, 1.3, 0.999]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    arr = to_uint8_hwc(x)
    assert arr.shape == (1, 2, 2, 3) and arr.dtype.name == "uint8"
    assert arr[0, :, :, 0].tolist() == [[0, 128], [255, 255]]


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0


def test_kept_face_rules():
    face, elsewhere = (10, 10, 50, 50), (60, 60, 100, 100)
    shifted = (20, 10, 60, 50)  # IoU 30 * 40 / (2 * 1600 - 1200) = 0.6
    original = [[face], [face], [], [face, elsewhere]]
    altered = [[shifted], [elsewhere], [face], [face]]
    any_rule = detection_rate(original, altered, rule="any")
    # images 0, 1 and 3 have a face on the original; all three still have a detection
    assert (any_rule["found_original"], any_rule["kept"], any_rule["found_altered"]) == (3, 3, 4)
    assert any_rule["rate"] == 1.0
    overlap = detection_rate(original, altered, rule="overlap")
    # faces: 0 kept (IoU 0.6), 1 lost (detection elsewhere), 3a kept, 3b lost
    assert (overlap["found_original"], overlap["kept"]) == (4, 2) and overlap["rate"] == 0.5
    strict = detection_rate(original, altered, rule="overlap", iou_threshold=0.7)
    assert strict["kept"] == 1
    # one detection cannot keep two original faces
    twin = detection_rate([[face, face]], [[face]], rule="overlap")
    assert twin["kept"] == 1
    assert detection_rate([[]], [[face]])["rate"] is None
    assert detection_rate(original, altered)["rule"] == "overlap"  # the default


class _Grey(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, 0.5)


class _Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_face_detection_table(portraits):
    table = face_detection_table(portraits, {"clean": _Identity(), "grey": _Grey()},
                                 names=["astronaut", "grace_hopper"])
    assert table["num_images"] == 2 and table["names"] == ["astronaut", "grace_hopper"]
    for detector in ("mtcnn", "haar"):
        entry = table["detectors"][detector]
        assert entry["original"]["found"] == 2
        assert entry["cameras"]["clean"]["kept"] == 2 and entry["cameras"]["clean"]["rate"] == 1
        assert entry["cameras"]["grey"] == {"found_altered": 0, "kept": 0, "rate": 0.0,
                                            "per_image": [0, 0]}
    with pytest.raises(ValueError, match="detectors"):
        face_detection_table(portraits, {}, detectors=["haar", "dlib"])
    with pytest.raises(ValueError, match="names"):
        face_detection_table(portraits, {}, names=["a"])
    shrink = nn.AvgPool2d(2)
    with pytest.raises(ValueError, match="changed the image shape"):
        face_detection_table(portraits, {"small": shrink}, detectors=["haar"])
