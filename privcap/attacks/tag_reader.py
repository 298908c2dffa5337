"""A privacy attacker that reads the handwritten-digit tag of the synthetic scenes.

The synthetic scenes (:mod:`privcap.data.synthetic`) carry a sensitive detail -- a digit on
a small plate -- that captions never mention. The attacker here is a small CNN trained with
labels to read that digit from the images a camera delivers. Its accuracy on held-out
scenes (tags drawn from digit samples it never saw) measures how much of the sensitive
detail survives the camera: about 10 % is chance, the clean images give >= 90 %.

Two reading modes:

* ``"crop"`` (default, the strong attacker): the attacker knows where the tag is
  (``tag_box``) and reads the ``crop_size x crop_size`` resampled crop there. This is an
  upper bound on what a localising attacker can do.
* ``"image"``: the whole image, no location given (must find the tag itself; slower to
  train, weaker).

The camera is a callable ``degrade(images) -> images`` applied to batches ``B x 3 x H x W``
in ``[0, 1]`` before reading (for instance a lens + sensor model, or area downsampling to a
low-resolution sensor and back). If it changes the image size, the tag boxes are scaled by
the same factors. Train the reader on degraded images to model an attacker who owns the
camera (the adaptive attacker); train on clean images and evaluate on degraded ones to
model an off-the-shelf reader.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

#: number of digit classes
NUM_CLASSES = 10
MODES: tuple[str, ...] = ("crop", "image")

Degrade = Callable[[torch.Tensor], torch.Tensor]


class _Standardize(nn.Module):
    """Per-sample standardisation of the input (removes plate / ink colour and contrast)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 1e-3)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class TagReaderCNN(nn.Module):
    """Small CNN classifying a tag crop (``"crop"``) or a whole image (``"image"``).

    Args:
        mode: "crop" (input ``3 x crop_size x crop_size``) or "image" (any size).
        width: channels of the first block (doubled once).
    """

    def __init__(self, mode: str = "crop", width: int = 16) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        w = width
        if mode == "crop":
            self.features = nn.Sequential(
                _Standardize(), _block(3, w), nn.MaxPool2d(2),
                _block(w, 2 * w), _block(2 * w, 2 * w), nn.AdaptiveAvgPool2d(4),
            )
            self.head = nn.Sequential(
                nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * w * 16, 128), nn.ReLU(inplace=True),
                nn.Linear(128, NUM_CLASSES),
            )
        else:
            self.features = nn.Sequential(
                _Standardize(), _block(3, w), nn.MaxPool2d(2), _block(w, 2 * w), nn.MaxPool2d(2),
                _block(2 * w, 2 * w), _block(2 * w, 4 * w), nn.AdaptiveMaxPool2d(1),
            )
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``B x 10``."""
        return self.head(self.features(x))


def crop_tags(images: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Cut the tag boxes out of ``images`` and resample them to ``crop_size`` squares.

    Args:
        images: ``B x 3 x H x W``.
        boxes: ``B x 4`` integer pixel boxes ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive.
        crop_size: output side in pixels.
    """
    if images.ndim != 4 or boxes.shape != (images.shape[0], 4):
        raise ValueError(
            f"images must be Bx3xHxW and boxes Bx4, got {tuple(images.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    crops = []
    height, width = images.shape[-2:]
    for img, (x0, y0, x1, y1) in zip(images, boxes.tolist(), strict=True):
        x0, y0 = max(0, int(x0)), max(0, int(y0))
        x1, y1 = min(width, int(x1)), min(height, int(y1))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty tag box {(x0, y0, x1, y1)} in an image of {width}x{height}")
        patch = img[:, y0:y1, x0:x1].unsqueeze(0)
        if patch.shape[-2:] != (crop_size, crop_size):
            patch = F.interpolate(patch, size=(crop_size, crop_size), mode="bilinear",
                                  align_corners=False, antialias=True)
        crops.append(patch[0])
    return torch.stack(crops)


def _scale_boxes(boxes: torch.Tensor, before: Sequence[int], after: Sequence[int]) -> torch.Tensor:
    if tuple(before) == tuple(after):
        return boxes
    sy, sx = after[0] / before[0], after[1] / before[1]
    scaled = boxes.double() * torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
    out = torch.stack([scaled[:, 0].floor(), scaled[:, 1].floor(),
                       scaled[:, 2].ceil(), scaled[:, 3].ceil()], dim=1)
    return out.long()


def _item_box(item: dict[str, Any], index: int) -> list[int]:
    try:
        box = [int(v) for v in item["tag_box"]]
        label = int(item["tag_label"])
    except KeyError as exc:
        raise ValueError(f"item {index} has no {exc.args[0]!r}; a tag data set is needed") from exc
    if len(box) != 4 or not 0 <= label < NUM_CLASSES:
        raise ValueError(f"item {index}: bad tag_box {item['tag_box']!r} or label {label!r}")
    return box


def prepare_inputs(dataset: Dataset, *, degrade: Degrade | None = None, mode: str = "crop",
                   crop_size: int = 16, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``dataset``, pass it through ``degrade`` and return the reader's inputs.

    Returns:
        ``(inputs, labels)``: crops ``N x 3 x crop_size x crop_size`` (mode "crop") or
        whole images ``N x 3 x H x W`` (mode "image"), float32; labels ``N`` int64.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("dataset is empty: nothing to read")
    inputs, labels = [], []
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        images = torch.stack([it["image"] for it in items]).float()
        boxes = torch.tensor([_item_box(it, start + k) for k, it in enumerate(items)])
        labels.append(torch.tensor([int(it["tag_label"]) for it in items]))
        with torch.no_grad():
            seen = degrade(images) if degrade is not None else images
        if seen.ndim != 4 or seen.shape[:2] != images.shape[:2]:
            raise ValueError(
                f"degrade must map Bx3xHxW to Bx3xH'xW', got {tuple(images.shape)} -> "
                f"{tuple(seen.shape)}"
            )
        boxes = _scale_boxes(boxes, images.shape[-2:], seen.shape[-2:])
        inputs.append(crop_tags(seen, boxes, crop_size) if mode == "crop" else seen.detach())
    return torch.cat(inputs).float(), torch.cat(labels).long()


@dataclass
class TagReader:
    """A trained tag reader: the network, its input mode and its training history."""

    model: TagReaderCNN
    mode: str
    crop_size: int
    history: list[dict[str, float]] = field(default_factory=list)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Predicted digits ``N`` for prepared inputs (see :func:`prepare_inputs`)."""
        self.model.eval()
        out = [self.model(inputs[i : i + batch_size]).argmax(1)
               for i in range(0, len(inputs), batch_size)]
        return torch.cat(out)


def train_tag_reader(dataset: Dataset, *, degrade: Degrade | None = None, mode: str = "crop",
                     crop_size: int = 16, epochs: int = 12, batch_size: int = 64,
                     lr: float = 3e-3, weight_decay: float = 1e-4, width: int = 16,
                     seed: int = 0) -> TagReader:
    """Train a :class:`TagReaderCNN` to read the tags of ``dataset`` as seen through ``degrade``.

    Args:
        dataset: map-style data set whose items have ``image``, ``tag_label`` and
            ``tag_box`` (e.g. ``SyntheticScenes(..., split="train")``).
        degrade: camera applied to image batches before reading (None: clean images).
        mode: "crop" (read at ``tag_box``) or "image" (whole image).
        crop_size: side of the resampled crops (mode "crop").
        epochs: passes over the data (Adam, cosine-decayed learning rate ``lr``).
        batch_size: mini-batch size.
        lr: initial learning rate.
        weight_decay: Adam weight decay.
        width: channels of the CNN's first block.
        seed: seeds initialisation and shuffling (the global RNG is left untouched).

    Returns:
        The trained :class:`TagReader`; ``history`` holds the mean loss and training
        accuracy of every epoch.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}"
        )
    inputs, labels = prepare_inputs(dataset, degrade=degrade, mode=mode, crop_size=crop_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TagReaderCNN(mode, width=width)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(inputs) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    reader = TagReader(model, mode, crop_size)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total_loss, correct = 0.0, 0
        for start in range(0, len(inputs), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            logits = model(inputs[idx])
            loss = F.cross_entropy(logits, labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == labels[idx]).sum())
        reader.history.append({"epoch": epoch + 1, "loss": total_loss / len(inputs),
                               "train_accuracy": correct / len(inputs)})
    model.eval()
    return reader


def evaluate_tag_reader(reader: TagReader, dataset: Dataset, *,
                        degrade: Degrade | None = None) -> dict[str, Any]:
    """Accuracy of ``reader`` on the tags of ``dataset`` seen through ``degrade``.

    Returns:
        ``{"accuracy", "num_images", "chance", "per_class_accuracy", "confusion"}`` with
        ``confusion[true][predicted]`` counts (JSON-serialisable).
    """
    inputs, labels = prepare_inputs(dataset, degrade=degrade, mode=reader.mode,
                                    crop_size=reader.crop_size)
    predicted = reader.predict(inputs)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    for t, p in zip(labels.tolist(), predicted.tolist(), strict=True):
        confusion[t, p] += 1
    per_class = {
        int(c): (float(confusion[c, c]) / int(confusion[c].sum())) if confusion[c].sum() else None
        for c in range(NUM_CLASSES)
    }
    return {
        "accuracy": float((predicted == labels).float().mean()),
        "num_images": len(labels),
        "chance": 1.0 / NUM_CLASSES,
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }
