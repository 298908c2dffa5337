"""Face re-identification: can an attacker tell *who* is in a camera's image?

A face that no detector finds may still be recognised. The attacker here holds a gallery of
clean face photos (the originals) and matches each probe -- the same face seen through a
camera or an attack -- to its nearest gallery face; the probe is re-identified when the
nearest face is its own.

Embedding: dlib's face recognition network (a ResNet with 29 convolution layers trained with
a metric loss; 99.38 % on LFW; ``dlib_face_recognition_resnet_model_v1.dat``) maps an aligned
150 x 150 face chip to a 128-d vector; two photos of one person lie closer than 0.6 in
Euclidean distance. The chip is aligned with dlib's 5-point landmark model
(``shape_predictor_5_face_landmarks.dat``), which needs a face rectangle like the one dlib's
detector draws. The inputs are face-centred crops (:mod:`privcap.privacy.face_crops`), so
the rectangle is known without any detector, and a face that detectors lose is still
embedded -- the attacker is not limited by detection. Two rectangles are offered:

* ``"face"`` (default): the square of one head width (``1 / CROP_SIDE_PER_HEAD_WIDTH`` of
  the crop side), centred horizontally, its centre :data:`FACE_BOX_CENTRE_Y` (0.56) of the
  crop height down (the crop is centred on the eyes and nose, a detector's box on the
  whole face, chin included). This matches the boxes of dlib's own HOG detector on the
  crops where it fires (sides 0.5-0.7 of the crop, centres 0.53-0.66 down).
* ``"full"``: the whole crop. With face-filling crops (the face about two thirds of the
  frame) the predictor then puts the eyes about 15 pixels too high at 128 px; the two
  bundled portraits (two different women) come out 0.50 apart, inside dlib's same-person
  threshold of 0.6, against 0.68 with ``"face"``. Kept for comparison only.

Both model files ship in the ``face-recognition-models`` wheel and are used through ``dlib``
(``dlib-bin``); the package directory is found with ``importlib.util.find_spec`` without
importing it (its import pulls the deprecated ``pkg_resources`` and warns).

Score: top-1 accuracy over the probes, Euclidean distance, against a gallery in which probe
``i``'s identity is gallery entry ``i`` (or given ``identities``); chance is
``1 / gallery size``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privcap.privacy.face_crops import CROP_SIDE_PER_HEAD_WIDTH
from privcap.privacy.faces import to_uint8_hwc

__all__ = [
    "EMBEDDING_DIM",
    "FACE_BOX_CENTRE_Y",
    "RECTANGLES",
    "RECOGNITION_MODEL_FILE",
    "SHAPE_MODEL_FILE",
    "dlib_model_paths",
    "face_embeddings",
    "reidentification_accuracy",
    "top1_reidentification",
]

RECOGNITION_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL_FILE = "shape_predictor_5_face_landmarks.dat"
EMBEDDING_DIM = 128
RECTANGLES: tuple[str, ...] = ("face", "full")
#: Vertical centre of the ``"face"`` rectangle, as a fraction of the crop height.
FACE_BOX_CENTRE_Y = 0.56
_PACKAGE = "face_recognition_models"


def dlib_model_paths() -> dict[str, Path]:
    """``{"recognition": path, "shape": path}`` of the dlib model files (not importing the
    ``face_recognition_models`` package)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "dlib face models need the package 'face-recognition-models' "
            "(pip install face-recognition-models), which is not installed"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    paths = {"recognition": folder / RECOGNITION_MODEL_FILE, "shape": folder / SHAPE_MODEL_FILE}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"dlib model file missing from the installed face-recognition-models: {path}; "
                "reinstall it with pip install --force-reinstall face-recognition-models"
            )
    return paths


@functools.lru_cache(maxsize=1)
def _models() -> tuple[Any, Any]:
    import dlib

    paths = dlib_model_paths()
    return dlib.shape_predictor(str(paths["shape"])), \
        dlib.face_recognition_model_v1(str(paths["recognition"]))


def _rectangle(height: int, width: int, rectangle: str) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` (inclusive, dlib's convention) of the face in a crop."""
    if rectangle == "full":
        return 0, 0, width - 1, height - 1
    side = min(height, width) / CROP_SIDE_PER_HEAD_WIDTH
    left = round(0.5 * width - 0.5 * side)
    top = round(FACE_BOX_CENTRE_Y * height - 0.5 * side)
    return left, top, left + round(side) - 1, top + round(side) - 1


def face_embeddings(images: torch.Tensor, rectangle: str = "face") -> torch.Tensor:
    """128-d dlib face descriptors of face-centred crops.

    Args:
        images: ``B x 3 x H x W`` (or ``3 x H x W``) float in ``[0, 1]``, each a face crop
            (clipped and rounded to 8 bits, the network's input).
        rectangle: where the 5-point aligner looks: ``"face"`` or ``"full"`` (see the
            module docstring).

    Returns:
        ``B x 128`` float64 embeddings.
    """
    import dlib

    if rectangle not in RECTANGLES:
        raise ValueError(f"rectangle must be one of {RECTANGLES}, got {rectangle!r}")
    arrays = to_uint8_hwc(images)
    if min(arrays.shape[1:3]) < 8:
        raise ValueError(f"face crops must be at least 8 x 8 pixels, got {arrays.shape[1:3]}")
    shape_model, recognition = _models()
    box = dlib.rectangle(*_rectangle(arrays.shape[1], arrays.shape[2], rectangle))
    out = np.empty((len(arrays), EMBEDDING_DIM), dtype=np.float64)
    for i, array in enumerate(arrays):
        array = np.ascontiguousarray(array)
        landmarks = shape_model(array, box)
        out[i] = np.asarray(recognition.compute_face_descriptor(array, landmarks))
    return torch.from_numpy(out)


def _check_embeddings(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty N x D tensor of embeddings, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite floating-point values")
    return x.double()


def top1_reidentification(probes: torch.Tensor, gallery: torch.Tensor,
                          identities: Sequence[int] | torch.Tensor | None = None
                          ) -> dict[str, Any]:
    """Top-1 re-identification of ``probes`` against ``gallery`` (Euclidean distance).

    Args:
        probes: ``P x D`` embeddings of the altered faces.
        gallery: ``G x D`` embeddings of the original faces.
        identities: for each probe, the index of its gallery entry (default: ``range(P)``,
            which needs ``P == G``).

    Returns:
        ``{"top1_accuracy", "chance", "num_probes", "gallery_size", "predicted",
        "true_distance_mean", "nearest_distance_mean"}`` (``chance = 1 / G``; ``predicted``
        the nearest gallery index of every probe; distances averaged over probes).
    """
    p = _check_embeddings(probes, "probes")
    g = _check_embeddings(gallery, "gallery")
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"probes have {p.shape[1]} dimensions, the gallery {g.shape[1]}")
    if identities is None:
        if len(p) != len(g):
            raise ValueError(f"{len(p)} probes and {len(g)} gallery faces: give identities")
        truth = torch.arange(len(p))
    else:
        truth = torch.as_tensor(identities, dtype=torch.long)
        if truth.shape != (len(p),) or truth.min() < 0 or truth.max() >= len(g):
            raise ValueError(f"identities must be {len(p)} gallery indices in [0, {len(g)})")
    distances = torch.cdist(p, g)
    predicted = distances.argmin(dim=1)
    return {
        "top1_accuracy": float((predicted == truth).double().mean()),
        "chance": 1.0 / len(g),
        "num_probes": len(p),
        "gallery_size": len(g),
        "predicted": predicted.tolist(),
        "true_distance_mean": float(distances[torch.arange(len(p)), truth].mean()),
        "nearest_distance_mean": float(distances.min(dim=1).values.mean()),
    }


def reidentification_accuracy(originals: torch.Tensor, altered: torch.Tensor,
                              gallery_embeddings: torch.Tensor | None = None, *,
                              rectangle: str = "face") -> dict[str, Any]:
    """Top-1 re-identification of ``altered[i]`` among ``originals`` (see the module docstring).

    Args:
        originals: ``N x 3 x H x W`` clean face crops in ``[0, 1]`` (the gallery).
        altered: the same ``N`` faces through a camera / attack (the probes), same order.
        gallery_embeddings: :func:`face_embeddings` of ``originals`` when already computed
            (with the same ``rectangle``).
        rectangle: see :func:`face_embeddings`.

    Returns:
        The dict of :func:`top1_reidentification`.
    """
    if len(originals) != len(altered):
        raise ValueError(f"{len(originals)} originals and {len(altered)} altered faces; they "
                         "must be the same faces in the same order")
    gallery = (face_embeddings(originals, rectangle) if gallery_embeddings is None
               else gallery_embeddings)
    return top1_reidentification(face_embeddings(altered, rectangle), gallery)
