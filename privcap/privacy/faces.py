"""Face detectors with bundled weights, and how many faces survive a camera.

Two off-the-shelf detectors, both run on the CPU with weights installed with their packages
(nothing is downloaded):

* ``"mtcnn"`` (the main one) -- the multi-task cascaded CNN of Zhang et al. (2016) from
  ``facenet-pytorch`` 2.6.0 (``facenet_pytorch.MTCNN``, ``keep_all=True``, smallest face
  :data:`MTCNN_MIN_FACE_PX` pixels, the package's stage thresholds 0.6 / 0.7 / 0.7). A
  detection counts when its face probability is at least :data:`MTCNN_MIN_PROBABILITY`
  (0.8): the last stage already drops anything below 0.7; on the 128-pixel face crops of
  the coco-mini people and the two portraits, 0.8 finds 35 faces (0.9: 29, 0.7: 37).
  False detections a heavy blur can trigger are kept out by where they are, not by their
  probability: a face counts as still found only at the place it was found on the original
  (rule ``"overlap"`` below).
* ``"haar"`` (the second) -- OpenCV's Viola-Jones cascade
  ``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades``
  (``opencv-python-headless`` 4.x), on the grey image (``cv2.COLOR_RGB2GRAY``),
  ``scaleFactor`` 1.1, ``minNeighbors`` 5, smallest face :data:`HAAR_MIN_FACE_PX` pixels.
  It finds frontal faces only and is the weaker of the two.

Images are float tensors in ``[0, 1]``, ``B x 3 x H x W`` or ``3 x H x W`` (grey
``B x 1 x H x W`` is replicated on R, G and B); they are clipped to ``[0, 1]`` and rounded to
8 bits, the input both detectors were built for. Boxes are ``(x0, y0, x1, y1)`` in pixels.

**When is a face "still detected" after a camera** (:func:`detection_rate`):

* rule ``"overlap"`` (the default; right for any photo): every face found on an original
  is a target; it is kept when a detection on the altered image overlaps it with
  intersection over union at least :data:`IOU_THRESHOLD` (0.5, the PASCAL VOC criterion),
  each altered detection keeping at most one face (greedy matching, best overlap first).
  A detection elsewhere -- a blob a heavy blur turned face-like -- does not count.
* rule ``"any"`` (a looser variant for face-centred crops,
  :mod:`privcap.privacy.face_crops`, where the only face is the one in the middle): the
  face of image ``i`` is kept when the detector finds a face on the original *and* at
  least one face on the altered image.

The rate is kept / found on the originals, so faces the detector misses on clean images do
not count for or against a camera.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from privcap.optics.camera import as_rgb_batch

__all__ = [
    "DETECTORS",
    "HAAR_MIN_FACE_PX",
    "IOU_THRESHOLD",
    "MTCNN_MIN_FACE_PX",
    "MTCNN_MIN_PROBABILITY",
    "RULES",
    "box_iou",
    "detect_faces",
    "detection_rate",
    "face_detection_table",
    "to_uint8_hwc",
]

Box = tuple[float, float, float, float]

DETECTORS: tuple[str, ...] = ("mtcnn", "haar")
RULES: tuple[str, ...] = ("any", "overlap")
#: Smallest face probability of an MTCNN detection that counts.
MTCNN_MIN_PROBABILITY = 0.8
#: Smallest face side (pixels) MTCNN looks for (facenet-pytorch's default).
MTCNN_MIN_FACE_PX = 20
#: Smallest face side (pixels) of the Haar cascade.
HAAR_MIN_FACE_PX = 20
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBOURS = 5
#: Intersection over union for a detection on an altered image to match an original face.
IOU_THRESHOLD = 0.5
_BATCH = 32


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """``B x H x W x 3`` uint8 copy of float images in ``[0, 1]`` (clipped, rounded).

    Raises:
        ValueError: not a floating tensor of shape ``B x 3 x H x W`` / ``3 x H x W`` (or grey
            ``B x 1 x H x W``), or non-finite values.
    """
    x = as_rgb_batch(images).detach().cpu().float()
    if not torch.isfinite(x).all():
        raise ValueError("images hold NaN or infinite values")
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@functools.lru_cache(maxsize=1)
def _mtcnn() -> Any:
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device="cpu", min_face_size=MTCNN_MIN_FACE_PX,
                 select_largest=False)


@functools.lru_cache(maxsize=1)
def _haar() -> Any:
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FileNotFoundError(f"OpenCV Haar cascade missing or unreadable: {path}")
    return cascade


def _detect_mtcnn(arrays: np.ndarray, min_probability: float) -> list[list[Box]]:
    if min(arrays.shape[1:3]) < MTCNN_MIN_FACE_PX:  # no face of the smallest size fits
        return [[] for _ in arrays]
    detector = _mtcnn()
    out: list[list[Box]] = []
    for start in range(0, len(arrays), _BATCH):
        batch_boxes, batch_probs = detector.detect(arrays[start : start + _BATCH])
        for boxes, probs in zip(batch_boxes, batch_probs, strict=True):
            if boxes is None:
                out.append([])
                continue
            out.append([tuple(float(v) for v in box[:4])  # type: ignore[misc]
                        for box, p in zip(boxes, probs, strict=True)
                        if p is not None and p >= min_probability])
    return out


def _detect_haar(arrays: np.ndarray) -> list[list[Box]]:
    import cv2

    cascade = _haar()
    out: list[list[Box]] = []
    for array in arrays:
        grey = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(
            grey, scaleFactor=HAAR_SCALE_FACTOR, minNeighbors=HAAR_MIN_NEIGHBOURS,
            minSize=(HAAR_MIN_FACE_PX, HAAR_MIN_FACE_PX),
        )
        out.append([(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in found])
    return out


def detect_faces(images: torch.Tensor, detector: str = "mtcnn", *,
                 min_probability: float = MTCNN_MIN_PROBABILITY) -> list[list[Box]]:
    """Faces found in each image.

    Args:
        images: ``B x 3 x H x W`` (or ``3 x H x W``) float in ``[0, 1]``.
        detector: ``"mtcnn"`` or ``"haar"`` (see the module docstring).
        min_probability: MTCNN only: smallest face probability that counts.

    Returns:
        One list per image of boxes ``(x0, y0, x1, y1)`` in pixels (MTCNN: most probable
        first). Images smaller than the detector's smallest face hold none.
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must lie in [0, 1], got {min_probability!r}")
    arrays = to_uint8_hwc(images)
    if detector == "mtcnn":
        return _detect_mtcnn(arrays, min_probability)
    return _detect_haar(arrays)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _kept(original: list[list[Box]], altered: list[list[Box]], rule: str,
          iou_threshold: float) -> tuple[int, int]:
    """(faces found on the originals, of which kept on the altered images)."""
    if rule == "any":
        targets = sum(1 for boxes in original if boxes)
        kept = sum(1 for o, a in zip(original, altered, strict=True) if o and a)
        return targets, kept
    targets = sum(len(boxes) for boxes in original)
    kept = 0
    for o_boxes, a_boxes in zip(original, altered, strict=True):
        # each altered detection may match one original face (greedy, best overlap first)
        pairs = sorted(((box_iou(o, a), i, j) for i, o in enumerate(o_boxes)
                        for j, a in enumerate(a_boxes)), reverse=True)
        used_o: set[int] = set()
        used_a: set[int] = set()
        for iou, i, j in pairs:
            if iou < iou_threshold:
                break
            if i not in used_o and j not in used_a:
                used_o.add(i)
                used_a.add(j)
        kept += len(used_o)
    return targets, kept


def detection_rate(original: torch.Tensor | list[list[Box]],
                   altered: torch.Tensor | list[list[Box]], detector: str = "mtcnn", *,
                   rule: str = "overlap", iou_threshold: float = IOU_THRESHOLD) -> dict[str, Any]:
    """How many of the faces found on ``original`` are still found on ``altered``.

    Args:
        original: clean images ``B x 3 x H x W`` in ``[0, 1]`` or their detections (the
            output of :func:`detect_faces`, to avoid detecting twice).
        altered: the same scenes seen through a camera / attack (same ``B``), or their
            detections.
        detector: ``"mtcnn"`` or ``"haar"``.
        rule: ``"any"`` or ``"overlap"`` (see the module docstring).
        iou_threshold: rule ``"overlap"``: smallest IoU of a match.

    Returns:
        ``{"detector", "rule", "num_images", "found_original", "found_altered", "kept",
        "rate"}``: ``found_*`` count images with a face (rule "any") or detections (rule
        "overlap"); ``rate = kept / found_original`` (None when nothing was found on the
        originals).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold!r}")
    o = detect_faces(original, detector) if isinstance(original, torch.Tensor) else original
    a = detect_faces(altered, detector) if isinstance(altered, torch.Tensor) else altered
    if len(o) != len(a):
        raise ValueError(f"original and altered hold {len(o)} and {len(a)} images; they must "
                         "be the same scenes")
    targets, kept = _kept(o, a, rule, iou_threshold)
    found_altered = (sum(1 for boxes in a if boxes) if rule == "any"
                     else sum(len(boxes) for boxes in a))
    return {"detector": detector, "rule": rule, "num_images": len(o),
            "found_original": targets, "found_altered": found_altered, "kept": kept,
            "rate": kept / targets if targets else None}


@torch.no_grad()
def _through(camera: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    out = [camera(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    seen = torch.cat(out)
    if seen.shape != images.shape:
        raise ValueError(f"camera {type(camera).__name__} changed the image shape "
                         f"{tuple(images.shape)} -> {tuple(seen.shape)}")
    return seen


def face_detection_table(images: torch.Tensor, cameras: Mapping[str, nn.Module], *,
                         detectors: Sequence[str] = DETECTORS, rule: str = "overlap",
                         names: Sequence[str] | None = None) -> dict[str, Any]:
    """Faces each detector finds on the originals and through each camera.

    Args:
        images: ``B x 3 x H x W`` in ``[0, 1]`` (face crops or photos), at least the
            cameras' PSF size (128 px for the ``quick`` optics).
        cameras: ``{name: camera}``, e.g. ``privcap.optics.comparison_cameras(config)``;
            each maps a batch to a batch of the same shape; run without gradients, in the
            mode it is in (``comparison_cameras`` returns them in evaluation mode).
        detectors: subset of :data:`DETECTORS`.
        rule: matching rule of :func:`detection_rate`.
        names: optional name of every image, stored in the table (the ``per_image`` lists
            follow the same order).

    Returns:
        JSON-serialisable ``{"num_images", "rule", "iou_threshold", "mtcnn_min_probability",
        "names", "detectors": {detector: {"original":
        {"found", "per_image"}, "cameras": {camera: {"found_altered", "kept", "rate",
        "per_image"}}}}}``; ``per_image`` lists the number of detections per image.
    """
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, got {detectors}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    x = as_rgb_batch(images)
    if names is not None and len(names) != len(x):
        raise ValueError(f"{len(names)} names for {len(x)} images")
    seen = {name: _through(camera, x) for name, camera in cameras.items()}
    table: dict[str, Any] = {"num_images": len(x), "rule": rule,
                             "iou_threshold": IOU_THRESHOLD,
                             "mtcnn_min_probability": MTCNN_MIN_PROBABILITY,
                             "names": list(names) if names is not None else None,
                             "detectors": {}}
    for detector in detectors:
        original = detect_faces(x, detector)
        found, _ = _kept(original, original, rule, IOU_THRESHOLD)
        entry: dict[str, Any] = {"original": {"found": found,
                                              "per_image": [len(b) for b in original]},
                                 "cameras": {}}
        for name, altered_images in seen.items():
            altered = detect_faces(altered_images, detector)
            result = detection_rate(original, altered, detector, rule=rule)
            entry["cameras"][name] = {"found_altered": result["found_altered"],
                                      "kept": result["kept"], "rate": result["rate"],
                                      "per_image": [len(b) for b in altered]}
        table["detectors"][detector] = entry
    return table
