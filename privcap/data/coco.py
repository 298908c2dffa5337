"""COCO captions and the Karpathy split as torch data sets (``coco-mini`` and ``full`` profiles).

Two file formats are read:

* the official COCO captions file (``captions_train2014.json``, ``captions_val2017.json``,
  ...): ``images[]`` with ``id`` and ``file_name``, ``annotations[]`` with ``image_id`` and
  ``caption``; images are looked up as ``image_dir / file_name``
  (:func:`load_coco_captions`);
* Karpathy's split file ``dataset_coco.json``: ``images[]`` with ``split`` (train, restval,
  val or test), ``filepath`` (``train2014`` / ``val2014``), ``filename``, ``cocoid`` and
  ``sentences[].raw``; images are looked up as ``image_root / filepath / filename``
  (:func:`load_karpathy_split`). The usual training set of the captioning literature is
  ``split=("train", "restval")`` (113,287 images), validation and test 5,000 each.

Captions are normalised with :func:`privcap.data.captions.normalize_caption` (line breaks
and control characters become spaces) and empty or punctuation-only captions are dropped.
An image is used when its file exists and at least one caption survives. Nothing is
dropped silently: :class:`CaptionReport` (``dataset.report``; ``dataset.report.summary()``
for people) counts the images skipped by reason (``missing_file``, ``no_captions``,
``no_valid_captions``, ``unreadable`` with ``check_images=True``, ``malformed_entry``,
``duplicate_id``) and the captions dropped by reason (``empty``, ``punctuation_only``,
``not_a_string``, ``unknown_image``), with a few example ids per reason.

Items follow the synthetic scenes' keys: ``{"image": 3 x S x S float in [0, 1],
"captions": list[str], "image_id": int, "file_name": str}``; images go through the
shared policy :func:`privcap.data.transforms.resize_and_crop` when ``image_size`` is set.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from privcap.data.captions import clean_captions
from privcap.data.images import ImageLoadError, load_image
from privcap.data.transforms import resize_and_crop

KARPATHY_SPLITS: tuple[str, ...] = ("train", "restval", "val", "test")
_EXAMPLES_PER_REASON = 5


@dataclass
class CaptionReport:
    """What a captions loader found, used and skipped (and why)."""

    source: str
    image_dir: str
    images_in_file: int = 0
    captions_in_file: int = 0
    images_selected: int = 0  # after the split / limit filter
    images_with_captions: int = 0
    files_present: int = 0
    images_used: int = 0
    captions_used: int = 0
    captions_normalised: int = 0
    files_not_listed: int = 0
    skipped_images: Counter[str] = field(default_factory=Counter)
    dropped_captions: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def _example(self, reason: str, what: object) -> None:
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < _EXAMPLES_PER_REASON:
            bucket.append(str(what))

    def skip_image(self, reason: str, what: object) -> None:
        """Count one skipped image (``what`` identifies it in the examples)."""
        self.skipped_images[reason] += 1
        self._example(reason, what)

    def drop_captions(self, counts: Counter[str], image_id: object) -> None:
        """Count dropped captions of one image by reason."""
        for reason, n in counts.items():
            if n:
                self.dropped_captions[reason] += n
                self._example(reason, image_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "source": self.source, "image_dir": self.image_dir,
            "images_in_file": self.images_in_file, "captions_in_file": self.captions_in_file,
            "images_selected": self.images_selected,
            "images_with_captions": self.images_with_captions,
            "files_present": self.files_present, "images_used": self.images_used,
            "captions_used": self.captions_used,
            "captions_normalised": self.captions_normalised,
            "files_not_listed": self.files_not_listed,
            "skipped_images": dict(self.skipped_images),
            "dropped_captions": dict(self.dropped_captions),
            "examples": {k: list(v) for k, v in self.examples.items()},
        }

    def summary(self) -> str:
        """A readable multi-line account of the loading."""
        lines = [
            f"captions file: {self.source}",
            f"image folder:  {self.image_dir}",
            f"images listed: {self.images_in_file} ({self.images_selected} selected), "
            f"captions listed: {self.captions_in_file}",
            f"images with captions: {self.images_with_captions}, "
            f"image files present: {self.files_present}",
            f"used: {self.images_used} images, {self.captions_used} captions "
            f"({self.captions_normalised} with whitespace / control characters normalised)",
        ]
        if self.skipped_images:
            lines.append("skipped images: " + ", ".join(
                f"{reason} {n}" for reason, n in sorted(self.skipped_images.items())))
        else:
            lines.append("skipped images: none")
        if self.dropped_captions:
            lines.append("dropped captions: " + ", ".join(
                f"{reason} {n}" for reason, n in sorted(self.dropped_captions.items())))
        else:
            lines.append("dropped captions: none")
        if self.files_not_listed:
            lines.append(f"image files in the folder that the captions file does not list: "
                         f"{self.files_not_listed}")
        for reason, what in sorted(self.examples.items()):
            lines.append(f"  e.g. {reason}: {', '.join(what)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CaptionedImage:
    """One usable entry: an image file and its cleaned captions."""

    image_id: int
    path: Path
    captions: tuple[str, ...]


class CaptionedImages(Dataset):
    """Images on disk with their captions (built by the loaders of this module).

    Args:
        entries: the usable images.
        report: how they were selected.
        image_size: output side (resize shorter side + centre crop); None keeps the file's
            own size (then a DataLoader needs a custom collate).
    """

    def __init__(self, entries: Sequence[CaptionedImage], report: CaptionReport,
                 image_size: int | None = 256) -> None:
        if image_size is not None and (isinstance(image_size, bool)
                                       or not isinstance(image_size, int) or image_size <= 0):
            raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
        self.entries = list(entries)
        self.report = report
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def image_ids(self) -> list[int]:
        """Image ids in item order."""
        return [e.image_id for e in self.entries]

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        try:
            image = load_image(entry.path)
        except ImageLoadError as exc:
            raise ImageLoadError(f"image id {entry.image_id}: {exc}") from exc
        if self.image_size is not None:
            image = resize_and_crop(image, self.image_size)
        return {"image": image, "captions": list(entry.captions), "image_id": entry.image_id,
                "file_name": entry.path.name}

    def references(self) -> dict[int, list[str]]:
        """``{image_id: captions}`` of every item (no image is read)."""
        return {e.image_id: list(e.captions) for e in self.entries}


# Kept as the documented name of the COCO data set type.
CocoCaptions = CaptionedImages


def _read_json(path: str | os.PathLike[str], what: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} not found: {file}")
    try:
        with file.open("rb") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {file} is not valid JSON: {exc}") from exc


def _as_id(value: object) -> int | None:
    """An integer image id, or None when ``value`` is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _check_dir(path: str | os.PathLike[str], what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found or not a folder: {folder}")
    return folder


def _listing(folder: Path) -> set[str]:
    with os.scandir(folder) as it:
        return {e.name for e in it if e.is_file()}


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _finish(candidates: Iterable[tuple[int, Path, list[object]]], report: CaptionReport,
            check_images: bool, max_images: int | None) -> list[CaptionedImage]:
    """Common tail of both loaders: files, caption cleaning, optional decoding, limit."""
    entries: list[CaptionedImage] = []
    listings: dict[Path, set[str]] = {}
    for image_id, path, raw_captions in sorted(candidates, key=lambda c: c[0]):
        if max_images is not None and len(entries) >= max_images:
            break
        report.images_selected += 1
        if raw_captions:
            report.images_with_captions += 1
        folder = path.parent
        if folder not in listings:
            listings[folder] = _listing(folder) if folder.is_dir() else set()
        if path.name not in listings[folder]:
            report.skip_image("missing_file", f"{image_id} ({path})")
            continue
        report.files_present += 1
        if not raw_captions:
            report.skip_image("no_captions", image_id)
            continue
        kept, dropped, changed = clean_captions(raw_captions)
        report.drop_captions(dropped, image_id)
        if not kept:
            report.skip_image("no_valid_captions", image_id)
            continue
        if check_images:
            try:
                load_image(path)
            except (ImageLoadError, OSError) as exc:
                report.skip_image("unreadable", f"{image_id} ({exc})")
                continue
        report.captions_normalised += changed
        report.captions_used += len(kept)
        entries.append(CaptionedImage(image_id, path, tuple(kept)))
    report.images_used = len(entries)
    return entries


def _count_unlisted(report: CaptionReport, folder: Path, listed: set[str]) -> None:
    if folder.is_dir():
        report.files_not_listed += sum(
            1 for name in _listing(folder)
            if name.lower().endswith(_IMAGE_SUFFIXES) and name not in listed
        )


def load_coco_captions(captions_json: str | os.PathLike[str], image_dir: str | os.PathLike[str],
                       *, image_size: int | None = 256, check_images: bool = False,
                       max_images: int | None = None) -> CocoCaptions:
    """Join a COCO-format captions file to the image files that exist in ``image_dir``.

    Args:
        captions_json: e.g. ``annotations/captions_val2017.json``.
        image_dir: folder holding the ``file_name`` of each image.
        image_size: output side of the images (shared transform policy); None keeps sizes.
        check_images: decode every image now and skip (count) unreadable ones; otherwise
            a corrupt file raises :class:`ImageLoadError` (naming file and id) when read.
        max_images: keep at most this many usable images (lowest ids first).

    Returns:
        A :class:`CocoCaptions` data set; ``.report`` says what was used and skipped.
    """
    data = _read_json(captions_json, "captions file")
    folder = _check_dir(image_dir, "image folder")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(
            f"captions file {captions_json} must be a COCO captions JSON with lists 'images' "
            "and 'annotations'"
        )
    if max_images is not None and (not isinstance(max_images, int) or max_images < 0):
        raise ValueError(f"max_images must be a non-negative integer or None, got {max_images!r}")
    report = CaptionReport(str(captions_json), str(folder))
    report.images_in_file = len(data["images"])
    report.captions_in_file = len(data["annotations"])
    files: dict[int, str] = {}
    for k, image in enumerate(data["images"]):
        image_id = _as_id(image.get("id") if isinstance(image, dict) else None)
        if image_id is None or not isinstance(image.get("file_name"), str):
            report.skip_image("malformed_entry", f"images[{k}]")
            continue
        if image_id in files:
            report.skip_image("duplicate_id", image_id)
            continue
        files[image_id] = str(image["file_name"])
    captions: dict[int, list[object]] = {i: [] for i in files}
    for k, ann in enumerate(data["annotations"]):
        image_id = _as_id(ann.get("image_id") if isinstance(ann, dict) else None)
        if image_id is None:
            report.drop_captions(Counter({"malformed_entry": 1}), f"annotations[{k}]")
            continue
        if image_id not in captions:
            report.drop_captions(Counter({"unknown_image": 1}), image_id)
            continue
        captions[image_id].append(ann.get("caption"))
    candidates = [(i, folder / name, captions[i]) for i, name in files.items()]
    entries = _finish(candidates, report, check_images, max_images)
    _count_unlisted(report, folder, {Path(name).name for name in files.values()})
    return CaptionedImages(entries, report, image_size)


def load_karpathy_split(dataset_coco_json: str | os.PathLike[str],
                        image_root: str | os.PathLike[str], split: str | Sequence[str] = "test",
                        *, image_size: int | None = 256, check_images: bool = False,
                        max_images: int | None = None) -> CocoCaptions:
    """Load one or more splits of Karpathy's ``dataset_coco.json``.

    Args:
        dataset_coco_json: path of ``dataset_coco.json``.
        image_root: folder containing ``train2014/`` and ``val2014/`` (each image is
            ``image_root / filepath / filename``; without ``filepath``,
            ``image_root / filename``).
        split: "train", "restval", "val", "test", or several of them, e.g.
            ``("train", "restval")`` for the usual 113k training images.
        image_size, check_images, max_images: as in :func:`load_coco_captions`.

    Image ids are the COCO ids (``cocoid``; ``imgid`` when absent).
    """
    splits = (split,) if isinstance(split, str) else tuple(split)
    unknown = [s for s in splits if s not in KARPATHY_SPLITS]
    if not splits or unknown:
        raise ValueError(f"split must be one or more of {KARPATHY_SPLITS}, got {split!r}")
    data = _read_json(dataset_coco_json, "Karpathy split file")
    root = _check_dir(image_root, "image root")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"Karpathy split file {dataset_coco_json} has no list 'images'")
    report = CaptionReport(f"{dataset_coco_json} [split {'+'.join(splits)}]", str(root))
    report.images_in_file = len(data["images"])
    seen: set[int] = set()
    candidates: list[tuple[int, Path, list[object]]] = []
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "filename" not in image or "split" not in image:
            report.skip_image("malformed_entry", f"images[{k}]")
            continue
        sentences = image.get("sentences") or []
        report.captions_in_file += len(sentences)
        if image["split"] not in splits:
            continue
        image_id = _as_id(image.get("cocoid", image.get("imgid")))
        if image_id is None:
            report.skip_image("malformed_entry", f"images[{k}]")
            continue
        if image_id in seen:
            report.skip_image("duplicate_id", image_id)
            continue
        seen.add(image_id)
        path = root / str(image.get("filepath", "")) / str(image["filename"])
        raws = [s.get("raw") if isinstance(s, dict) else None for s in sentences]
        candidates.append((image_id, path, raws))
    entries = _finish(candidates, report, check_images, max_images)
    return CaptionedImages(entries, report, image_size)
