"""How fast should the lens learn? A small search over the lens learning rate.

Adam moves every parameter by about its learning rate per step whatever the gradient's
scale, so a learning rate on micrometre coefficients is a speed in micrometres per step:
the released code's 5e-7 moves a lens by at most ~1e-4 um in a few hundred steps, while half
a micrometre of Z4 is about a wave of defocus. :func:`lr_search` trains the same starting
captioner with a fresh lens for a few hundred steps per candidate (the joint objective of
the profile's fine-tuning preset, ``lr_lens = lr_defocus = lr``) and records how far the
lens moved, the loss terms at the end of training, and on held-out images (camera in
evaluation mode) the caption loss, L_p and the SSIM of the private images.
:func:`choose_lr` states the rule that picked the ``quick`` preset.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from privcap.captioning.model import Captioner
from privcap.optics.config import OpticsConfig
from privcap.training.cameras import build_camera
from privcap.training.config import train_config
from privcap.training.data import collate_items
from privcap.training.evaluation import evaluation_pass
from privcap.training.io import write_json
from privcap.training.loop import Trainer

__all__ = ["DEFAULT_CANDIDATES", "choose_lr", "lr_search"]

#: candidate lens learning rates (um per Adam step); 5e-7 is the authors' released value
DEFAULT_CANDIDATES: tuple[float, ...] = (5e-7, 1e-3, 1e-2, 3e-2)


def lr_search(
    model: Captioner,
    train_data: Dataset,
    eval_data: Dataset,
    *,
    profile: str = "quick",
    camera: str = "learned-lens",
    optics_config: OpticsConfig | None = None,
    candidates: Sequence[float] = DEFAULT_CANDIDATES,
    steps: int = 100,
    batch_size: int = 8,
    num_eval_images: int = 32,
    seed: int = 0,
    out_path: str | Path | None = None,
    progress: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``steps`` steps per candidate lens learning rate and measure the lens.

    Args:
        model: the starting captioner (e.g. chapter 03's clean ``best.pt``); each candidate
            trains its own copy, the given model is not changed.
        train_data: training images (the same batches, in the same order, for every
            candidate).
        eval_data: held-out images; the first ``num_eval_images`` are scored.
        profile: whose fine-tuning preset (:func:`~privcap.training.config.train_config`
            with ``finetune=True``) gives the other settings.
        camera: ``"learned-lens"`` or ``"defocus"``.
        optics_config: the lens (default :meth:`OpticsConfig.quick`).
        candidates: lens learning rates (um per step), used for Z4 and the other terms.
        steps: optimiser steps per candidate.
        batch_size: images per step.
        num_eval_images: held-out images scored after training.
        seed: training seed (same for every candidate).
        out_path: JSON file to write (atomically).
        progress: tqdm bars.
        **overrides: further :class:`~privcap.training.config.TrainConfig` settings.

    Returns:
        ``{"profile", "camera", "steps", "batch_size", "num_eval_images", "start":
        {"ssim_mean", "val_ce", "val_p"}, "rows": [{"lr", "z4_shift_um",
        "max_shift_um", "rms_shift_um", "train_ce", "train_p", "train_h", "val_ce",
        "val_p", "ssim_mean", "seconds"}], "chosen_lr"}`` (``train_*``: means over the last
        quarter of the steps; shifts: final minus starting coefficients, Z4 apart from the
        other terms).
    """
    if camera not in ("learned-lens", "defocus"):
        raise ValueError(f"camera must be 'learned-lens' or 'defocus', got {camera!r}")
    if not candidates or any(not lr > 0 for lr in candidates):
        raise ValueError(f"candidates must be positive learning rates, got {candidates!r}")
    if steps < 1 or batch_size < 1 or num_eval_images < 1:
        raise ValueError("steps, batch_size and num_eval_images must be >= 1")
    optics = optics_config if optics_config is not None else OpticsConfig.quick()
    n_eval = min(num_eval_images, len(eval_data))  # type: ignore[arg-type]
    held_out = Subset(eval_data, list(range(n_eval)))
    settings = dict(batch_size=batch_size, seed=seed, device="cpu", **overrides)
    collate = partial(collate_items, image_size=model.config.image_size)

    def batches():
        epoch = 0
        while True:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, generator=gen,
                                drop_last=True, collate_fn=collate)
            for index, batch in enumerate(loader):
                yield epoch, index, batch
            epoch += 1

    start_cam = build_camera(camera, optics)
    cfg0 = train_config(profile, camera, finetune=True, **settings)
    start_trainer = Trainer(copy.deepcopy(model), start_cam, cfg0, device=torch.device("cpu"))
    start = _held_out(start_trainer, held_out)
    rows = []
    for lr in candidates:
        t0 = time.perf_counter()
        cam = build_camera(camera, optics)
        cfg = train_config(profile, camera, finetune=True, lr_lens=float(lr),
                           lr_defocus=float(lr), **settings)
        trainer = Trainer(copy.deepcopy(model), cam, cfg, device=torch.device("cpu"))
        before = cam.lens.coefficients_um().detach().clone()
        history = []
        stream = batches()
        for _ in _progress(range(steps), progress, f"lr {lr:g}"):
            epoch, index, batch = next(stream)
            history.append(trainer.step(batch, epoch, index))
        shift = (cam.lens.coefficients_um().detach() - before).double()
        others = torch.cat([shift[:3], shift[4:]])
        tail = history[-max(1, steps // 4):]
        evaluated = _held_out(trainer, held_out)
        rows.append({
            "lr": float(lr),
            "z4_shift_um": float(shift[3]),
            "max_shift_um": float(others.abs().max()) if others.numel() else 0.0,
            "rms_shift_um": float(others.square().mean().sqrt()) if others.numel() else 0.0,
            "train_ce": _mean(tail, "ce"),
            "train_p": _mean(tail, "p"),
            "train_h": _mean(tail, "h"),
            **evaluated,
            "seconds": time.perf_counter() - t0,
        })
    result = {"profile": profile, "camera": camera, "steps": steps, "batch_size": batch_size,
              "num_eval_images": n_eval, "seed": seed, "start": start, "rows": rows,
              "chosen_lr": choose_lr(rows, start)}
    if out_path is not None:
        write_json(out_path, result)
    return result


def choose_lr(rows: Sequence[dict[str, Any]], start: dict[str, Any],
              ce_margin: float = 0.15) -> float:
    """The selection rule: among candidates whose held-out caption loss is at most
    ``ce_margin`` nats above the starting captioner's, the one with the lowest SSIM (the
    most privacy for a bounded loss of captioning); if none qualifies, the smallest
    held-out caption loss."""
    if not rows:
        raise ValueError("no candidate rows")
    fine = [r for r in rows if r["val_ce"] <= start["val_ce"] + ce_margin]
    if fine:
        return float(min(fine, key=lambda r: (r["ssim_mean"], r["lr"]))["lr"])
    return float(min(rows, key=lambda r: r["val_ce"])["lr"])


def _held_out(trainer: Trainer, data: Dataset) -> dict[str, float]:
    run = evaluation_pass(trainer.model, data, camera=trainer.camera, captions=False,
                          with_ssim=True, weights=trainer.weights)
    return {"val_ce": run["loss"]["ce"], "val_p": run["loss"].get("p"),
            "ssim_mean": sum(run["ssim"]) / len(run["ssim"])}


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def _progress(iterable, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, disable=not enabled, leave=False)
