"""Saving and loading captioners together with their configuration and vocabulary.

A checkpoint is one ``torch.save`` file holding the format tag, the
:class:`~privcap.captioning.model.CaptionerConfig`, the vocabulary (as JSON-compatible data,
plus its fingerprint) and the weights; anything else (optimiser state, epoch, history) can
ride along in ``extra``. The vocabulary is also written next to the checkpoint as
``<name>.vocab.json`` for inspection.

Word ids are meaningful only with the vocabulary the weights were trained with: loading with
a different vocabulary is refused with an error that says how the two differ.

Checkpoints are read with ``torch.load(weights_only=True)``: they hold only tensors and plain
Python data (no pickled objects), so loading one never runs code. A checkpoint of a larger
run (e.g. a camera + captioner training run of :mod:`privcap.training`) that embeds a
captioner payload under the key ``"captioner"`` loads here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from privcap.captioning.model import Captioner, CaptionerConfig
from privcap.captioning.vocab import Vocabulary

CHECKPOINT_FORMAT = "privcap-captioner/1"


def vocab_path_for(checkpoint_path: str | Path) -> Path:
    """``<checkpoint stem>.vocab.json`` next to a checkpoint."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".vocab.json")


def describe_vocab_difference(expected: Vocabulary, given: Vocabulary) -> str:
    """Human-readable first difference between two vocabularies."""
    if len(expected) != len(given):
        return f"{len(expected)} words in the checkpoint vs {len(given)} given"
    if expected.max_len != given.max_len:
        return f"max_len {expected.max_len} in the checkpoint vs {given.max_len} given"
    for i, (a, b) in enumerate(zip(expected.words, given.words, strict=True)):
        if a != b:
            return f"id {i} is {a!r} in the checkpoint but {b!r} in the given vocabulary"
    return "no difference"


def captioner_payload(model: Captioner) -> dict[str, Any]:
    """Format tag, config, vocabulary (+ fingerprint) and weights of ``model`` as plain data."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "vocab": model.vocab.to_dict(),
        "vocab_fingerprint": model.vocab.fingerprint(),
        "state_dict": model.state_dict(),
    }


def save_captioner(
    model: Captioner, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (config, vocabulary, weights) and ``extra`` (plain data and tensors
    only) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**captioner_payload(model), "extra": dict(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a half-written checkpoint
    model.vocab.save(vocab_path_for(path))
    return path


def load_checkpoint_file(
    path: str | Path, what: str, map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``: ``FileNotFoundError`` naming ``what`` when
    the file is absent, ``ValueError`` when it cannot be read (any unpickling failure)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{what} {path} cannot be read: {err}") from err


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Raw checkpoint dict of :func:`save_captioner` (or the ``"captioner"`` payload embedded
    in a larger checkpoint, with that checkpoint's ``"extra"``), format-checked."""
    path = Path(path)
    payload = load_checkpoint_file(path, "captioner checkpoint", map_location)
    embedded = payload.get("captioner") if isinstance(payload, dict) else None
    if isinstance(embedded, dict) and embedded.get("format") == CHECKPOINT_FORMAT:
        payload = {**embedded, "extra": dict(payload.get("extra") or {})}
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a captioner checkpoint (format {found!r}, "
            f"expected {CHECKPOINT_FORMAT!r})"
        )
    return payload


def load_captioner(
    path: str | Path,
    vocab: Vocabulary | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[Captioner, dict[str, Any]]:
    """Captioner stored at ``path`` and the ``extra`` dict saved with it.

    Args:
        path: file written by :func:`save_captioner`, or a checkpoint embedding one under
            ``"captioner"`` (a training run's ``last.pt`` / ``best.pt``).
        vocab: the vocabulary the caller will use with the model (e.g. the one its data were
            encoded with). If given and different from the checkpoint's, ``ValueError``.
        map_location: device for the weights.
    """
    payload = read_checkpoint(path, map_location)
    stored = Vocabulary.from_dict(payload["vocab"])
    if stored.fingerprint() != payload.get("vocab_fingerprint"):
        raise ValueError(f"captioner checkpoint {path}: its vocabulary is damaged (fingerprint)")
    if vocab is not None and vocab.fingerprint() != stored.fingerprint():
        raise ValueError(
            f"vocabulary mismatch: checkpoint {path} was trained with another vocabulary "
            f"({describe_vocab_difference(stored, vocab)}); use the vocabulary stored with "
            f"the checkpoint ({vocab_path_for(path)}) or retrain"
        )
    config = CaptionerConfig.from_dict(payload["config"])
    model = Captioner(config, stored, load_pretrained=False)
    state = payload["state_dict"]
    n_out = state.get("decoder.w_p.weight")
    if n_out is not None and n_out.shape[0] != len(stored):
        raise ValueError(
            f"captioner checkpoint {path}: output layer has {n_out.shape[0]} words but the "
            f"stored vocabulary has {len(stored)}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"captioner checkpoint {path} does not match its config: {err}") from err
    model.to(map_location)
    return model, dict(payload.get("extra", {}))
