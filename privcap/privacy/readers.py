"""Hidden-detail readers: the strongest of several attackers that read the synthetic tag.

The synthetic scenes (:mod:`privcap.data.synthetic`) carry a handwritten digit on a small
plate that captions never mention. How much of it survives a camera is measured by an
*adaptive* attacker: one who owns the camera, collects labelled images through it and
trains a reader on them. Several readers are trained and the best one is reported, so that
a camera is not credited with privacy that only a weak reader failed to break:

* ``"cnn"`` -- the small CNN of :mod:`privcap.attacks.tag_reader` (``TagReaderCNN``, mode
  ``"crop"``), trained from scratch (12 epochs, AdamW, learning rate 3e-3).
* ``"mobilenet_v2"`` -- torchvision's MobileNetV2 with its ImageNet weights (offline,
  :func:`privcap.captioning.weights.load_mobilenet_v2_state_dict`), cut after block 6
  (stride 8, 32 channels; the deeper blocks only see a tiny crop as a 1 x 1 map and make
  training several times slower), fed the crop upsampled to :data:`MOBILENET_INPUT_PX`
  pixels and fine-tuned end to end with a new head (2 x 2 average pooling, dropout 0.2,
  linear; 6 epochs, AdamW, learning rate 2e-3).

Both read the same crop: the tag box grown by :data:`CONTEXT_FRACTION` of its side on each
side (a camera's blur spreads the digit beyond its plate), resampled to
:data:`CROP_PX` pixels (20: native at 128-pixel scenes, where the plate is 12 pixels) and
standardised per crop (plate tint and ink contrast removed). Training shifts the crop by up
to :data:`JITTER_PX` pixels (random translation); evaluation uses the centred crop. Both
use a one-cycle learning-rate schedule and batches of 64, seeded (the global random state
is left untouched). Cost with one CPU thread, 1,500 scenes at 128 px: about 6 s of CPU time
for the CNN and 15 s for MobileNetV2.

Reported per reader and for the best one (highest test accuracy -- the attacker's best
case, an upper bound on what either reader alone would claim):

* ``accuracy`` on held-out scenes whose tags use digit scans never seen in training;
* ``chance`` = 1 / 10 and ``majority`` = accuracy of always answering the most frequent
  test label;
* ``entropy_bits``: entropy of the distribution of predicted labels. A reader that answers
  one class for everything (0 bits) is no attacker even if its accuracy matches a skewed
  label distribution; ``log2(10)`` = 3.32 bits is the maximum;
* ``mutual_information_bits``: plug-in estimate of ``I(label; prediction)`` from the
  confusion matrix (what the reader learns about the tag; biased upwards by about
  ``81 / (2 N ln 2)`` bits for ``N`` test scenes, 0.15 bits at ``N = 400``);
* ``confusion[true][predicted]`` counts.

Competence, measured with 1,500 training and 500 held-out scenes at 128 px (one thread;
CNN / MobileNetV2 test accuracy): clean images 94.8 % / 96.2 %; Gaussian blur of 1.5 px
80.0 % / 88.8 %; the low-resolution camera (area downsampling by 16 per side, an 8 x 8
sensor) 10.4 % / 12.2 %, no better than always answering the most frequent test digit
(12.2 %), with 0.13 bits of mutual information, the size of the estimator's bias.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from privcap.attacks.tag_reader import NUM_CLASSES, TagReaderCNN
from privcap.privacy.face_crops import crop_square

__all__ = [
    "CONTEXT_FRACTION",
    "CROP_PX",
    "JITTER_PX",
    "MOBILENET_INPUT_PX",
    "READERS",
    "best_reader_accuracy",
    "camera_reader_accuracy",
    "confusion_matrix",
    "mutual_information_bits",
    "prediction_entropy_bits",
    "render_through",
    "tag_crops",
]

READERS: tuple[str, ...] = ("cnn", "mobilenet_v2")
#: Context around the tag box on each side, as a fraction of the box side.
CONTEXT_FRACTION = 1.0 / 3.0
#: Side of the reader's crop in pixels (without the jitter border).
CROP_PX = 20
#: Largest random shift of the crop during training (pixels of the crop).
JITTER_PX = 2
#: Side the MobileNetV2 reader upsamples the crop to.
MOBILENET_INPUT_PX = 32
#: MobileNetV2 feature blocks kept (``features[:MOBILENET_BLOCKS]``: stride 8, 32 channels).
MOBILENET_BLOCKS = 7
#: Default training of each reader: epochs and peak learning rate.
READER_TRAINING: dict[str, dict[str, float]] = {
    "cnn": {"epochs": 12, "lr": 3e-3},
    "mobilenet_v2": {"epochs": 6, "lr": 2e-3},
}
_BATCH = 64


# --------------------------------------------------------------------------- scores


def _check_labels(x: torch.Tensor | Sequence[int], name: str, num_classes: int) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 1 or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be a 1-D integer tensor, got dtype {t.dtype}, "
                         f"shape {tuple(t.shape)}")
    if len(t) and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t.long()


def prediction_entropy_bits(predicted: torch.Tensor | Sequence[int],
                            num_classes: int = NUM_CLASSES) -> float:
    """Entropy (bits) of the distribution of predicted labels: 0 for a constant predictor,
    ``log2(num_classes)`` when every class is predicted equally often."""
    p = _check_labels(predicted, "predicted", num_classes)
    if len(p) == 0:
        raise ValueError("predicted is empty")
    freq = torch.bincount(p, minlength=num_classes).double() / len(p)
    nz = freq[freq > 0]
    return float(-(nz * nz.log2()).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def confusion_matrix(labels: torch.Tensor | Sequence[int], predicted: torch.Tensor | Sequence[int],
                     num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """``num_classes x num_classes`` counts, ``[true, predicted]``."""
    t = _check_labels(labels, "labels", num_classes)
    p = _check_labels(predicted, "predicted", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"{len(t)} labels but {len(p)} predictions")
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(
        num_classes, num_classes)


def mutual_information_bits(confusion: torch.Tensor) -> float:
    """Plug-in estimate of ``I(true; predicted)`` in bits from a confusion matrix of counts."""
    c = torch.as_tensor(confusion, dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or (c < 0).any() or c.sum() <= 0:
        raise ValueError(f"confusion must be a square matrix of non-negative counts, got "
                         f"shape {tuple(c.shape)}")
    joint = c / c.sum()
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    mask = joint > 0
    return max(0.0, float((joint[mask] * (joint[mask] / outer[mask]).log2()).sum()))


# --------------------------------------------------------------------------- inputs


def tag_crops(images: torch.Tensor, boxes: torch.Tensor, *, jitter_px: int = JITTER_PX,
              crop_px: int = CROP_PX, context_fraction: float = CONTEXT_FRACTION
              ) -> torch.Tensor:
    """The readers' crops ``N x 3 x (crop_px + 2 jitter_px)^2`` around the tag boxes.

    Args:
        images: ``N x 3 x H x W`` in ``[0, 1]`` (what the camera delivered).
        boxes: ``N x 4`` tag boxes ``(x0, y0, x1, y1)`` in pixels of ``images``
            (``x1``/``y1`` exclusive, as ``SyntheticScenes`` gives them).
        jitter_px: border added on each side for random shifts (pixels of the crop).
        crop_px: side of the centred crop.
        context_fraction: context around the box, as a fraction of its side.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x H x W, got {getattr(images, 'shape', None)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
    boxes = torch.as_tensor(boxes)
    if boxes.shape != (len(images), 4):
        raise ValueError(f"boxes must be {len(images)} x 4, got {tuple(boxes.shape)}")
    if crop_px < 4 or jitter_px < 0 or context_fraction < 0:
        raise ValueError(f"need crop_px >= 4, jitter_px >= 0, context_fraction >= 0; got "
                         f"{crop_px}, {jitter_px}, {context_fraction}")
    height, width = images.shape[-2:]
    out_px = crop_px + 2 * jitter_px
    crops = []
    for image, box in zip(images, boxes.tolist(), strict=True):
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0)
        if side <= 0 or x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ValueError(f"tag box {tuple(box)} is empty or outside the {width} x "
                             f"{height} image")
        window = side * (1.0 + 2.0 * context_fraction)
        grown = window * out_px / crop_px  # the jitter border, in image pixels
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        crops.append(crop_square(image, (cx - grown / 2, cy - grown / 2, cx + grown / 2,
                                         cy + grown / 2), out_px))
    return torch.stack(crops)


@torch.no_grad()
def render_through(dataset: Dataset, camera: Callable[[torch.Tensor], torch.Tensor] | None,
                   batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render a tag data set through ``camera``: ``(images N x 3 x H x W, labels N, boxes N x 4)``.

    Args:
        dataset: items with ``image``, ``tag_label`` and ``tag_box`` (``SyntheticScenes``).
        camera: maps an image batch to a batch of the same shape (None: clean images).
        batch_size: scenes per camera call.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("dataset is empty")
    images, labels, boxes = [], [], []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        try:
            batch = torch.stack([it["image"] for it in items]).float()
            labels.append(torch.tensor([int(it["tag_label"]) for it in items]))
            boxes.append(torch.tensor([[int(v) for v in it["tag_box"]] for it in items]))
        except KeyError as exc:
            raise ValueError(f"dataset items need {exc.args[0]!r}; a tag data set is "
                             "needed") from exc
        seen = camera(batch) if camera is not None else batch
        if seen.shape != batch.shape:
            raise ValueError(f"camera must keep the image shape, got {tuple(batch.shape)} -> "
                             f"{tuple(seen.shape)}")
        images.append(seen.detach().float())
    return torch.cat(images), torch.cat(labels), torch.cat(boxes)


# --------------------------------------------------------------------------- readers


class _Standardize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 1e-3)


class MobileNetTagReader(nn.Module):
    """ImageNet MobileNetV2 blocks ``features[:7]`` + a small head, for tag crops."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        import torchvision

        backbone = torchvision.models.mobilenet_v2()
        if pretrained:
            from privcap.captioning.weights import load_mobilenet_v2_state_dict

            backbone.load_state_dict(load_mobilenet_v2_state_dict())
        self.standardize = _Standardize()
        self.features = backbone.features[:MOBILENET_BLOCKS]
        channels = 32  # output of block 6
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(4 * channels, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.standardize(x), size=(MOBILENET_INPUT_PX, MOBILENET_INPUT_PX),
                          mode="bilinear", align_corners=False)
        return self.head(self.features(x))


def _build(reader: str) -> nn.Module:
    if reader == "cnn":
        return TagReaderCNN("crop")
    return MobileNetTagReader(pretrained=True)


def _fit(model: nn.Module, crops: torch.Tensor, labels: torch.Tensor, *, epochs: int,
         lr: float, seed: int, jitter_px: int) -> float:
    """Train ``model`` in place; returns the training accuracy of the last epoch."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(crops) / _BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                                   pct_start=0.15)
    side = crops.shape[-1] - 2 * jitter_px
    correct = seen = 0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(crops), generator=generator)
        correct = seen = 0
        for start in range(0, len(crops), _BATCH):
            idx = order[start : start + _BATCH]
            dx, dy = torch.randint(0, 2 * jitter_px + 1, (2,), generator=generator).tolist()
            if len(idx) >= 2:  # BatchNorm needs two samples
                logits = model(crops[idx, :, dy : dy + side, dx : dx + side])
                loss = F.cross_entropy(logits, labels[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                correct += int((logits.argmax(1) == labels[idx]).sum())
                seen += len(idx)
            schedule.step()
    model.eval()
    return correct / max(seen, 1)


@torch.no_grad()
def _predict(model: nn.Module, crops: torch.Tensor, jitter_px: int) -> torch.Tensor:
    side = crops.shape[-1] - 2 * jitter_px
    centred = crops[:, :, jitter_px : jitter_px + side, jitter_px : jitter_px + side]
    return torch.cat([model(centred[i : i + 256]).argmax(1) for i in range(0, len(crops), 256)])


def _scores(labels: torch.Tensor, predicted: torch.Tensor) -> dict[str, Any]:
    confusion = confusion_matrix(labels, predicted)
    return {
        "accuracy": float((predicted == labels).double().mean()),
        "entropy_bits": prediction_entropy_bits(predicted),
        "mutual_information_bits": mutual_information_bits(confusion),
        "confusion": confusion.tolist(),
    }


def best_reader_accuracy(train_images: torch.Tensor, train_labels: torch.Tensor,
                         test_images: torch.Tensor, test_labels: torch.Tensor,
                         boxes: tuple[torch.Tensor, torch.Tensor], *,
                         readers: Sequence[str] = READERS, seed: int = 0,
                         training: Mapping[str, Mapping[str, float]] | None = None
                         ) -> dict[str, Any]:
    """Train every reader on the camera's training images; report the best on the test images.

    Args:
        train_images: ``N x 3 x H x W`` in ``[0, 1]``, scenes as the camera delivered them
            (the adaptive attacker owns the camera).
        train_labels: ``N`` digits 0-9.
        test_images: ``M x 3 x H x W`` held-out scenes through the same camera.
        test_labels: ``M`` digits.
        boxes: ``(train_boxes N x 4, test_boxes M x 4)``, tag boxes in pixels of the images.
        readers: subset of :data:`READERS`.
        seed: seeds every reader's initialisation, shuffling and shifts.
        training: per reader ``{"epochs": int, "lr": float}`` overriding
            :data:`READER_TRAINING` (e.g. fewer epochs for a smoke test).

    Returns:
        JSON-serialisable ``{"accuracy", "reader", "chance", "majority", "entropy_bits",
        "mutual_information_bits", "confusion", "num_train", "num_test", "per_reader":
        {name: {"accuracy", "entropy_bits", "mutual_information_bits", "confusion",
        "train_accuracy", "train_cpu_seconds", "train_seconds"}}}``; the top-level scores
        are those of ``reader``, the most accurate one (first listed on a tie).
    """
    unknown = [r for r in readers if r not in READERS]
    if unknown or not readers:
        raise ValueError(f"readers must be a non-empty subset of {READERS}, got {readers!r}")
    if not (isinstance(boxes, (tuple, list)) and len(boxes) == 2):
        raise ValueError("boxes must be the pair (train_boxes, test_boxes)")
    y_train = _check_labels(train_labels, "train_labels", NUM_CLASSES)
    y_test = _check_labels(test_labels, "test_labels", NUM_CLASSES)
    if len(y_train) != len(train_images) or len(y_test) != len(test_images):
        raise ValueError(f"{len(train_images)} / {len(test_images)} train / test images but "
                         f"{len(y_train)} / {len(y_test)} labels")
    if len(y_train) < 2 or len(y_test) < 1:
        raise ValueError("need at least two training images and one test image")
    settings = {name: dict(READER_TRAINING[name]) for name in readers}
    for name, override in (training or {}).items():
        if name not in settings:
            raise ValueError(f"training given for unknown or unused reader {name!r}")
        settings[name].update(override)
    x_train = tag_crops(train_images, boxes[0])
    x_test = tag_crops(test_images, boxes[1])
    per_reader: dict[str, dict[str, Any]] = {}
    for name in readers:
        epochs, lr = int(settings[name]["epochs"]), float(settings[name]["lr"])
        if epochs < 1 or not lr > 0:
            raise ValueError(f"reader {name}: epochs and lr must be positive, got {epochs}, {lr}")
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build(name)
            train_accuracy = _fit(model, x_train, y_train, epochs=epochs, lr=lr, seed=seed,
                                  jitter_px=JITTER_PX)
        result = _scores(y_test, _predict(model, x_test, JITTER_PX))
        result.update(train_accuracy=train_accuracy,
                      train_seconds=time.perf_counter() - start_wall,
                      train_cpu_seconds=time.process_time() - start_cpu)
        per_reader[name] = result
    best = max(readers, key=lambda r: per_reader[r]["accuracy"])  # first on a tie
    counts = torch.bincount(y_test, minlength=NUM_CLASSES)
    return {
        "reader": best,
        "accuracy": per_reader[best]["accuracy"],
        "chance": 1.0 / NUM_CLASSES,
        "majority": float(counts.max()) / len(y_test),
        "entropy_bits": per_reader[best]["entropy_bits"],
        "mutual_information_bits": per_reader[best]["mutual_information_bits"],
        "confusion": per_reader[best]["confusion"],
        "num_train": len(y_train),
        "num_test": len(y_test),
        "per_reader": per_reader,
    }


def camera_reader_accuracy(camera: Callable[[torch.Tensor], torch.Tensor] | None,
                           train_dataset: Dataset, test_dataset: Dataset,
                           **kwargs: Any) -> dict[str, Any]:
    """:func:`best_reader_accuracy` for scenes rendered through ``camera`` (None: clean).

    ``kwargs`` go to :func:`best_reader_accuracy`. Torch modules are run as they are (put a
    camera in evaluation mode first to leave its read noise out).
    """
    train_images, train_labels, train_boxes = render_through(train_dataset, camera)
    test_images, test_labels, test_boxes = render_through(test_dataset, camera)
    return best_reader_accuracy(train_images, train_labels, test_images, test_labels,
                                (train_boxes, test_boxes), **kwargs)
