"""Checkpoints of a training run (camera + captioner): everything needed to resume exactly.

A run checkpoint is one ``torch.save`` file, a dict of tensors and plain Python data only
(read back with ``torch.load(weights_only=True)``, which never runs pickled code):

=====================  ==================================================================
key                    content
=====================  ==================================================================
``format``             :data:`RUN_FORMAT` (another value is refused with ``ValueError``)
``captioner``          the captioner payload of :mod:`privcap.captioning.checkpoint`
                       (config, vocabulary, fingerprint, weights): ``load_captioner``
                       reads a run checkpoint too
``camera``             ``{"spec": camera_spec(...), "state_dict": ...}``
``optimizer``          Adam's ``state_dict``
``scheduler``          the learning-rate scheduler's ``state_dict``
``scaler``             the ``GradScaler`` state (mixed precision on CUDA) or ``None``
``rng``                RNG states: torch (CPU), CUDA (all devices), numpy, python
``train_config``       :meth:`TrainConfig.to_dict`
``epoch`` / ``step``   epoch (0-based) the run is in, global optimiser steps done
``batch_in_epoch``     batches of ``epoch`` already done (0 after a finished epoch, when
                       ``epoch`` is already the next one)
``history``            the training history (as in ``history.json``)
``best_score``         best validation CIDEr so far (``-inf`` if none)
``extra``              ``{"epoch", "step", "metrics"}`` summary (what ``load_captioner``
                       returns as its second value)
=====================  ==================================================================

Data order, caption choice, dropout and read noise are functions of ``(seed, epoch, step)``
(see :mod:`privcap.training.loop`), so no sampler or caption generator state is needed; the
global RNG states are stored anyway and restored on resume.

Writes are atomic (:func:`privcap.training.io.atomic_write`): a run killed while writing
keeps its previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from privcap.captioning.checkpoint import (
    CHECKPOINT_FORMAT as CAPTIONER_FORMAT,
)
from privcap.captioning.checkpoint import (
    captioner_payload,
    load_captioner,
    load_checkpoint_file,
    vocab_path_for,
)
from privcap.captioning.model import Captioner
from privcap.training.cameras import camera_from_spec, camera_spec, check_kind
from privcap.training.io import atomic_write

__all__ = [
    "RUN_FORMAT",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
    "get_rng_state",
    "set_rng_state",
    "save_run_checkpoint",
    "read_run_checkpoint",
    "load_run",
    "resolve_checkpoint",
    "run_payload_camera",
    "run_payload_captioner",
]

#: format tag of a run checkpoint; bump it when the layout changes
RUN_FORMAT = "privcap-run/1"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
_REQUIRED = ("captioner", "camera", "optimizer", "scheduler", "rng", "train_config", "epoch",
             "step", "batch_in_epoch", "history", "best_score")


def get_rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and plain data (``weights_only``-loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "python": [int(version), [int(v) for v in internal], gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`get_rng_state`'s states."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_run_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a run checkpoint atomically (temporary file, fsync, ``os.replace``).

    ``payload`` holds the keys of the module table (``format`` is added); a vocabulary file
    ``<stem>.vocab.json`` is written next to it for inspection.
    """
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"run checkpoint payload lacks {missing}")
    data = {"format": RUN_FORMAT, **payload}
    buffer = io.BytesIO()
    torch.save(data, buffer)
    path = atomic_write(path, lambda f: f.write(buffer.getbuffer()))
    text = json.dumps(payload["captioner"]["vocab"], indent=1)
    atomic_write(vocab_path_for(path), lambda f: f.write(text.encode("utf-8")))
    return path


def read_run_checkpoint(
    path: str | Path,
    *,
    camera_kind: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """A run checkpoint's dict, checked: ``FileNotFoundError`` if absent, ``ValueError`` if
    unreadable, of another format version, incomplete, or (with ``camera_kind``) holding
    another kind of camera."""
    path = Path(path)
    payload = load_checkpoint_file(path, "run checkpoint", map_location)
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found != RUN_FORMAT:
        hint = (" (a captioner-only checkpoint: pass it as init_from / --init-from)"
                if found == CAPTIONER_FORMAT else "")
        raise ValueError(
            f"{path} is not a run checkpoint of format {RUN_FORMAT!r} (found {found!r}){hint}"
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"run checkpoint {path} is incomplete: missing {missing}")
    stored = payload["camera"]["spec"].get("kind")
    if camera_kind is not None and stored != check_kind(camera_kind):
        raise ValueError(
            f"run checkpoint {path} holds a {stored!r} camera, not the requested "
            f"{camera_kind!r}; use another output folder or the matching camera"
        )
    return payload


def resolve_checkpoint(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file: ``path`` itself, or ``path/<which>.pt`` for a run folder."""
    path = Path(path)
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    if path.is_dir():
        file = path / (LAST_CHECKPOINT if which == "last" else BEST_CHECKPOINT)
        if not file.is_file():
            raise FileNotFoundError(f"run folder {path} has no {file.name}")
        return file
    if not path.exists():
        raise FileNotFoundError(f"checkpoint or run folder not found: {path}")
    return path


def load_run(
    path: str | Path,
    *,
    which: str = "last",
    camera_kind: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[Captioner, nn.Module, dict[str, Any]]:
    """Captioner and camera of a run checkpoint (a file, or a run folder's ``last.pt`` /
    ``best.pt``), both in evaluation mode, and the checkpoint's dict."""
    file = resolve_checkpoint(path, which)
    payload = read_run_checkpoint(file, camera_kind=camera_kind, map_location=map_location)
    model, _ = load_captioner(file, map_location=map_location)
    camera = camera_from_spec(payload["camera"]["spec"])
    try:
        camera.load_state_dict(payload["camera"]["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"run checkpoint {file}: camera weights do not match its spec: {err}") \
            from err
    camera.to(map_location)
    return model.eval(), camera.eval(), payload


def run_payload_captioner(model: Captioner) -> dict[str, Any]:
    """The ``"captioner"`` entry of a run checkpoint."""
    return captioner_payload(model)


def run_payload_camera(camera: nn.Module) -> dict[str, Any]:
    """The ``"camera"`` entry of a run checkpoint."""
    return {"spec": camera_spec(camera), "state_dict": camera.state_dict()}
