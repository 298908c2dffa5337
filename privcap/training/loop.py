"""The training loop: camera and captioner trained together on the joint objective.

:func:`train` minimises ``w_ce L_ce + ds_lambda L_d + w_p L_p + w_h L_H`` (paper Eqs. 6-9,
:mod:`privcap.training.objective`) over the captioner's weights and the camera's learnable
coefficients (Adam; Z4 and the other Zernike terms with their own learning rates; the lens
projected onto its coefficient bounds after every step). Per epoch it validates (camera in
evaluation mode: no read noise), and writes under ``out_dir``:

- ``metrics.jsonl``: one JSON line per finished epoch (losses, validation metrics, SSIM);
- ``history.json``: every step's loss terms, every epoch's record, camera snapshots (Zernike
  coefficients and central PSF crops at a few points of training);
- ``last.pt`` (every epoch, and every ``checkpoint_every_steps`` steps) and ``best.pt`` (best
  validation CIDEr): run checkpoints (:mod:`privcap.training.checkpoint`).

Reproducibility and resume: the data order of epoch ``e`` is the permutation a
``DistributedSampler`` draws from ``(seed, e)``; each image's captions are chosen from
``(seed, e, image id)``; before step ``s`` of epoch ``e`` the global torch generator is
seeded from ``(seed, e, s, rank)``, which fixes dropout and read noise. A run killed at any
point and resumed from ``last.pt`` (``resume=True``) therefore repeats exactly what the
uninterrupted run does (same device, threads and process count).

Several processes: started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), each
takes ``batch_size / WORLD_SIZE`` images of every global batch; camera and captioner are one
module under ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA), so the camera's
gradients are averaged with the captioner's. The caption loss is scaled so that the averaged
gradient is that of the per-token mean over all processes. Only rank 0 validates and writes
files. Mixed precision (``torch.autocast`` + ``GradScaler``) is used for the captioner on
CUDA when ``config.amp``; the optics stay in float32.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from privcap.captioning.checkpoint import load_captioner
from privcap.captioning.model import Captioner
from privcap.metrics import score_captions
from privcap.optics.camera import IdentityCamera, LensCamera
from privcap.optics.lens import Lens
from privcap.paths import results_dir
from privcap.training.cameras import camera_kind, camera_snapshot, camera_spec, has_psf
from privcap.training.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    get_rng_state,
    read_run_checkpoint,
    run_payload_camera,
    run_payload_captioner,
    save_run_checkpoint,
    set_rng_state,
)
from privcap.training.config import TrainConfig, resolve_device, train_config
from privcap.training.data import collate_items, dataset_references, select_captions
from privcap.training.evaluation import evaluation_pass
from privcap.training.io import load_json, write_json, write_jsonl
from privcap.training.objective import JointModel, LossWeights, encode_captions, joint_objective

__all__ = [
    "HISTORY_FILE",
    "METRICS_FILE",
    "Trainer",
    "load_history",
    "step_seed",
    "train",
    "train_captioner",
]

HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.jsonl"
HISTORY_FORMAT = "privcap-history/1"
#: training-config fields that may change when a run is resumed
RESUMABLE_CHANGES = frozenset({"epochs", "device", "num_workers", "checkpoint_every_steps"})
#: PSF crops recorded at this many evenly spaced points of training (plus the start)
PSF_SNAPSHOTS = 8
TERMS = ("total", "ce", "ds", "p", "h")


def step_seed(seed: int, epoch: int, batch_index: int, rank: int = 0) -> int:
    """Seed of the torch generator before a step (dropout, read noise)."""
    return (((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(batch_index)) * 101
            + int(rank)) % (2**63)


# ----------------------------------------------------------------------------- processes
class _Processes:
    """Rank and world size, from torchrun's environment; the process group when needed."""

    def __init__(self, backend: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group(backend=backend)
            self.owns_group = True
        if self.world > 1 and dist.get_world_size() != self.world:
            raise ValueError(f"WORLD_SIZE={self.world} but the process group has "
                             f"{dist.get_world_size()} processes")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over processes (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64, device=device)
        if self.distributed:
            dist.all_reduce(t)
        return t.tolist()

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()


class _EpochBatches:
    """Batches of one epoch (lists of data-set indices) for one process, from a
    ``DistributedSampler`` seeded with the training seed; the first ``skip`` are left out."""

    def __init__(self, sampler: DistributedSampler, batch: int, drop_last: bool,
                 skip: int = 0) -> None:
        self.indices = list(iter(sampler))
        self.batch = batch
        n = len(self.indices)
        self.count = n // batch if drop_last else math.ceil(n / batch)
        self.skip = skip

    def __len__(self) -> int:
        return max(self.count - self.skip, 0)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.skip, self.count):
            yield self.indices[b * self.batch : (b + 1) * self.batch]


# ----------------------------------------------------------------------------- one step
class Trainer:
    """Camera + captioner, optimiser, scheduler and the step of :func:`train`.

    Args:
        model: the captioner.
        camera: a camera of :data:`~privcap.training.cameras.CAMERA_KINDS` (its kind must
            be ``config.camera``).
        config: the optimisation settings.
        device: where to train (default: ``config.device`` resolved).
        processes: internal (rank / world size).
    """

    def __init__(self, model: Captioner, camera: nn.Module, config: TrainConfig, *,
                 device: torch.device | None = None, processes: _Processes | None = None
                 ) -> None:
        kind = camera_kind(camera)
        if kind != config.camera:
            raise ValueError(
                f"the camera is {kind!r} but the training config says {config.camera!r}"
            )
        self.config = config
        self.model = model
        self.camera = camera
        self.procs = processes or _Processes("gloo")
        local = self.procs.local_rank if self.procs.distributed else None
        self.device = device if device is not None else resolve_device(config.device, local)
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # nccl collectives use the current device
        self.amp = bool(config.amp and self.device.type == "cuda")
        self.joint = JointModel(model, camera, torch.float16 if self.amp else None)
        self.joint.to(self.device)
        self.weights = LossWeights.from_config(config, camera)
        if self.procs.distributed:
            if self.device.type == "cuda" and config.sync_batchnorm:
                self.joint = nn.SyncBatchNorm.convert_sync_batchnorm(self.joint)
            self.module: nn.Module = nn.parallel.DistributedDataParallel(
                self.joint, device_ids=[self.device.index] if self.device.type == "cuda"
                else None,
            )
        else:
            self.module = self.joint
        self.groups = self._param_groups()
        self.optimizer = torch.optim.Adam(self.groups)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer,
                                                                gamma=config.lr_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.captioner_params = [p for p in model.parameters() if p.requires_grad]

    @property
    def lens(self) -> Lens | None:
        return self.camera.lens if isinstance(self.camera, LensCamera) else None

    def _param_groups(self) -> list[dict[str, Any]]:
        cfg, model = self.config, self.model
        groups = [
            {"params": [p for p in model.encoder.parameters() if p.requires_grad],
             "lr": cfg.lr_encoder, "weight_decay": cfg.weight_decay, "name": "encoder"},
            {"params": [p for p in model.decoder.parameters() if p.requires_grad],
             "lr": cfg.lr_decoder, "weight_decay": cfg.weight_decay, "name": "decoder"},
        ]
        lens = self.lens
        if lens is not None:
            if lens.coefficients.requires_grad and lens.coefficients.numel():
                groups.append({"params": [lens.coefficients], "lr": cfg.lr_lens,
                               "weight_decay": 0.0, "name": "lens"})
            if lens.defocus is not None:
                groups.append({"params": [lens.defocus], "lr": cfg.lr_defocus,
                               "weight_decay": 0.0, "name": "defocus"})
        return [g for g in groups if g["params"]]

    def lrs(self) -> dict[str, float]:
        return {g["name"]: float(g["lr"]) for g in self.optimizer.param_groups}

    def step(self, batch: dict[str, Any], epoch: int, batch_index: int) -> dict[str, Any]:
        """One optimiser step on ``batch`` (this process's share of a global batch);
        returns the loss terms of the whole global batch as floats."""
        cfg, procs = self.config, self.procs
        torch.manual_seed(step_seed(cfg.seed, epoch, batch_index, procs.rank))
        self.joint.train()
        scene = batch["image"].to(self.device, non_blocking=True)
        flat, owner = select_captions(batch["captions"], batch["image_id"].tolist(),
                                      cfg.captions_per_image, seed=cfg.seed, epoch=epoch)
        vocab = self.model.vocab
        ids = encode_captions(vocab, flat, self.device)
        index = torch.tensor(owner, device=self.device, dtype=torch.long)
        n_tokens = int((ids[:, 1:] != vocab.pad_id).sum())
        n_captions = len(flat)
        tokens_all, captions_all = procs.sum([n_tokens, n_captions], self.device)
        ce_share = n_tokens * procs.world / tokens_all
        out = self.module(scene, ids, index)
        total, terms = joint_objective(out, scene, ids, vocab.pad_id, self.weights,
                                       has_distortion=self.joint.has_distortion_term,
                                       ce_share=ce_share)
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"loss is not finite at epoch {epoch + 1}, batch {batch_index + 1}: {terms}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.captioner_params, cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.lens is not None:
            self.lens.project_()
        return self._global_terms(terms, n_tokens, n_captions, tokens_all, captions_all)

    def _global_terms(self, terms: dict[str, Any], n_tokens: int, n_captions: int,
                      tokens_all: float, captions_all: float) -> dict[str, Any]:
        """Per-token mean L_ce, per-caption mean L_d, mean L_p and L_H over all processes."""
        if not self.procs.distributed:
            return terms
        present = [k for k in ("p", "h") if terms[k] is not None]
        sums = self.procs.sum(
            [terms["ce"] * n_tokens, terms["ds"] * n_captions]
            + [terms[k] for k in present], self.device,
        )
        out = dict(terms)
        out["ce"] = sums[0] / tokens_all
        out["ds"] = sums[1] / captions_all
        for k, v in zip(present, sums[2:], strict=True):
            out[k] = v / self.procs.world
        w = self.weights
        out["total"] = (w.w_ce * out["ce"] + w.ds_lambda * out["ds"]
                        + (w.w_p * out["p"] if out["p"] is not None else 0.0)
                        + (w.w_h * out["h"] if out["h"] is not None else 0.0))
        out["tokens"] = int(tokens_all)
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "captioner": run_payload_captioner(self.model),
            "camera": run_payload_camera(self.camera),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "rng": get_rng_state(),
            "train_config": self.config.to_dict(),
        }

    def load_state(self, payload: dict[str, Any], path: Path) -> None:
        stored = payload["captioner"]
        if stored["vocab_fingerprint"] != self.model.vocab.fingerprint():
            raise ValueError(f"cannot resume from {path}: vocabulary mismatch (the run was "
                             "trained with another vocabulary)")
        if stored["config"] != self.model.config.to_dict():
            raise ValueError(f"cannot resume from {path}: the captioner config differs")
        old = {k: v for k, v in payload["train_config"].items() if k not in RESUMABLE_CHANGES}
        new = {k: v for k, v in self.config.to_dict().items() if k not in RESUMABLE_CHANGES}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(
                f"cannot resume from {path}: training settings differ in {diff} (only "
                f"{sorted(RESUMABLE_CHANGES)} may change)"
            )
        self.model.load_state_dict(stored["state_dict"])
        self.camera.load_state_dict(payload["camera"]["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.amp and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        set_rng_state(payload["rng"])


# ----------------------------------------------------------------------------- the loop
def _snapshot_steps(total_steps: int) -> set[int]:
    return {round(k * total_steps / PSF_SNAPSHOTS) for k in range(PSF_SNAPSHOTS + 1)}


def _psf_crop_px(camera: nn.Module) -> int | None:
    if not has_psf(camera):
        return None
    radius = float(camera.config.psf_radius_px)
    return int(2 * math.ceil(2 * radius) + 1)


def _epoch_means(steps: list[dict[str, Any]], epoch: int) -> dict[str, float | None]:
    rows = [s for s in steps if s["epoch"] == epoch]
    out: dict[str, float | None] = {}
    for key in TERMS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = sum(values) / len(values) if values else None
    return out


def _init_from(model: Captioner, path: str | Path, device: torch.device) -> None:
    base, _ = load_captioner(path, vocab=model.vocab, map_location=device)
    try:
        model.load_state_dict(base.state_dict())
    except RuntimeError as err:
        raise ValueError(f"init_from={str(path)!r}: the captioner in it has another "
                         f"architecture than the one given ({err})") from err


def train(
    model: Captioner,
    camera: nn.Module,
    train_data: Dataset,
    val_data: Dataset | None,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    init_from: str | Path | None = None,
    progress: bool = True,
    profile: str | None = None,
    data_info: dict[str, Any] | None = None,
    log_epochs: bool = True,
) -> dict[str, Any]:
    """Train ``camera`` and ``model`` together; validate, log and checkpoint every epoch.

    Args:
        model: the captioner (its vocabulary encodes the training captions).
        camera: a camera of :func:`~privcap.training.cameras.build_camera` whose kind is
            ``config.camera`` (``no-lens``: the captioner alone on clean images).
        train_data: items ``{"image", "captions", "image_id"}``, images in ``[0, 1]``.
        val_data: validation items (captions generated with ``config.val_beam_size`` and
            scored every epoch); ``None`` skips validation.
        config: :class:`~privcap.training.config.TrainConfig`.
        out_dir: folder of ``metrics.jsonl``, ``history.json``, ``last.pt``, ``best.pt``.
        resume: continue from ``out_dir/last.pt`` when it exists (same vocabulary, camera
            kind and settings except ``epochs`` / ``device`` / ``num_workers`` /
            ``checkpoint_every_steps``); otherwise start afresh.
        init_from: a captioner checkpoint (e.g. chapter 03's clean ``best.pt``, or a run
            checkpoint) whose weights the captioner starts from: the fine-tuning recipe of
            Table 1. Ignored when the run resumes from ``last.pt``.
        progress: tqdm bars over epochs and over the batches of each epoch.
        profile: recorded in the history.
        data_info: description of the data, recorded in the history.
        log_epochs: print one line per epoch.

    Returns:
        The history (also in ``out_dir/history.json``): ``{"format", "profile", "camera"
        (spec), "captioner_config", "train_config", "vocab_size", "num_train_images",
        "num_val_images", "world_size", "init_from", "data", "steps": [{"step", "epoch",
        "total", "ce", "ds", "p", "h", "tokens"}], "epochs": [{"epoch", "train_loss",
        "train_ce", "train": {term means}, "lr", "val_loss", "val": {term means}, "metrics",
        "ssim_mean", "ssim_std", "examples", "seconds", "cpu_seconds"}],
        "camera_snapshots": [{"step", "epoch", "coefficients_um", "psf_crop"?}],
        "best_epoch", "checkpoints"}``.
        Losses of the terms a camera lacks are ``None``.
    """
    cfg = config
    if len(train_data) == 0:  # type: ignore[arg-type]
        raise ValueError("train_data is empty")
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    procs = _Processes("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(model, camera, train_data, val_data, cfg, out, procs, resume=resume,
                      init_from=init_from, progress=progress, profile=profile,
                      data_info=data_info, log_epochs=log_epochs)
    finally:
        procs.close()


def _train(model, camera, train_data, val_data, cfg, out, procs, *, resume, init_from,
           progress, profile, data_info, log_epochs) -> dict[str, Any]:
    if cfg.batch_size % procs.world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the "
                         f"{procs.world} processes")
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, camera, cfg, processes=procs)
    device = trainer.device
    last_path, best_path = out / LAST_CHECKPOINT, out / BEST_CHECKPOINT
    n_train = len(train_data)  # type: ignore[arg-type]
    history: dict[str, Any] = {
        "format": HISTORY_FORMAT,
        "profile": profile,
        "camera": camera_spec(camera),
        "captioner_config": model.config.to_dict(),
        "train_config": cfg.to_dict(),
        "vocab_size": len(model.vocab),
        "num_train_images": n_train,
        "num_val_images": len(val_data) if val_data is not None else 0,  # type: ignore
        "world_size": procs.world,
        "init_from": None if init_from is None else str(init_from),
        "data": data_info,
        "steps": [],
        "epochs": [],
        "camera_snapshots": [],
        "best_epoch": None,
        "checkpoints": {"last": str(last_path), "best": str(best_path)},
    }
    start_epoch, skip, step, best_score = 0, 0, 0, -math.inf
    if resume and last_path.is_file():
        payload = read_run_checkpoint(last_path, camera_kind=cfg.camera, map_location=device)
        trainer.load_state(payload, last_path)
        history = payload["history"]
        history["train_config"] = cfg.to_dict()
        start_epoch, skip = int(payload["epoch"]), int(payload["batch_in_epoch"])
        step, best_score = int(payload["step"]), float(payload["best_score"])
        if procs.main:  # the files may be behind the checkpoint if the run died in between
            write_json(out / HISTORY_FILE, history)
            write_jsonl(out / METRICS_FILE, history["epochs"])
    elif init_from is not None:
        _init_from(model, init_from, device)

    per_rank = cfg.batch_size // procs.world
    drop_last = n_train >= cfg.batch_size
    sampler = DistributedSampler(train_data, num_replicas=procs.world, rank=procs.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    steps_per_epoch = len(_EpochBatches(sampler, per_rank, drop_last))
    snapshot_at = _snapshot_steps(cfg.epochs * steps_per_epoch)
    crop = _psf_crop_px(camera)
    collate = partial(collate_items, image_size=model.config.image_size)

    def snapshot(epoch_progress: float, with_psf: bool) -> None:
        if has_psf(camera):
            record = {"step": step, "epoch": round(epoch_progress, 4),
                      **camera_snapshot(camera, crop if with_psf else None)}
            snaps = history["camera_snapshots"]
            if snaps and snaps[-1]["step"] == step:
                snaps[-1].update(record)
            else:
                snaps.append(record)

    def save_last(epoch: int, batch_in_epoch: int) -> None:
        if procs.main:
            save_run_checkpoint(last_path, {
                **trainer.state(), "epoch": epoch, "step": step,
                "batch_in_epoch": batch_in_epoch, "history": history,
                "best_score": best_score,
                "extra": {"epoch": epoch, "step": step, "metrics": None},
            })

    if step == 0 and not history["camera_snapshots"]:
        snapshot(0.0, True)
    epochs_bar = tqdm(range(start_epoch, cfg.epochs), desc="epochs", initial=start_epoch,
                      total=cfg.epochs, disable=not (progress and procs.main))
    for epoch in epochs_bar:
        sampler.set_epoch(epoch)
        batches = _EpochBatches(sampler, per_rank, drop_last, skip=skip)
        loader = DataLoader(train_data, batch_sampler=batches, collate_fn=collate,
                            num_workers=cfg.num_workers)
        t0, c0 = time.perf_counter(), time.process_time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", initial=skip,
                   total=batches.count, leave=False, disable=not (progress and procs.main))
        for batch_index, batch in enumerate(bar, start=skip):
            terms = trainer.step(batch, epoch, batch_index)
            step += 1
            history["steps"].append({"step": step, "epoch": epoch + 1, **terms})
            bar.set_postfix(loss=f"{terms['total']:.3f}", ce=f"{terms['ce']:.3f}")
            if step in snapshot_at:
                snapshot(epoch + (batch_index + 1) / batches.count, True)
            every = cfg.checkpoint_every_steps
            if every and step % every == 0 and batch_index + 1 < batches.count:
                save_last(epoch, batch_index + 1)
        skip = 0
        lrs = trainer.lrs()
        trainer.scheduler.step()
        snapshot(epoch + 1.0, False)

        record: dict[str, Any] | None = None
        if procs.main:
            means = _epoch_means(history["steps"], epoch + 1)
            record = {"epoch": epoch + 1, "train_loss": means["total"],
                      "train_ce": means["ce"], "train": means, "lr": lrs, "val_loss": None,
                      "val": None, "metrics": None, "ssim_mean": None, "ssim_std": None}
            if val_data is not None:
                record.update(_validate(trainer, val_data, epoch))
            record["seconds"] = time.perf_counter() - t0
            record["cpu_seconds"] = time.process_time() - c0
        record = procs.share(record)
        history["epochs"].append(record)
        score = (record["metrics"]["CIDEr"] if record["metrics"] is not None
                 else -record["train_loss"])
        is_best = score > best_score
        if is_best:
            best_score = score
            history["best_epoch"] = epoch + 1
        if procs.main:
            if is_best:  # best first: a kill before last.pt repeats this epoch identically
                save_run_checkpoint(best_path, {
                    **trainer.state(), "epoch": epoch + 1, "step": step, "batch_in_epoch": 0,
                    "history": history, "best_score": best_score,
                    "extra": {"epoch": epoch, "step": step, "metrics": record["metrics"]},
                })
            save_last(epoch + 1, 0)
            write_json(out / HISTORY_FILE, history)
            write_jsonl(out / METRICS_FILE, history["epochs"])
            if log_epochs:
                tqdm.write(_summary_line(record, cfg.epochs))
        procs.barrier()
    if procs.main:
        write_json(out / HISTORY_FILE, history)
    return history


def _validate(trainer: Trainer, val_data: Dataset, epoch: int) -> dict[str, Any]:
    cfg = trainer.config
    run = evaluation_pass(trainer.model, val_data, camera=trainer.camera, with_ssim=True,
                          weights=trainer.weights, beam_size=cfg.val_beam_size)
    with_meteor = cfg.val_meteor and ((epoch + 1) % cfg.val_meteor_every == 0
                                      or epoch + 1 == cfg.epochs)
    metrics = score_captions(dataset_references(val_data), run["captions"], meteor=with_meteor)
    ssims = torch.tensor(run["ssim"], dtype=torch.float64)
    loss = dict(run["loss"])
    loss["total"] = sum(w * loss[k] for k, w in (
        ("ce", trainer.weights.w_ce), ("ds", trainer.weights.ds_lambda),
        ("p", trainer.weights.w_p), ("h", trainer.weights.w_h)) if k in loss)
    return {
        "val_loss": loss["ce"],
        "val": {k: loss.get(k) for k in TERMS},
        "metrics": metrics,
        "ssim_mean": float(ssims.mean()),
        "ssim_std": float(ssims.std(unbiased=False)),
        "examples": {str(k): v for k, v in list(run["captions"].items())[:5]},
    }


def _summary_line(record: dict[str, Any], epochs: int) -> str:
    line = f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.3f}"
    line += f" (L_ce {record['train_ce']:.3f})"
    if record["metrics"] is not None:
        m = record["metrics"]
        line += (f", val L_ce {record['val_loss']:.3f}, BLEU-4 {m['BLEU_4']:.3f}, CIDEr "
                 f"{m['CIDEr']:.3f}, SSIM {record['ssim_mean']:.3f}")
    return line + f" ({record['seconds']:.0f} s)"


def train_captioner(
    model: Captioner,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    config: TrainConfig | None = None,
    profile: str = "quick",
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log_epochs: bool = True,
) -> dict[str, Any]:
    """:func:`train` with no lens: the captioner on clean images ("Proposed-w"), results in
    ``results/<profile>/captioner`` unless ``out_dir`` is given, settings
    ``train_config(profile)`` unless ``config`` is given."""
    cfg = config if config is not None else train_config(profile)
    out = Path(out_dir) if out_dir is not None else results_dir(profile, "captioner")
    return train(model, IdentityCamera(), train_data, val_data, cfg, out, resume=resume,
                 progress=progress, profile=profile, log_epochs=log_epochs)


def load_history(path: str | Path) -> dict[str, Any]:
    """Read a ``history.json`` written by :func:`train` (a file or its run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / HISTORY_FILE
    return load_json(path, "training history")
