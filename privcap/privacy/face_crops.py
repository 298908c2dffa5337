"""Face-centred crops of real people: the images on which face privacy is measured.

Whole COCO photos hold few faces a detector can find (people are small, turned away or far
off), while a doorbell or laptop camera sees a face that fills most of its frame. The crops
here reproduce that view from the person keypoints of COCO (``person_keypoints_*.json``,
read through ``pycocotools.coco.COCO``) and from the two bundled portraits
(:mod:`privcap.data.photos`).

**Which people.** A person annotation yields a face when at least two of its nose, left eye
and right eye are visible (COCO visibility flag ``v > 0``): a frontal face (nose + both
eyes), a profile (nose + one eye) or a face with the nose hidden (both eyes). Backs of heads
(ears only) are skipped. On ``../shared/data/coco-mini`` this keeps 41 of the 118 people.

**Crop rule** (:func:`face_box_from_keypoints`). The head width ``W`` is estimated from the
visible head keypoints; each available distance gives an estimate, and the largest is kept
(turning the head only shortens projected distances, so the largest is the least
foreshortened):

=============================  =============================================
distance (image pixels)        estimate of the head width ``W``
=============================  =============================================
ear to ear                     ``1.0 x`` (the ears bound the head)
eye to eye                     ``2.4 x`` (interocular ~6.3 cm, head ~15 cm)
nose to an eye                 ``3.2 x``
an eye to the ear on its side  ``1.8 x``
=============================  =============================================

The crop is the square of side ``CROP_SIDE_PER_HEAD_WIDTH * W`` (1.5: the face fills about
two thirds of the frame, forehead to chin, like a doorbell or laptop camera at arm's length)
centred on the mean of the visible nose and eyes. Pixels of the square that fall outside the
photo repeat the photo's border (replicate padding). The square is resampled to ``size``
pixels (bilinear, antialiased; the project's policy, :mod:`privcap.data.transforms`).

Images are RGB float tensors in ``[0, 1]``; boxes are ``(x0, y0, x1, y1)`` in pixels of the
source photo (COCO's pixel coordinates, x to the right, y downwards).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from privcap.data.images import load_image

__all__ = [
    "CROP_SIDE_PER_HEAD_WIDTH",
    "FaceCrop",
    "FaceCrops",
    "PORTRAIT_KEYPOINTS",
    "coco_face_crops",
    "crop_square",
    "face_box_from_keypoints",
    "portrait_face_crops",
]

#: COCO keypoint order of the head: nose, left eye, right eye, left ear, right ear.
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = range(5)
#: Side of the crop square in head widths.
CROP_SIDE_PER_HEAD_WIDTH = 1.5
#: Head width per unit of each keypoint distance (see the module docstring).
HEAD_WIDTH_PER_EAR_DISTANCE = 1.0
HEAD_WIDTH_PER_EYE_DISTANCE = 2.4
HEAD_WIDTH_PER_NOSE_EYE_DISTANCE = 3.2
HEAD_WIDTH_PER_EYE_EAR_DISTANCE = 1.8

#: Head keypoints of the bundled portraits in COCO order and convention (``left`` is the
#: person's left, on the image's right), ``(x, y, visibility)`` in pixels of the original
#: photo: the eye and nose positions located once with MTCNN's landmarks and rounded.
PORTRAIT_KEYPOINTS: dict[str, tuple[float, ...]] = {
    "astronaut": (225, 129, 2, 247, 104, 2, 205, 102, 2, 0, 0, 0, 0, 0, 0),
    "grace_hopper": (269, 239, 2, 310, 186, 2, 222, 192, 2, 0, 0, 0, 0, 0, 0),
}


@dataclass(frozen=True)
class FaceCrop:
    """Where one crop comes from.

    Attributes:
        source: ``"coco"`` or the portrait's name.
        image_id: COCO image id (-1 for a portrait).
        annotation_id: COCO person annotation id (-1 for a portrait).
        file_name: the photo's file name (the loader name for a portrait).
        box: the crop square ``(x0, y0, x1, y1)`` in pixels of the photo (may extend past
            its border; those pixels repeat the border).
    """

    source: str
    image_id: int
    annotation_id: int
    file_name: str
    box: tuple[float, float, float, float]

    @property
    def side_px(self) -> float:
        """Side of the crop square in pixels of the photo."""
        return self.box[2] - self.box[0]

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return {"source": self.source, "image_id": self.image_id,
                "annotation_id": self.annotation_id, "file_name": self.file_name,
                "box": list(self.box)}


@dataclass
class FaceCrops:
    """Face crops ``N x 3 x size x size`` in ``[0, 1]`` and, per crop, its :class:`FaceCrop`."""

    images: torch.Tensor
    info: list[FaceCrop]

    def __len__(self) -> int:
        return len(self.info)

    def __add__(self, other: FaceCrops) -> FaceCrops:
        if self.images.shape[1:] != other.images.shape[1:]:
            raise ValueError(
                f"cannot join crops of shapes {tuple(self.images.shape[1:])} and "
                f"{tuple(other.images.shape[1:])}"
            )
        return FaceCrops(torch.cat([self.images, other.images]), self.info + other.info)


def _head_points(keypoints: Sequence[float]) -> dict[int, tuple[float, float]]:
    if len(keypoints) < 15 or len(keypoints) % 3:
        raise ValueError(
            "keypoints must be COCO's flat list (x, y, v) * K with K >= 5 head points, "
            f"got {len(keypoints)} numbers"
        )
    points = {}
    for k in range(5):
        x, y, v = (float(keypoints[3 * k + i]) for i in range(3))
        if not all(math.isfinite(t) for t in (x, y, v)):
            raise ValueError(f"keypoint {k} is not finite: {(x, y, v)}")
        if v > 0:
            points[k] = (x, y)
    return points


def face_box_from_keypoints(keypoints: Sequence[float]) -> tuple[float, float, float, float] | None:
    """The face-centred crop square of one person, or None when no face is seen.

    Args:
        keypoints: COCO's flat keypoint list ``(x, y, v) * 17`` (only the first five, the
            head, are used; a list of just those 15 numbers works too).

    Returns:
        ``(x0, y0, x1, y1)`` in pixels (a square, see the module docstring for the rule), or
        None when fewer than two of nose, left eye and right eye are visible, or when the
        visible points coincide (no size can be estimated).
    """
    points = _head_points(keypoints)
    core = [k for k in (NOSE, LEFT_EYE, RIGHT_EYE) if k in points]
    if len(core) < 2:
        return None

    def dist(a: int, b: int) -> float:
        return math.dist(points[a], points[b])

    estimates = []
    if LEFT_EAR in points and RIGHT_EAR in points:
        estimates.append(HEAD_WIDTH_PER_EAR_DISTANCE * dist(LEFT_EAR, RIGHT_EAR))
    if LEFT_EYE in points and RIGHT_EYE in points:
        estimates.append(HEAD_WIDTH_PER_EYE_DISTANCE * dist(LEFT_EYE, RIGHT_EYE))
    for eye, ear in ((LEFT_EYE, LEFT_EAR), (RIGHT_EYE, RIGHT_EAR)):
        if eye in points and NOSE in points:
            estimates.append(HEAD_WIDTH_PER_NOSE_EYE_DISTANCE * dist(NOSE, eye))
        if eye in points and ear in points:
            estimates.append(HEAD_WIDTH_PER_EYE_EAR_DISTANCE * dist(eye, ear))
    head_width = max(estimates)
    if head_width <= 0:
        return None
    cx = sum(points[k][0] for k in core) / len(core)
    cy = sum(points[k][1] for k in core) / len(core)
    half = 0.5 * CROP_SIDE_PER_HEAD_WIDTH * head_width
    return (cx - half, cy - half, cx + half, cy + half)


def crop_square(image: torch.Tensor, box: Sequence[float], size: int) -> torch.Tensor:
    """Cut ``box`` out of ``image`` (replicating the border outside it) and resample it.

    Args:
        image: ``3 x H x W`` float image in ``[0, 1]``.
        box: ``(x0, y0, x1, y1)`` in pixels; rounded to whole pixels (corners to the
            nearest pixel, the side to a whole number of pixels).
        size: output side in pixels.

    Returns:
        ``3 x size x size`` float32 in ``[0, 1]``.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(
            f"image must be a 3 x H x W tensor, got {getattr(image, 'shape', type(image))}"
        )
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor in [0, 1], got dtype {image.dtype}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
    if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
        raise ValueError(f"box must be four finite numbers (x0, y0, x1, y1), got {box!r}")
    if box[2] - box[0] < 0.5 or box[3] - box[1] < 0.5:
        raise ValueError(f"empty box {tuple(box)}")
    # whole pixels: corners rounded, sides rounded independently (a square stays square)
    x0, y0 = round(box[0]), round(box[1])
    x1, y1 = x0 + round(box[2] - box[0]), y0 + round(box[3] - box[1])
    height, width = image.shape[-2:]
    pad = (max(0, -x0), max(0, x1 - width), max(0, -y0), max(0, y1 - height))
    x = image.unsqueeze(0).float()
    if any(pad):  # repeat the border: clamp the indices (works for any overhang)
        rows = torch.arange(y0, y1).clamp(0, height - 1)
        cols = torch.arange(x0, x1).clamp(0, width - 1)
        patch = x[:, :, rows][:, :, :, cols]
    else:
        patch = x[:, :, y0:y1, x0:x1]
    if patch.shape[-2:] != (size, size):
        patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
    return patch[0].clamp(0.0, 1.0).contiguous()


def _load_coco(keypoints_json: Path):  # -> pycocotools.coco.COCO
    from pycocotools.coco import COCO

    if not keypoints_json.is_file():
        raise FileNotFoundError(f"person keypoints file not found: {keypoints_json}")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its loading progress
        try:
            return COCO(str(keypoints_json))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{keypoints_json} is not a COCO person-keypoints file: {exc}"
            ) from exc


def coco_face_crops(coco_dir: str | os.PathLike[str], *, size: int = 128,
                    image_dir: str = "val2017",
                    keypoints_file: str = "annotations/person_keypoints_val2017.json",
                    max_faces: int | None = None) -> FaceCrops:
    """Face-centred crops of every person with a visible face in a COCO folder.

    Args:
        coco_dir: folder holding ``keypoints_file`` and ``image_dir`` (e.g.
            ``../shared/data/coco-mini``).
        size: side of the crops in pixels.
        image_dir: folder of the photos, relative to ``coco_dir``.
        keypoints_file: the person keypoints JSON, relative to ``coco_dir``.
        max_faces: keep the first ``max_faces`` faces only (None: all).

    Returns:
        :class:`FaceCrops` ordered by image id, then annotation id. Only photos present in
        ``image_dir`` are used; a listed photo that is missing raises ``FileNotFoundError``
        (nothing is skipped silently). Crowd annotations are skipped (they have no
        keypoints).
    """
    root = Path(coco_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"COCO folder not found: {root}")
    if max_faces is not None and (isinstance(max_faces, bool) or not isinstance(max_faces, int)
                                  or max_faces < 1):
        raise ValueError(f"max_faces must be a positive integer or None, got {max_faces!r}")
    coco = _load_coco(root / keypoints_file)
    folder = root / image_dir
    images, info = [], []
    for image_id in sorted(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False))
        faces = []
        for ann in sorted(anns, key=lambda a: a["id"]):
            box = face_box_from_keypoints(ann.get("keypoints", []) or [0] * 15)
            if box is not None:
                faces.append((ann["id"], box))
        if not faces:
            continue
        file_name = coco.loadImgs([image_id])[0]["file_name"]
        photo = load_image(folder / file_name)
        for annotation_id, box in faces:
            images.append(crop_square(photo, box, size))
            info.append(FaceCrop("coco", int(image_id), int(annotation_id), file_name, box))
            if max_faces is not None and len(info) >= max_faces:
                return FaceCrops(torch.stack(images), info)
    if not info:
        raise ValueError(f"no person with a visible face in {root / keypoints_file}")
    return FaceCrops(torch.stack(images), info)


def portrait_face_crops(size: int = 128,
                        names: Sequence[str] = ("astronaut", "grace_hopper")) -> FaceCrops:
    """Face-centred crops of the bundled portraits (same rule as the COCO people).

    Args:
        size: side of the crops in pixels.
        names: portraits of :data:`PORTRAIT_KEYPOINTS`.
    """
    from privcap.data.photos import sample_photos

    unknown = [n for n in names if n not in PORTRAIT_KEYPOINTS]
    if unknown or not names:
        raise ValueError(f"unknown portrait(s) {unknown}; available: {list(PORTRAIT_KEYPOINTS)}")
    photos = sample_photos(list(names))
    images, info = [], []
    for name in names:
        box = face_box_from_keypoints(PORTRAIT_KEYPOINTS[name])
        assert box is not None  # the constants have three visible points
        images.append(crop_square(photos[name], box, size))
        info.append(FaceCrop(name, -1, -1, name, box))
    return FaceCrops(torch.stack(images), info)


def face_gallery(size: int = 128, coco_dir: str | os.PathLike[str] | None = None,
                 max_coco_faces: int | None = None) -> tuple[FaceCrops, str]:
    """The faces the privacy measurements use, and a one-line description of them.

    The bundled portraits always; then the people of a COCO folder with person keypoints
    (default :func:`privcap.paths.shared_coco_mini_dir`) when that folder exists. Without
    it (a machine without the shared data) only the portraits are used, and the
    description says so.
    """
    from privcap.paths import shared_coco_mini_dir

    crops = portrait_face_crops(size)
    root = Path(coco_dir) if coco_dir is not None else shared_coco_mini_dir()
    if coco_dir is None and not root.is_dir():
        return crops, (f"{len(crops)} bundled portraits (no COCO folder at {root}: "
                       "COCO faces left out)")
    coco = coco_face_crops(root, size=size, max_faces=max_coco_faces)
    return (crops + coco,
            f"{len(crops)} bundled portraits and {len(coco)} face-centred crops of the "
            f"people of {root.name}")
