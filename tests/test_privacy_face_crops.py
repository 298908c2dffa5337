"""Face-centred crops: the keypoint rule, the crop geometry and the COCO reader."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from privcap.privacy.face_crops import (
    CROP_SIDE_PER_HEAD_WIDTH,
    coco_face_crops,
    crop_square,
    face_box_from_keypoints,
    portrait_face_crops,
)


def head(nose=None, left_eye=None, right_eye=None, left_ear=None, right_ear=None) -> list[float]:
    """COCO's 17 keypoints with the given head points visible, the body absent."""
    flat: list[float] = []
    for point in (nose, left_eye, right_eye, left_ear, right_ear):
        flat += [*point, 2] if point is not None else [0, 0, 0]
    return flat + [0, 0, 0] * 12


def test_frontal_face_box_from_eyes_and_nose():
    # eyes 20 px apart -> head width 2.4 * 20 = 48 (nose-eye 14.1 * 3.2 = 45.3 is smaller)
    box = face_box_from_keypoints(head(nose=(100, 100), left_eye=(110, 90), right_eye=(90, 90)))
    side = CROP_SIDE_PER_HEAD_WIDTH * 48.0
    cy = (100 + 90 + 90) / 3  # mean of nose and eyes
    assert box == pytest.approx((100 - side / 2, cy - side / 2, 100 + side / 2, cy + side / 2))


def test_ears_bound_the_head_when_visible():
    points = dict(nose=(100, 100), left_eye=(110, 90), right_eye=(90, 90))
    box = face_box_from_keypoints(head(**points, left_ear=(135, 95), right_ear=(65, 95)))
    assert box[2] - box[0] == pytest.approx(CROP_SIDE_PER_HEAD_WIDTH * 70.0)  # ear to ear
    # the centre ignores the ears: mean of nose and eyes
    assert (box[0] + box[2]) / 2 == pytest.approx(100.0)


def test_profile_face_uses_the_longest_estimate():
    # nose + one eye + its ear: eye-ear 30 * 1.8 = 54 beats nose-eye 10 * 3.2 = 32
    box = face_box_from_keypoints(head(nose=(50, 60), left_eye=(60, 60), left_ear=(90, 60)))
    assert box[2] - box[0] == pytest.approx(CROP_SIDE_PER_HEAD_WIDTH * 54.0)
    assert ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) == pytest.approx((55.0, 60.0))


def test_no_face_without_two_of_nose_and_eyes():
    assert face_box_from_keypoints(head(left_ear=(10, 10), right_ear=(40, 10))) is None
    assert face_box_from_keypoints(head(nose=(10, 10), left_ear=(40, 10))) is None
    assert face_box_from_keypoints(head()) is None
    assert face_box_from_keypoints(head(nose=(5, 5), left_eye=(5, 5))) is None  # coincide
    with pytest.raises(ValueError, match="COCO's flat list"):
        face_box_from_keypoints([1, 2, 2, 3])
    with pytest.raises(ValueError, match="not finite"):
        face_box_from_keypoints([math.nan, 1, 2] + [0] * 12)


def test_crop_square_geometry_and_border():
    image = torch.zeros(3, 40, 60)
    image[0, 10:20, 30:40] = 1.0  # red block
    crop = crop_square(image, (30, 10, 40, 20), 10)  # exactly the block: no resampling
    assert torch.equal(crop[0], torch.ones(10, 10)) and crop[1:].abs().max() == 0
    ramp = torch.arange(60.0).expand(3, 40, 60) / 60
    # a box hanging 5 px past the left border repeats the first column
    edge = crop_square(ramp, (-5, 0, 5, 10), 10)
    assert torch.equal(edge[0, :, :6], torch.zeros(10, 6))
    assert torch.allclose(edge[0, 0, 6:], torch.arange(1.0, 5.0) / 60)
    half = crop_square(image, (30, 10, 40, 20), 5)  # downsampled: still the red block
    assert half.shape == (3, 5, 5) and half[0].min() > 0.99
    with pytest.raises(ValueError, match="float"):
        crop_square(image.to(torch.uint8), (0, 0, 5, 5), 4)
    with pytest.raises(ValueError, match="3 x H x W"):
        crop_square(image[0], (0, 0, 5, 5), 4)
    with pytest.raises(ValueError, match="empty box"):
        crop_square(image, (5, 5, 5, 9), 4)


def _write_coco(root, faces_box):
    """A one-photo COCO folder: a green face patch where the keypoints say, one back of a
    head (ears only) and one crowd region."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    pixels = Image.new("RGB", (200, 150), (0, 0, 255))
    pixels.paste((0, 255, 0), faces_box)
    pixels.save(root / "val2017" / "000000000007.jpg", quality=95)
    keypoints = head(nose=(60, 50), left_eye=(65, 45), right_eye=(55, 45))
    data = {
        "images": [{"id": 7, "file_name": "000000000007.jpg", "width": 200, "height": 150}],
        "annotations": [
            {"id": 11, "image_id": 7, "category_id": 1, "iscrowd": 0, "keypoints": keypoints,
             "num_keypoints": 3, "bbox": [40, 30, 40, 100], "area": 4000},
            {"id": 12, "image_id": 7, "category_id": 1, "iscrowd": 0,
             "keypoints": head(left_ear=(150, 40), right_ear=(170, 40)), "num_keypoints": 2,
             "bbox": [140, 30, 40, 100], "area": 4000},
            {"id": 13, "image_id": 7, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 51,
             "num_keypoints": 0, "bbox": [0, 100, 50, 50], "area": 2500,
             "segmentation": {"counts": [0, 2500], "size": [150, 200]}},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(data))


def test_coco_crops_land_on_the_annotated_face(tmp_path):
    # eyes 10 px apart -> head width 24, crop side 36, centred on (60, 46.67)
    box = face_box_from_keypoints(head(nose=(60, 50), left_eye=(65, 45), right_eye=(55, 45)))
    face = tuple(round(v) for v in (60 - 9, 46.67 - 9, 60 + 9, 46.67 + 9))  # the middle half
    _write_coco(tmp_path, face)
    crops = coco_face_crops(tmp_path, size=32)
    assert len(crops) == 1 and crops.images.shape == (1, 3, 32, 32)
    info = crops.info[0]
    assert (info.image_id, info.annotation_id, info.source) == (7, 11, "coco")
    assert info.box == pytest.approx(box) and info.side_px == pytest.approx(36.0)
    middle = crops.images[0, :, 10:22, 10:22]  # the face patch fills the middle half
    assert middle[1].min() > 0.85 and middle[2].max() < 0.15
    corners = crops.images[0, :, :4, :4]  # blue around it
    assert corners[2].min() > 0.85 and corners[1].max() < 0.15
    assert crops.info[0].to_dict()["box"] == pytest.approx(list(box))


def test_coco_crops_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO folder"):
        coco_face_crops(tmp_path / "nowhere")
    tmp_path.joinpath("annotations").mkdir()
    with pytest.raises(FileNotFoundError, match="person keypoints file"):
        coco_face_crops(tmp_path)
    _write_coco(tmp_path / "c", (50, 40, 70, 60))
    (tmp_path / "c" / "val2017" / "000000000007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000000000007.jpg"):
        coco_face_crops(tmp_path / "c")
    with pytest.raises(ValueError, match="max_faces"):
        coco_face_crops(tmp_path / "c", max_faces=0)


def test_portrait_crops_hold_the_faces():
    crops = portrait_face_crops(size=64)
    assert [i.source for i in crops.info] == ["astronaut", "grace_hopper"]
    assert crops.images.shape == (2, 3, 64, 64)
    assert 0.0 <= float(crops.images.min()) and float(crops.images.max()) <= 1.0
    # astronaut: nose-to-right-eye (33.6 px) gives the largest head width estimate
    nose, left_eye, right_eye = (225, 129), (247, 104), (205, 102)
    width = max(2.4 * math.dist(left_eye, right_eye), 3.2 * math.dist(nose, left_eye),
                3.2 * math.dist(nose, right_eye))
    assert width == pytest.approx(3.2 * math.dist(nose, right_eye))
    box = crops.info[0].box
    assert box[2] - box[0] == pytest.approx(CROP_SIDE_PER_HEAD_WIDTH * width)
    assert (box[0] + box[2]) / 2 == pytest.approx((225 + 247 + 205) / 3)
    with pytest.raises(ValueError, match="unknown portrait"):
        portrait_face_crops(names=["chelsea"])


def test_coco_mini_faces(coco_mini_dir):
    crops = coco_face_crops(coco_mini_dir, size=128)
    assert len(crops) == 41 and crops.images.shape == (41, 3, 128, 128)
    assert len({i.annotation_id for i in crops.info}) == 41
    ids = [(i.image_id, i.annotation_id) for i in crops.info]
    assert ids == sorted(ids)
    joined = crops + portrait_face_crops(size=128)
    assert len(joined) == 43 and joined.images.shape[0] == 43
