"""Batching the items of the data sets of :mod:`privcap.data` with a DataLoader: the one
collate function of the project (training, evaluation and the data tests all use it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from privcap.data.transforms import resize_and_crop


def collate_items(
    batch: Sequence[dict[str, Any]], image_size: int | None = None
) -> dict[str, Any]:
    """DataLoader collate for items of this package.

    Stacks ``image`` (resized and centre-cropped to ``image_size`` with
    :func:`~privcap.data.transforms.resize_and_crop` when an image has another size; with
    ``image_size=None`` every image must already have the same shape), keeps ``captions`` as
    a list of lists, ``image_id`` as an integer tensor, and stacks ``tag_box`` /
    ``tag_label`` and lists ``file_name`` when the items have them. Use
    ``functools.partial(collate_items, image_size=...)`` as a DataLoader's ``collate_fn``.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = []
    for item in batch:
        img = item["image"]
        if image_size is not None and tuple(img.shape[-2:]) != (image_size, image_size):
            img = resize_and_crop(img, image_size)
        images.append(img)
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) != 1:
        raise ValueError(
            f"images of one batch differ in shape: {sorted(shapes)}; pass image_size"
        )
    out: dict[str, Any] = {
        "image": torch.stack(images),
        "captions": [list(b["captions"]) for b in batch],
        "image_id": torch.tensor([int(b["image_id"]) for b in batch]),
    }
    if "tag_label" in batch[0]:
        out["tag_label"] = torch.tensor([int(b["tag_label"]) for b in batch])
        out["tag_box"] = torch.tensor([list(b["tag_box"]) for b in batch])
    if "file_name" in batch[0]:
        out["file_name"] = [b["file_name"] for b in batch]
    return out
