"""Batching the items of the data sets of :mod:`privcap.data` with a DataLoader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def collate_items(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader collate for items of this package: stacks ``image`` (and ``tag_box`` /
    ``tag_label`` when present) and keeps ``captions`` as a list of lists."""
    out: dict[str, Any] = {
        "image": torch.stack([b["image"] for b in batch]),
        "captions": [list(b["captions"]) for b in batch],
        "image_id": torch.tensor([int(b["image_id"]) for b in batch]),
    }
    if batch and "tag_label" in batch[0]:
        out["tag_label"] = torch.tensor([int(b["tag_label"]) for b in batch])
        out["tag_box"] = torch.tensor([list(b["tag_box"]) for b in batch])
    if batch and "file_name" in batch[0]:
        out["file_name"] = [b["file_name"] for b in batch]
    return out
