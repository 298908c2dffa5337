"""Training and evaluation of the captioner, optionally behind a camera model.

:func:`train_captioner` minimises ``L_ce + L_d``'s attention term (paper Eqs. 6-7) with
teacher forcing on images in ``[0, 1]``. By default the captioner sees the clean images
("Proposed-w" in the paper's Table 1); a ``camera`` module (lens + sensor, Eqs. 1-2) can be
put in front of it, and an ``extra_loss`` (e.g. ``L_p`` and ``L_H``) added, which is how the
end-to-end privacy training composes the same loop. Per epoch it records the losses, scores
the validation captions with :func:`privcap.metrics.score_captions`, writes the history as
JSON and a checkpoint (``last.pt``, and ``best.pt`` by validation CIDEr) under
``results/<profile>/captioner/``, and can resume from ``last.pt``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from privcap.captioning.checkpoint import describe_vocab_difference, read_checkpoint, save_captioner
from privcap.captioning.model import Captioner
from privcap.captioning.vocab import Vocabulary
from privcap.data.transforms import resize_and_crop
from privcap.losses import caption_cross_entropy, doubly_stochastic_attention
from privcap.metrics import score_captions
from privcap.paths import results_dir

HISTORY_FILE = "history.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
#: the real COCO images of the ``coco-mini`` profile, beside the repository (never committed)
SHARED_COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini"


# --------------------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """Optimisation settings of :func:`train_captioner`.

    Attributes:
        epochs: number of passes over the training images.
        batch_size: images per step (each with ``captions_per_image`` captions).
        captions_per_image: captions per image and step, drawn at random without
            replacement; ``None`` = all of them (the image is encoded once for all).
        lr_encoder: Adam learning rate of the feature encoder.
        lr_decoder: Adam learning rate of the decoder.
        lr_camera: Adam learning rate of the camera's trainable parameters (if any).
        weight_decay: L2 weight decay of encoder and decoder.
        grad_clip: maximum gradient norm (``None``: no clipping).
        ds_lambda: ``lambda`` of the doubly stochastic attention term of ``L_d`` (Eq. 7). The
            term is summed over regions per caption while ``L_ce`` is a mean per word, so
            Show-Attend-Tell's ``lambda = 1`` (with a cross-entropy summed over the words)
            corresponds to about ``1 / words per caption`` (~0.1) here.
        lr_decay: multiplicative learning-rate decay per epoch.
        val_beam_size: beam size of the per-epoch validation captions (1 = greedy).
        val_meteor: compute METEOR at validation (a JVM start, several seconds each).
        val_meteor_every: with ``val_meteor``, compute METEOR every this many epochs and at
            the last one (other epochs record ``"METEOR": None``).
        seed: seed of the parameter-free randomness (shuffling, caption choice, dropout).
        num_workers: ``DataLoader`` worker processes.
    """

    epochs: int = 10
    batch_size: int = 32
    captions_per_image: int | None = None
    lr_encoder: float = 1e-3
    lr_decoder: float = 2e-3
    lr_camera: float = 5e-7
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0
    ds_lambda: float = 0.01
    lr_decay: float = 0.9
    val_beam_size: int = 1
    val_meteor: bool = True
    val_meteor_every: int = 1
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.captions_per_image is not None and self.captions_per_image < 1:
            raise ValueError(
                f"captions_per_image must be None or >= 1, got {self.captions_per_image!r}"
            )
        if self.val_beam_size < 1:
            raise ValueError(f"val_beam_size must be >= 1, got {self.val_beam_size!r}")
        if self.val_meteor_every < 1:
            raise ValueError(f"val_meteor_every must be >= 1, got {self.val_meteor_every!r}")
        if self.ds_lambda < 0:
            raise ValueError(f"ds_lambda must be >= 0, got {self.ds_lambda!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {unknown}")
        return cls(**data)


def train_config(profile: str = "quick", **overrides: Any) -> TrainConfig:
    """Preset training settings of a data profile, with optional overrides.

    ``full`` follows the authors' released settings (batch 64, learning rates 1e-4 encoder /
    5e-4 decoder / 5e-7 camera).
    """
    presets: dict[str, dict[str, Any]] = {
        "quick": dict(epochs=8, batch_size=16, captions_per_image=3, val_meteor_every=2),
        "coco-mini": dict(epochs=15, batch_size=16, lr_encoder=1e-4, lr_decoder=2e-3,
                          val_meteor_every=5),
        "full": dict(
            epochs=30, batch_size=64, captions_per_image=1, lr_encoder=1e-4, lr_decoder=5e-4,
            lr_decay=0.8, val_beam_size=3, ds_lambda=0.1, num_workers=4,
        ),
    }
    if profile not in presets:
        raise ValueError(f"profile must be one of {tuple(presets)}, got {profile!r}")
    data = {**presets[profile], **overrides}
    return TrainConfig.from_dict(data)


# --------------------------------------------------------------------------- data helpers
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


def holdout_split(dataset: Dataset, num_val: int, seed: int = 0) -> tuple[Subset, Subset]:
    """Random disjoint ``(train, val)`` subsets with ``num_val`` validation items."""
    n = len(dataset)  # type: ignore[arg-type]
    if not 0 < num_val < n:
        raise ValueError(f"num_val must be between 1 and {n - 1} for {n} items, got {num_val!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[num_val:])), Subset(dataset, sorted(order[:num_val]))


def _iterate(dataset: Dataset) -> Iterable[dict]:
    for i in range(len(dataset)):  # type: ignore[arg-type]
        yield dataset[i]


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
    if str(dataset) == "auto":
        if profile == "quick":
            dataset = "synthetic"
        elif profile == "coco-mini":
            dataset = SHARED_COCO_MINI / "val2017"
            captions_json = captions_json or SHARED_COCO_MINI / "annotations" / \
                "captions_val2017.json"
        else:
            raise ValueError(
                f"profile {profile!r} has no default data set: pass dataset=<COCO image folder> "
                "and captions_json=<captions file or dataset_coco.json>"
            )
    if str(dataset) == "synthetic":
        from privcap.data.synthetic import SyntheticScenes

        train = SyntheticScenes(num_images, image_size=image_size, seed=seed, split="train")
        val = SyntheticScenes(num_val_images, image_size=image_size, seed=seed, split="test")
        return train, val, {"source": "synthetic", "num_train": num_images,
                            "num_val": num_val_images, "image_size": image_size, "seed": seed}

    from privcap.data.coco import load_coco_captions, load_karpathy_split

    folder = Path(dataset)
    if captions_json is None:
        raise ValueError(f"dataset={str(folder)!r} is a COCO folder: captions_json is needed")
    captions_path = Path(captions_json)
    if captions_path.name == "dataset_coco.json":
        train = load_karpathy_split(captions_path, folder, ("train", "restval"),
                                    image_size=image_size, max_images=num_images)
        val = load_karpathy_split(captions_path, folder, "val", image_size=image_size,
                                  max_images=num_val_images)
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


def build_vocabulary(dataset: Dataset, min_count: int = 5, max_len: int = 16) -> Vocabulary:
    """Vocabulary of the training captions of ``dataset`` (words seen ``>= min_count`` times)."""
    captions = [c for caps in dataset_references(dataset).values() for c in caps]
    return Vocabulary.build(captions, min_count=min_count, max_len=max_len)


def collate_scenes(items: Sequence[dict], image_size: int | None = None) -> dict[str, Any]:
    """Batch of data-set items: stacked images (resized and cropped to ``image_size`` when
    they differ, with :func:`privcap.data.transforms.resize_and_crop`), ids and captions."""
    images = []
    for item in items:
        img = item["image"]
        if image_size is not None and tuple(img.shape[-2:]) != (image_size, image_size):
            img = resize_and_crop(img, image_size)
        images.append(img)
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) != 1:
        raise ValueError(f"images of one batch differ in shape: {sorted(shapes)}; set image_size")
    return {
        "image": torch.stack(images),
        "image_id": [item["image_id"] for item in items],
        "captions": [list(item["captions"]) for item in items],
    }


def _select_captions(
    captions: Sequence[Sequence[str]], per_image: int | None, rng: random.Random
) -> tuple[list[str], list[int]]:
    """Flat caption list and, for each caption, the index of its image in the batch."""
    chosen, owner = [], []
    for i, caps in enumerate(captions):
        if not caps:
            raise ValueError(f"image {i} of the batch has no caption")
        picked = list(caps) if per_image is None or per_image >= len(caps) else rng.sample(
            list(caps), per_image
        )
        chosen += picked
        owner += [i] * len(picked)
    return chosen, owner


# --------------------------------------------------------------------------- loss
def caption_loss(
    model: Captioner,
    images: Tensor,
    captions: Sequence[Sequence[str]],
    *,
    ds_lambda: float,
    per_image: int | None = None,
    rng: random.Random | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """``L_ce + lambda * sum_i (1 - sum_t alpha_ti)^2`` (Eqs. 6-7) of a batch.

    Each image is encoded once; its region features are shared by all its captions.
    Returns the loss and its parts as floats (``ce``, ``ds``, ``tokens``).
    """
    flat, owner = _select_captions(captions, per_image, rng or random.Random(0))
    ids = model.vocab.encode_batch(flat).to(images.device)
    ids = ids[:, : int((ids != model.vocab.pad_id).sum(dim=1).max())]  # drop all-padding tail
    feats = model.encode(images)
    index = torch.tensor(owner, device=images.device)
    logits, alphas = model.decoder(
        feats.regions[index], feats.mean[index], ids[:, :-1]
    )
    targets = ids[:, 1:]
    mask = targets != model.vocab.pad_id
    ce = caption_cross_entropy(logits, targets, model.vocab.pad_id)
    ds = doubly_stochastic_attention(alphas, mask, ds_lambda) if ds_lambda > 0 else ce.new_zeros(())
    loss = ce + ds
    return loss, {"ce": float(ce.detach()), "ds": float(ds.detach()), "tokens": int(mask.sum())}


# --------------------------------------------------------------------------- evaluation
def caption_dataset(
    model: Captioner,
    dataset: Dataset,
    *,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    batch_size: int = 64,
    camera: nn.Module | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[Any, str]:
    """``{image_id: generated caption}`` for every item of ``dataset``.

    ``beam_size`` and ``length_penalty`` default to the model's config (1 = greedy).
    """
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=partial(collate_scenes, image_size=model.config.image_size),
    )
    out: dict[Any, str] = {}
    for batch in tqdm(loader, desc="captioning", disable=not progress, leave=False):
        images = batch["image"].to(device)
        with torch.no_grad():
            if camera is not None:
                images = camera(images)
        result = model.generate(images, beam_size=beam_size, length_penalty=length_penalty)
        out.update(zip(batch["image_id"], result.captions, strict=True))
    return out


def evaluate_captioner(
    model: Captioner,
    dataset: Dataset,
    *,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    meteor: bool = True,
    batch_size: int = 64,
    camera: nn.Module | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[dict[str, float | None], dict[Any, str]]:
    """Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) of ``model`` on ``dataset``.

    Returns the metrics of :func:`privcap.metrics.score_captions` and the candidates.
    """
    candidates = caption_dataset(
        model, dataset, beam_size=beam_size, length_penalty=length_penalty,
        batch_size=batch_size, camera=camera, device=device, progress=progress,
    )
    references = dataset_references(dataset)
    metrics = score_captions(references, candidates, meteor=meteor)
    return metrics, candidates


def random_caption_baseline(
    train_references: Mapping[Any, Sequence[str]],
    references: Mapping[Any, Sequence[str]],
    *,
    seed: int = 0,
    meteor: bool = True,
) -> dict[str, Any]:
    """Chance level: each image gets a training caption drawn at random (image ignored).

    Also scores the single most frequent training caption given to every image. Returns
    ``{"random_caption": metrics, "most_frequent_caption": metrics, "most_frequent": str}``.
    """
    pool = [c for caps in train_references.values() for c in caps]
    if not pool:
        raise ValueError("train_references holds no caption")
    rng = random.Random(seed)
    random_cands = {i: rng.choice(pool) for i in references}
    counts = Counter(pool)
    most = max(counts, key=lambda c: (counts[c], c))
    return {
        "random_caption": score_captions(references, random_cands, meteor=meteor),
        "most_frequent_caption": score_captions(
            references, dict.fromkeys(references, most), meteor=meteor
        ),
        "most_frequent": most,
    }


@torch.no_grad()
def validation_loss(
    model: Captioner,
    dataset: Dataset,
    *,
    ds_lambda: float,
    batch_size: int = 64,
    camera: nn.Module | None = None,
    device: str | torch.device = "cpu",
) -> float:
    """Token-weighted mean ``L_ce`` over all captions of ``dataset`` (eval mode)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False,
        collate_fn=partial(collate_scenes, image_size=model.config.image_size),
    )
    total, n_tokens = 0.0, 0
    try:
        for batch in loader:
            images = batch["image"].to(device)
            if camera is not None:
                images = camera(images)
            _, parts = caption_loss(model, images, batch["captions"], ds_lambda=ds_lambda)
            total += parts["ce"] * parts["tokens"]
            n_tokens += parts["tokens"]
    finally:
        model.train(was_training)
    return total / max(n_tokens, 1)


def beam_size_sweep(
    model: Captioner,
    dataset: Dataset,
    beam_sizes: Sequence[int],
    *,
    out_path: str | Path | None = None,
    meteor: bool = True,
    length_penalty: float | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Metrics and mean caption length for each beam size; written as JSON to ``out_path``."""
    if not beam_sizes:
        raise ValueError("beam_sizes is empty")
    penalty = model.config.length_penalty if length_penalty is None else float(length_penalty)
    rows = []
    for beam in beam_sizes:
        start = time.perf_counter()
        metrics, candidates = evaluate_captioner(
            model, dataset, beam_size=int(beam), length_penalty=penalty, meteor=meteor,
            device=device,
        )
        lengths = [len(c.split()) for c in candidates.values()]
        rows.append(
            {
                "beam_size": int(beam),
                "metrics": metrics,
                "mean_length_words": float(np.mean(lengths)),
                "distinct_captions": len(set(candidates.values())),
                "seconds": time.perf_counter() - start,
            }
        )
    result = {"num_images": len(dataset), "length_penalty": penalty,  # type: ignore[arg-type]
              "rows": rows}
    if out_path is not None:
        _write_json(Path(out_path), result)
    return result


# --------------------------------------------------------------------------- training
def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default), encoding="utf-8")
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _param_groups(
    model: Captioner, camera: nn.Module | None, cfg: TrainConfig
) -> list[dict[str, Any]]:
    groups = [
        {"params": [p for p in model.encoder.parameters() if p.requires_grad],
         "lr": cfg.lr_encoder, "weight_decay": cfg.weight_decay, "name": "encoder"},
        {"params": [p for p in model.decoder.parameters() if p.requires_grad],
         "lr": cfg.lr_decoder, "weight_decay": cfg.weight_decay, "name": "decoder"},
    ]
    if camera is not None:
        cam = [p for p in camera.parameters() if p.requires_grad]
        if cam:
            groups.append({"params": cam, "lr": cfg.lr_camera, "weight_decay": 0.0,
                           "name": "camera"})
    return [g for g in groups if g["params"]]


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def train_captioner(
    model: Captioner,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    config: TrainConfig | None = None,
    profile: str = "quick",
    out_dir: str | Path | None = None,
    camera: nn.Module | None = None,
    extra_loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    log_epochs: bool = True,
) -> dict[str, Any]:
    """Train ``model`` with teacher forcing; validate, log and checkpoint every epoch.

    Args:
        model: the captioner (its vocabulary encodes the training captions).
        train_data: items ``{"image", "captions", "image_id"}`` (e.g.
            :class:`privcap.data.synthetic.SyntheticScenes`), images in ``[0, 1]``.
        val_data: validation items; each epoch their captions are generated with
            ``config.val_beam_size`` and scored. ``None`` skips validation.
        config: optimisation settings (default: ``train_config(profile)``).
        profile: results go to ``results/<profile>/captioner`` unless ``out_dir`` is given.
        out_dir: folder of ``history.json``, ``last.pt`` and ``best.pt``.
        camera: optional module applied to the images before the captioner (a lens and
            sensor model); its trainable parameters are optimised with ``config.lr_camera``.
        extra_loss: optional ``f(clean_images, camera_images) -> loss`` added to the caption
            loss (e.g. the privacy terms ``L_p`` and ``L_H``).
        resume: continue from ``out_dir/last.pt`` when it exists (same vocabulary required).
        device: where to train.
        progress: show tqdm progress bars (one per epoch, over its steps).
        log_epochs: print one summary line per epoch (losses, BLEU-4, CIDEr, seconds).

    Returns:
        The history: ``{"profile", "captioner_config", "train_config", "vocab_size",
        "steps": [{"step", "epoch", "loss", "ce", "ds"}], "epochs": [{"epoch",
        "train_loss", "train_ce", "val_loss", "metrics", "seconds", "lr"}], "best_epoch",
        "checkpoints"}``, also written to ``out_dir/history.json``.
    """
    cfg = config if config is not None else train_config(profile)
    out = Path(out_dir) if out_dir is not None else results_dir(profile, "captioner")
    out.mkdir(parents=True, exist_ok=True)
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise ValueError("train_data is empty")
    device = torch.device(device)
    model.to(device)
    if camera is not None:
        camera.to(device)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    caption_rng = random.Random(cfg.seed)
    groups = _param_groups(model, camera, cfg)
    optimizer = torch.optim.Adam(groups)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
    history: dict[str, Any] = {
        "profile": profile,
        "captioner_config": model.config.to_dict(),
        "train_config": cfg.to_dict(),
        "vocab_size": len(model.vocab),
        "num_train_images": len(train_data),  # type: ignore[arg-type]
        "num_val_images": len(val_data) if val_data is not None else 0,  # type: ignore[arg-type]
        "camera": type(camera).__name__ if camera is not None else None,
        "steps": [],
        "epochs": [],
        "best_epoch": None,
        "checkpoints": {"last": str(out / LAST_CHECKPOINT), "best": str(out / BEST_CHECKPOINT)},
    }
    start_epoch = 0
    best_score = -math.inf
    last_path = out / LAST_CHECKPOINT
    if resume and last_path.is_file():
        payload = read_checkpoint(last_path, map_location=device)
        stored_vocab = Vocabulary.from_dict(payload["vocab"])
        if stored_vocab.fingerprint() != model.vocab.fingerprint():
            raise ValueError(
                f"cannot resume from {last_path}: vocabulary mismatch "
                f"({describe_vocab_difference(stored_vocab, model.vocab)})"
            )
        model.load_state_dict(payload["state_dict"])
        extra = payload["extra"]
        optimizer.load_state_dict(extra["optimizer"])
        scheduler.load_state_dict(extra["scheduler"])
        if camera is not None and extra.get("camera_state") is not None:
            camera.load_state_dict(extra["camera_state"])
        history = extra["history"]
        start_epoch = int(extra["epoch"]) + 1
        best_score = float(extra.get("best_score", -math.inf))
        _set_rng_state(extra["rng"])
        caption_rng.setstate(extra["caption_rng"])

    loader_gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        train_data,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(train_data) > cfg.batch_size,  # type: ignore[arg-type]
        num_workers=cfg.num_workers,
        generator=loader_gen,
        collate_fn=partial(collate_scenes, image_size=model.config.image_size),
    )
    step = len(history["steps"])
    for epoch in range(start_epoch, cfg.epochs):
        loader_gen.manual_seed(cfg.seed * 1_000_003 + epoch)  # same order when resumed
        model.train()
        if camera is not None:
            camera.train()
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "ce": 0.0, "n": 0}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False)
        for batch in bar:
            clean = batch["image"].to(device)
            images = camera(clean) if camera is not None else clean
            loss, parts = caption_loss(
                model, images, batch["captions"], ds_lambda=cfg.ds_lambda,
                per_image=cfg.captions_per_image, rng=caption_rng,
            )
            if extra_loss is not None:
                extra_term = extra_loss(clean, images)
                loss = loss + extra_term
                parts["extra"] = float(extra_term.detach())
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is not finite at epoch {epoch + 1}, step {step}: {parts}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(
                    [p for g in groups for p in g["params"]], cfg.grad_clip
                )
            optimizer.step()
            step += 1
            record = {"step": step, "epoch": epoch + 1, "loss": float(loss.detach()), **parts}
            history["steps"].append(record)
            sums["loss"] += record["loss"]
            sums["ce"] += parts["ce"]
            sums["n"] += 1
            bar.set_postfix(loss=f"{record['loss']:.3f}", ce=f"{parts['ce']:.3f}")
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        scheduler.step()

        epoch_record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": sums["loss"] / max(sums["n"], 1),
            "train_ce": sums["ce"] / max(sums["n"], 1),
            "lr": lrs,
            "val_loss": None,
            "metrics": None,
        }
        if val_data is not None:
            epoch_record["val_loss"] = validation_loss(
                model, val_data, ds_lambda=cfg.ds_lambda, camera=camera, device=device
            )
            with_meteor = cfg.val_meteor and (
                (epoch + 1) % cfg.val_meteor_every == 0 or epoch + 1 == cfg.epochs
            )
            metrics, candidates = evaluate_captioner(
                model, val_data, beam_size=cfg.val_beam_size, meteor=with_meteor,
                camera=camera, device=device,
            )
            epoch_record["metrics"] = metrics
            epoch_record["examples"] = dict(list(candidates.items())[:5])
        epoch_record["seconds"] = time.perf_counter() - t0
        history["epochs"].append(epoch_record)

        score = (
            epoch_record["metrics"]["CIDEr"] if epoch_record["metrics"] is not None
            else -epoch_record["train_loss"]
        )
        is_best = score > best_score
        if is_best:
            best_score = score
            history["best_epoch"] = epoch + 1
        extra = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "camera_state": camera.state_dict() if camera is not None else None,
            "history": history,
            "epoch": epoch,
            "best_score": best_score,
            "rng": _rng_state(),
            "caption_rng": caption_rng.getstate(),
        }
        save_captioner(model, last_path, extra=extra)
        if is_best:
            save_captioner(model, out / BEST_CHECKPOINT, extra={"epoch": epoch,
                                                                "metrics": epoch_record["metrics"]})
        _write_json(out / HISTORY_FILE, history)
        if log_epochs:
            summary = (f"epoch {epoch + 1}/{cfg.epochs}: train L_ce "
                       f"{epoch_record['train_ce']:.3f}")
            if epoch_record["metrics"] is not None:
                m = epoch_record["metrics"]
                summary += (f", val L_ce {epoch_record['val_loss']:.3f}, BLEU-4 "
                            f"{m['BLEU_4']:.3f}, CIDEr {m['CIDEr']:.3f}")
            tqdm.write(f"{summary} ({epoch_record['seconds']:.0f} s)")
    _write_json(out / HISTORY_FILE, history)
    return history


def load_history(path: str | Path) -> dict[str, Any]:
    """Read a ``history.json`` written by :func:`train_captioner`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training history not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))
