"""Data for training and evaluation: the data sets of each profile, references, the
vocabulary, batching and the per-image caption choice.

Batches are made by :func:`privcap.data.batching.collate_items` (the project's one collate
function, re-exported here). Which captions of an image a step trains on is a function of
``(seed, epoch, image id)`` (:func:`select_captions`), so it does not depend on the batch
an image lands in, on the number of processes, or on where a resumed run restarted.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from privcap.captioning.vocab import Vocabulary
from privcap.data.batching import collate_items
from privcap.profiles import check_profile

__all__ = [
    "SHARED_COCO_MINI",
    "build_vocabulary",
    "collate_items",
    "dataset_references",
    "holdout_split",
    "load_caption_data",
    "load_test_data",
    "select_captions",
]

#: the real COCO images of the ``coco-mini`` profile, beside the repository (never committed)
SHARED_COCO_MINI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco-mini"
#: synthetic test scenes use this offset on the seed (validation scenes use the seed itself)
TEST_SEED_OFFSET = 10_000


def dataset_references(dataset: Dataset) -> dict[Any, list[str]]:
    """``{image_id: captions}`` of a data set, without reading images where possible.

    Uses the data set's ``references()`` (synthetic scenes, COCO); for a ``Subset`` of such a
    data set, the references of its items (image ids from the base's ``image_ids`` when it
    has them, the item index otherwise). Any other data set is iterated.
    """
    refs = getattr(dataset, "references", None)
    if callable(refs):
        return dict(refs())
    if isinstance(dataset, Subset) and callable(getattr(dataset.dataset, "references", None)):
        base = dataset.dataset
        all_refs = base.references()
        ids = getattr(base, "image_ids", None)
        keys = [ids[i] if ids is not None else int(i) for i in dataset.indices]
        return {k: list(all_refs[k]) for k in keys}
    return {item["image_id"]: list(item["captions"]) for item in _iterate(dataset)}


def _iterate(dataset: Dataset) -> Iterable[dict]:
    for i in range(len(dataset)):  # type: ignore[arg-type]
        yield dataset[i]


def holdout_split(dataset: Dataset, num_val: int, seed: int = 0) -> tuple[Subset, Subset]:
    """Random disjoint ``(train, val)`` subsets with ``num_val`` validation items."""
    n = len(dataset)  # type: ignore[arg-type]
    if not 0 < num_val < n:
        raise ValueError(f"num_val must be between 1 and {n - 1} for {n} items, got {num_val!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[num_val:])), Subset(dataset, sorted(order[:num_val]))


def _resolve_source(
    profile: str, dataset: str | Path, captions_json: str | Path | None
) -> tuple[str | Path, str | Path | None]:
    check_profile(profile)
    if str(dataset) != "auto":
        return dataset, captions_json
    if profile == "quick":
        return "synthetic", captions_json
    if profile == "coco-mini":
        return (SHARED_COCO_MINI / "val2017",
                captions_json or SHARED_COCO_MINI / "annotations" / "captions_val2017.json")
    raise ValueError(
        f"profile {profile!r} has no default data set: pass dataset=<COCO image folder> "
        "and captions_json=<captions file or dataset_coco.json>"
    )


def _coco_paths(dataset: str | Path, captions_json: str | Path | None) -> tuple[Path, Path]:
    folder = Path(dataset)
    if captions_json is None:
        raise ValueError(f"dataset={str(folder)!r} is a COCO folder: captions_json is needed")
    return folder, Path(captions_json)


def load_caption_data(
    profile: str = "quick",
    dataset: str | Path = "auto",
    captions_json: str | Path | None = None,
    *,
    num_images: int = 1500,
    num_val_images: int = 200,
    image_size: int = 128,
    seed: int = 0,
) -> tuple[Dataset, Dataset, dict[str, Any]]:
    """Training and validation data of a profile: ``(train, val, description)``.

    Args:
        profile: ``quick``, ``coco-mini`` or ``full`` (only used when ``dataset="auto"``).
        dataset: ``"auto"`` (``quick``: synthetic scenes; ``coco-mini``: the shared
            ``../shared/data/coco-mini`` folder), ``"synthetic"``, or a folder of COCO images.
        captions_json: the captions of a COCO folder: an official COCO captions file
            (train / validation drawn at random from its images) or Karpathy's
            ``dataset_coco.json`` (``train + restval`` / ``val``; then ``dataset`` is the
            folder holding ``train2014/`` and ``val2014/``).
        num_images: training images (synthetic: generated; COCO: at most this many).
        num_val_images: validation images.
        image_size: side of the square images.
        seed: synthetic generation seed / COCO split seed.

    Returns:
        The two data sets (items ``{"image", "captions", "image_id", ...}``) and a
        JSON-serialisable description (source, sizes, and the COCO loader's skip report).
    """
    if num_images < 1 or num_val_images < 1:
        raise ValueError(
            f"num_images and num_val_images must be >= 1, got {num_images!r}, {num_val_images!r}"
        )
    dataset, captions_json = _resolve_source(profile, dataset, captions_json)
    if str(dataset) == "synthetic":
        from privcap.data.synthetic import SyntheticScenes

        train = SyntheticScenes(num_images, image_size=image_size, seed=seed, split="train")
        val = SyntheticScenes(num_val_images, image_size=image_size, seed=seed, split="test")
        return train, val, {"source": "synthetic", "num_train": num_images,
                            "num_val": num_val_images, "image_size": image_size, "seed": seed}

    from privcap.data.coco import load_coco_captions, load_karpathy_split

    folder, captions_path = _coco_paths(dataset, captions_json)
    if captions_path.name == "dataset_coco.json":
        train = load_karpathy_split(captions_path, folder, ("train", "restval"),
                                    image_size=image_size, max_images=num_images)
        val = load_karpathy_split(captions_path, folder, "val", image_size=image_size,
                                  max_images=num_val_images)
        if len(train) == 0 or len(val) == 0:
            raise ValueError(
                f"{captions_path} with images in {folder}: {len(train)} usable training and "
                f"{len(val)} validation images ({train.report.summary()})"
            )
        reports = {"train": train.report.to_dict(), "val": val.report.to_dict()}
    else:
        everything = load_coco_captions(captions_path, folder, image_size=image_size,
                                        max_images=num_images + num_val_images)
        if len(everything) < 2:
            raise ValueError(
                f"{captions_path} with images in {folder}: only {len(everything)} usable "
                f"images ({everything.report.summary()})"
            )
        n_val = min(num_val_images, max(1, len(everything) // 5))
        train, val = holdout_split(everything, n_val, seed=seed)
        reports = {"all": everything.report.to_dict()}
    description = {"source": "coco", "image_dir": str(folder), "captions_json": str(captions_path),
                   "num_train": len(train), "num_val": len(val), "image_size": image_size,
                   "seed": seed, "reports": reports}
    return train, val, description


def load_test_data(
    profile: str = "quick",
    dataset: str | Path = "auto",
    captions_json: str | Path | None = None,
    *,
    num_images: int = 200,
    num_train_images: int = 1500,
    num_val_images: int = 200,
    image_size: int = 128,
    seed: int = 0,
) -> tuple[Dataset, dict[str, Any]]:
    """Held-out images for final results (Table 1): ``(test, description)``.

    - synthetic scenes: ``num_images`` scenes of the test digits with the seed
      ``seed + TEST_SEED_OFFSET`` (neither training nor validation scenes);
    - Karpathy's ``dataset_coco.json``: its ``test`` split (at most ``num_images``);
    - an official COCO captions file (e.g. ``coco-mini``, too small for three splits): the
      validation images of :func:`load_caption_data` with the same ``num_train_images``,
      ``num_val_images`` and ``seed`` (at most ``num_images`` of them), which training never
      sees.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images!r}")
    dataset, captions_json = _resolve_source(profile, dataset, captions_json)
    if str(dataset) == "synthetic":
        from privcap.data.synthetic import SyntheticScenes

        test_seed = seed + TEST_SEED_OFFSET
        test = SyntheticScenes(num_images, image_size=image_size, seed=test_seed, split="test")
        return test, {"source": "synthetic", "name": "synthetic", "split": "test",
                      "num_images": num_images, "image_size": image_size, "seed": test_seed}
    from privcap.data.coco import load_karpathy_split

    folder, captions_path = _coco_paths(dataset, captions_json)
    if captions_path.name == "dataset_coco.json":
        test = load_karpathy_split(captions_path, folder, "test", image_size=image_size,
                                   max_images=num_images)
        if len(test) == 0:
            raise ValueError(f"{captions_path}: no usable test image ({test.report.summary()})")
        return test, {"source": "coco", "name": "coco-karpathy", "split": "test",
                      "num_images": len(test), "image_size": image_size,
                      "captions_json": str(captions_path)}
    _, val, info = load_caption_data(
        profile, folder, captions_path, num_images=num_train_images,
        num_val_images=num_val_images,
        image_size=image_size, seed=seed,
    )
    val = Subset(val.dataset, val.indices[:num_images]) if len(val) > num_images else val
    name = "coco-mini" if Path(folder).resolve().parent == SHARED_COCO_MINI.resolve() else "coco"
    return val, {"source": "coco", "name": name, "split": "val", "num_images": len(val),
                 "image_size": image_size, "captions_json": str(captions_path),
                 "seed": seed}


def build_vocabulary(dataset: Dataset, min_count: int = 5, max_len: int = 16) -> Vocabulary:
    """Vocabulary of the training captions of ``dataset`` (words seen ``>= min_count`` times)."""
    captions = [c for caps in dataset_references(dataset).values() for c in caps]
    return Vocabulary.build(captions, min_count=min_count, max_len=max_len)


def caption_seed(seed: int, epoch: int, image_id: int) -> int:
    """Seed of the caption choice of one image in one epoch."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(image_id)) % (2**63)


def select_captions(
    captions: Sequence[Sequence[str]],
    image_ids: Sequence[int],
    per_image: int | None,
    *,
    seed: int,
    epoch: int,
) -> tuple[list[str], list[int]]:
    """Captions a step trains on and, for each, the index of its image in the batch.

    With ``per_image=None`` (or at least as many as an image has) every caption is used;
    otherwise ``per_image`` of them, drawn without replacement by a generator seeded with
    :func:`caption_seed` ``(seed, epoch, image_id)``.
    """
    chosen: list[str] = []
    owner: list[int] = []
    for i, (caps, image_id) in enumerate(zip(captions, image_ids, strict=True)):
        if not caps:
            raise ValueError(f"image {image_id} has no caption")
        if per_image is None or per_image >= len(caps):
            picked = list(caps)
        else:
            picked = random.Random(caption_seed(seed, epoch, image_id)).sample(list(caps),
                                                                               per_image)
        chosen += picked
        owner += [i] * len(picked)
    return chosen, owner
