"""Evaluation of a captioner behind a camera: captions, COCO metrics, validation loss, SSIM
of the private images, chance levels and beam-size sweeps.

Cameras are evaluated in evaluation mode (no read noise) and restored to their mode
afterwards; the captioner likewise.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from privcap.captioning.model import Captioner
from privcap.metrics import score_captions, ssim
from privcap.optics.camera import IdentityCamera
from privcap.training.data import collate_items, dataset_references
from privcap.training.io import write_json
from privcap.training.objective import (
    JointModel,
    JointOutput,
    LossWeights,
    encode_captions,
    joint_objective,
)

__all__ = [
    "beam_size_sweep",
    "caption_dataset",
    "evaluate_camera_run",
    "evaluate_captioner",
    "evaluation_pass",
    "random_caption_baseline",
    "validation_loss",
]


@contextmanager
def eval_mode(*modules: nn.Module | None):
    """Put modules in evaluation mode for a block, then restore each one's mode."""
    present = [m for m in modules if m is not None]
    modes = [m.training for m in present]
    try:
        for m in present:
            m.eval()
        yield
    finally:
        for m, mode in zip(present, modes, strict=True):
            m.train(mode)


def _loader(dataset: Dataset, model: Captioner, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False,
                      collate_fn=partial(collate_items, image_size=model.config.image_size))


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def caption_dataset(
    model: Captioner,
    dataset: Dataset,
    *,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    batch_size: int = 64,
    camera: nn.Module | None = None,
    progress: bool = False,
) -> dict[Any, str]:
    """``{image_id: generated caption}`` for every item of ``dataset``, through ``camera``
    (in evaluation mode) when one is given. ``beam_size`` and ``length_penalty`` default to
    the model's config (1 = greedy). Runs on the model's device."""
    return evaluation_pass(model, dataset, camera=camera, beam_size=beam_size,
                           length_penalty=length_penalty, batch_size=batch_size,
                           progress=progress)["captions"]


@torch.no_grad()
def evaluation_pass(
    model: Captioner,
    dataset: Dataset,
    *,
    camera: nn.Module | None = None,
    captions: bool = True,
    with_ssim: bool = False,
    weights: LossWeights | None = None,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """One pass over ``dataset`` in evaluation mode, each image sensed and encoded once.

    Returns ``{"captions": {image_id: caption}}`` (with ``captions``), ``"ssim"`` (per image,
    sensor clipped to [0, 1] against the scene; with ``with_ssim``) and ``"loss"`` (with
    ``weights``: the token-weighted means of the terms ``ce``, ``ds``, ``p``, ``h`` of
    :func:`~privcap.training.objective.joint_objective` over every caption of every image).
    """
    device = _device_of(model)
    camera = camera if camera is not None else IdentityCamera()
    joint = JointModel(model, camera)
    out: dict[str, Any] = {}
    generated: dict[Any, str] = {}
    ssims: list[float] = []
    sums: dict[str, float] = {}
    tokens = 0
    with eval_mode(model, camera):
        for batch in tqdm(_loader(dataset, model, batch_size), desc="evaluating",
                          disable=not progress, leave=False):
            scene = batch["image"].to(device)
            sensor, psf = joint.sense(scene)
            if with_ssim:
                ssims += ssim(sensor.clamp(0, 1), scene).reshape(-1).tolist()
            feats = model.encode(sensor)
            if weights is not None:
                flat = [c for caps in batch["captions"] for c in caps]
                index = torch.tensor(
                    [i for i, caps in enumerate(batch["captions"]) for _ in caps], device=device
                )
                ids = encode_captions(model.vocab, flat, device)
                logits, alphas = model.decoder(feats.regions[index], feats.mean[index],
                                               ids[:, :-1])
                _, terms = joint_objective(
                    JointOutput(sensor, psf, logits, alphas), scene, ids, model.vocab.pad_id,
                    weights, has_distortion=joint.has_distortion_term,
                )
                n = int(terms["tokens"])
                tokens += n
                for key in ("ce", "ds", "p", "h"):
                    if terms[key] is not None:
                        sums[key] = sums.get(key, 0.0) + float(terms[key]) * n
            if captions:
                gen = model.decode_features(feats, beam_size=beam_size,
                                            length_penalty=length_penalty)
                for b, image_id in enumerate(batch["image_id"].tolist()):
                    words = [model.vocab.words[int(i)]
                             for i in gen.tokens[b, : int(gen.lengths[b])]]
                    generated[image_id] = " ".join(words)
    if captions:
        out["captions"] = generated
    if with_ssim:
        out["ssim"] = ssims
    if weights is not None:
        out["loss"] = {k: v / max(tokens, 1) for k, v in sums.items()}
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
    progress: bool = False,
) -> tuple[dict[str, float | None], dict[Any, str]]:
    """Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr; :func:`privcap.metrics.
    score_captions`) of ``model`` on ``dataset`` behind ``camera``, and the candidates."""
    candidates = caption_dataset(model, dataset, beam_size=beam_size,
                                 length_penalty=length_penalty, batch_size=batch_size,
                                 camera=camera, progress=progress)
    metrics = score_captions(dataset_references(dataset), candidates, meteor=meteor)
    return metrics, candidates


def evaluate_camera_run(
    model: Captioner,
    camera: nn.Module,
    dataset: Dataset,
    *,
    beam_size: int | None = None,
    length_penalty: float | None = None,
    meteor: bool = True,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Caption metrics and privacy of a trained camera + captioner on ``dataset``.

    The camera is in evaluation mode (no read noise). SSIM (:func:`privcap.metrics.ssim`)
    compares each sensor image (clipped to [0, 1]) with its scene; 1 means the camera hides
    nothing.

    Returns:
        ``{"metrics": {BLEU_1.., CIDEr}, "SSIM_mean", "SSIM_std" (over images),
        "ssim": [per image], "n_images", "captions": {image_id: caption}}``.
    """
    run = evaluation_pass(model, dataset, camera=camera, with_ssim=True, beam_size=beam_size,
                          length_penalty=length_penalty, batch_size=batch_size,
                          progress=progress)
    metrics = score_captions(dataset_references(dataset), run["captions"], meteor=meteor)
    values = np.asarray(run["ssim"], dtype=np.float64)
    return {
        "metrics": metrics,
        "SSIM_mean": float(values.mean()),
        "SSIM_std": float(values.std()),
        "ssim": [float(v) for v in values],
        "n_images": len(values),
        "captions": run["captions"],
    }


def validation_loss(
    model: Captioner,
    dataset: Dataset,
    *,
    ds_lambda: float,
    batch_size: int = 64,
    camera: nn.Module | None = None,
) -> float:
    """Token-weighted mean ``L_ce`` over all captions of ``dataset`` (evaluation mode)."""
    run = evaluation_pass(model, dataset, camera=camera, captions=False,
                          weights=LossWeights(ds_lambda=ds_lambda), batch_size=batch_size)
    return run["loss"]["ce"]


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


def beam_size_sweep(
    model: Captioner,
    dataset: Dataset,
    beam_sizes: Sequence[int],
    *,
    out_path: str | Path | None = None,
    meteor: bool = True,
    length_penalty: float | None = None,
    camera: nn.Module | None = None,
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
            camera=camera,
        )
        lengths = [len(c.split()) for c in candidates.values()]
        rows.append({
            "beam_size": int(beam),
            "metrics": metrics,
            "mean_length_words": float(np.mean(lengths)),
            "distinct_captions": len(set(candidates.values())),
            "seconds": time.perf_counter() - start,
        })
    result = {"num_images": len(dataset), "length_penalty": penalty,  # type: ignore[arg-type]
              "rows": rows}
    if out_path is not None:
        write_json(Path(out_path), result)
    return result
