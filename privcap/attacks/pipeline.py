"""Running a reconstruction attack on a camera's private images and scoring it (paper Fig. 3).

* :func:`attack_images` -- one attack on pairs (private, original): the attacker tunes or
  trains on its own pairs (``tuning``), disjoint from the evaluated ones, then reconstructs
  the evaluated private images; scores are SSIM and PSNR against the originals.
* :func:`run_attack_cli` -- the library side of ``privcap attack``: build or load a camera,
  load the scenes, record them with the camera, split them 2:1 into the attacker's pairs and
  the evaluated ones, attack, and write the reconstructions (PNG) and ``scores.json`` to a
  folder, all at once (nothing half-written).

Attacks (:data:`ATTACKS`): ``"none"`` (the private image itself: the privacy baseline of
Fig. 3), ``"wiener"`` and ``"richardson-lucy"`` (non-blind,
:mod:`privcap.attacks.deconvolution`; the camera must have a PSF) and ``"learned"`` (blind,
:mod:`privcap.attacks.learned`; any camera).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from privcap.attacks.deconvolution import (
    DEFAULT_NSR_CANDIDATES,
    DEFAULT_RL_ITERATIONS,
    camera_psf,
    check_pairs,
    check_psf,
    richardson_lucy,
    tune_richardson_lucy,
    tune_wiener,
    wiener,
)
from privcap.attacks.learned import restore, split_pairs, train_restorer
from privcap.metrics import psnr, ssim
from privcap.optics.camera import IdentityCamera
from privcap.optics.recording import SensorRecording

__all__ = [
    "ATTACKS",
    "CAMERA_NAMES",
    "IMAGE_SUFFIXES",
    "attack_images",
    "build_camera",
    "load_camera",
    "load_inputs",
    "run_attack_cli",
]

ATTACKS: tuple[str, ...] = ("none", "wiener", "richardson-lucy", "learned")
#: ``--camera`` names -> keys of :func:`privcap.optics.comparison_cameras`
CAMERA_NAMES: dict[str, str] = {
    "random-lens": "random Zernike lens",
    "defocus": "defocus lens",
    "focused": "focused lens",
    "low-res": "low-res sensor",
    "no-lens": "no lens",
}
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SCORES_FILE = "scores.json"
RECONSTRUCTIONS_DIR = "reconstructions"


# --------------------------------------------------------------------------- attack
def _digests(images: Tensor) -> set[str]:
    return {hashlib.sha1(img.contiguous().cpu().numpy().tobytes()).hexdigest()
            for img in images}


def _check_tuning(tuning: Any, private: Tensor) -> tuple[Tensor, Tensor]:
    if not (isinstance(tuning, Sequence) and len(tuning) == 2):
        raise ValueError(
            "tuning must be a pair (private_tune, originals_tune) of the attacker's own images"
        )
    tp, to = check_pairs(tuning[0], tuning[1], ("tuning private", "tuning originals"))
    if tp.shape[1:] != private.shape[1:]:
        raise ValueError(
            f"tuning images must have the evaluated images' channels and size: "
            f"{tuple(tp.shape[1:])} vs {tuple(private.shape[1:])}"
        )
    return tp, to


def attack_images(
    camera: nn.Module | None,
    attack: str,
    private: Tensor,
    originals: Tensor,
    *,
    tuning: tuple[Tensor, Tensor] | None = None,
    restorer: nn.Module | None = None,
    candidates: Sequence[float] = DEFAULT_NSR_CANDIDATES,
    iterations: Sequence[int] = DEFAULT_RL_ITERATIONS,
    regulariser: str = "identity",
    boundary: str = "linear",
    train_kwargs: Mapping[str, Any] | None = None,
    psf: Tensor | None = None,
) -> dict[str, Any]:
    """Reconstruct ``private`` (what ``camera`` recorded of ``originals``) with ``attack``.

    Args:
        camera: the camera (its PSF is what the non-blind attacks know); unused by
            ``"none"`` and ``"learned"`` (may be ``None`` there).
        attack: one of :data:`ATTACKS`.
        private, originals: evaluated pairs ``B x 3 x H x W``.
        tuning: the attacker's own pairs ``(private_tune, originals_tune)``, disjoint from
            the evaluated ones (an evaluated original found among them is an error). Wiener
            and Richardson-Lucy choose their parameter there (:func:`tune_wiener`,
            :func:`tune_richardson_lucy`); the learned attack trains on them unless a
            trained ``restorer`` is given.
        restorer: a trained generator of :func:`train_restorer` (``"learned"`` only).
        candidates: noise-to-signal ratios tried by Wiener.
        iterations: iteration counts tried by Richardson-Lucy.
        regulariser, boundary: Wiener options (:func:`wiener`).
        train_kwargs: keyword arguments of :func:`train_restorer`.
        psf: the PSF the non-blind attacker assumes (default: the camera's own, exact
            knowledge); it must have the shape of the camera's PSF (``3 x K x K``).

    Returns:
        ``{"attack", "images" (reconstructions, B x 3 x H x W; clipped to [0, 1] except for
        "none"), "SSIM_mean", "SSIM_std", "PSNR_mean", "ssim", "psnr" (per image),
        "n_images", "n_tuning", "parameter" (dict: the chosen nsr / iterations, or the
        restorer's training size), "table" (the tuning table, or the training history)}``.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    y, x = check_pairs(private, originals)
    if y.shape[1] != 3:
        raise ValueError(f"images must be RGB (3 channels), got shape {tuple(y.shape)}")
    if attack in ("wiener", "richardson-lucy"):
        if camera is None:
            raise ValueError(f"the {attack} attack needs the camera (its PSF)")
        own = camera_psf(camera)
        if psf is None:
            psf = own
        elif not isinstance(psf, Tensor) or psf.shape != own.shape:
            shape = tuple(psf.shape) if isinstance(psf, Tensor) else type(psf).__name__
            raise ValueError(
                f"psf {shape} does not match the PSF of the camera {type(camera).__name__} "
                f"({tuple(own.shape)})"
            )
        psf = check_psf(psf, y, name=f"PSF of {type(camera).__name__}")
    elif psf is not None:
        raise ValueError(f"psf is only used by the non-blind attacks, not by {attack!r}")
    tune = None
    if tuning is not None:
        tune = _check_tuning(tuning, y)
        overlap = _digests(tune[1]) & _digests(x)
        if overlap:
            raise ValueError(
                f"{len(overlap)} evaluated original image(s) also appear in the tuning set; "
                "the attacker must tune on images disjoint from the evaluated ones"
            )
    parameter: dict[str, Any] = {}
    table: Any = None
    if attack == "none":
        restored = y
    elif attack in ("wiener", "richardson-lucy"):
        if tune is None:
            raise ValueError(
                f"the {attack} attack needs tuning=(private_tune, originals_tune): the "
                "attacker chooses its parameter on its own held-out pairs"
            )
        if attack == "wiener":
            nsr, table = tune_wiener(*tune, psf, candidates, regulariser=regulariser,
                                     boundary=boundary)
            parameter = {"nsr": nsr, "regulariser": regulariser, "boundary": boundary}
            restored = wiener(y, psf, nsr, regulariser=regulariser, boundary=boundary,
                              clip=True)
        else:
            count, table = tune_richardson_lucy(*tune, psf, iterations)
            parameter = {"iterations": count}
            restored = richardson_lucy(y, psf, count, clip=True)
    else:
        if restorer is None:
            if tune is None:
                raise ValueError(
                    "the learned attack needs a trained restorer or tuning=(private_tune, "
                    "originals_tune) pairs to train one on"
                )
            restorer, table = train_restorer(*tune, **dict(train_kwargs or {}))
            parameter = {"trained_on": int(tune[0].shape[0]), **dict(train_kwargs or {})}
        else:
            parameter = {"trained_on": "given restorer"}
        restored = restore(restorer, y)
    s = ssim(restored.to(x.dtype), x).double()
    p = psnr(restored.to(x.dtype), x).double()
    return {
        "attack": attack,
        "images": restored,
        "SSIM_mean": float(s.mean()),
        "SSIM_std": float(s.std(unbiased=False)),
        "PSNR_mean": float(p.mean()),
        "ssim": s.tolist(),
        "psnr": p.tolist(),
        "n_images": int(y.shape[0]),
        "n_tuning": 0 if tune is None else int(tune[0].shape[0]),
        "parameter": parameter,
        "table": table,
    }


# --------------------------------------------------------------------------- cameras
def build_camera(name: str, profile: str = "quick", seed: int = 0) -> nn.Module:
    """A camera without a checkpoint, by name (:data:`CAMERA_NAMES`), from
    :func:`privcap.optics.comparison_cameras` for the optics of ``profile``."""
    from privcap.optics import comparison_cameras, optics_config

    if name not in CAMERA_NAMES:
        raise ValueError(f"camera must be one of {tuple(CAMERA_NAMES)}, got {name!r}")
    return comparison_cameras(optics_config(profile), seed=seed)[CAMERA_NAMES[name]]


def load_camera(run_dir: str | os.PathLike[str]) -> nn.Module:
    """The camera of a training run folder (``results/<profile>/cameras/<model>/seed<k>/``),
    from its ``best.pt`` (:func:`privcap.training.checkpoint.load_run`), in evaluation mode.
    A checkpoint file may be given instead of the folder."""
    from privcap.training.checkpoint import load_run

    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"camera run folder not found: {path}")
    _, camera, _ = load_run(path, which="best")
    return camera.eval()


# --------------------------------------------------------------------------- inputs
def load_inputs(
    inputs: Sequence[str | os.PathLike[str]], image_size: int, seed: int = 0,
    limit: int | None = None,
) -> tuple[list[str], Tensor]:
    """Scenes named by ``inputs``: image files, folders (their image files, sorted) or
    ``"synthetic:N"`` (N synthetic scenes of :class:`privcap.data.synthetic.SyntheticScenes`
    with ``seed``). Each image is resized and centre-cropped to ``image_size``
    (:func:`privcap.data.transforms.resize_and_crop`). Returns ``(names, images)``; at most
    ``limit`` images."""
    from privcap.data.images import load_image
    from privcap.data.transforms import resize_and_crop

    if isinstance(inputs, (str, os.PathLike)) or not inputs:
        raise ValueError(f"inputs must be a non-empty list of paths, got {inputs!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    names: list[str] = []
    images: list[Tensor] = []
    for item in inputs:
        text = str(item)
        if text.startswith("synthetic:"):
            from privcap.data.synthetic import SyntheticScenes

            count = text.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"synthetic input must be 'synthetic:N' with N >= 1, got {text!r}")
            scenes = SyntheticScenes(int(count), image_size, seed=seed, split="test")
            for i in range(len(scenes)):
                names.append(f"synthetic_{i:05d}")
                images.append(scenes[i]["image"])
            continue
        path = Path(text)
        if path.is_dir():
            files = sorted(f for f in path.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"input not found: {path}")
        for f in files:
            names.append(f.stem)
            images.append(resize_and_crop(load_image(f), image_size))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise ValueError(f"inputs give several images the same name: {dup}")
    if limit is not None:
        names, images = names[:limit], images[:limit]
    return names, torch.stack(images)


# --------------------------------------------------------------------------- command
def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (the PSNR of identical images is +inf) as None."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_png(image: Tensor, path: Path) -> None:
    array = (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5)
    Image.fromarray(array.astype(np.uint8), mode="RGB").save(path)


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"out_dir exists and is not a folder: {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"out_dir {out_dir} exists and is not empty (pass overwrite=True / "
                         "--overwrite to replace it)")


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir`` (replacing an old one)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_attack_cli(
    checkpoint_or_camera_dir: str | os.PathLike[str] | None,
    attack: str,
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    camera: str | None = None,
    profile: str = "quick",
    image_size: int | None = None,
    ratio: float = 2 / 3,
    seed: int = 0,
    limit: int | None = None,
    candidates: Sequence[float] = DEFAULT_NSR_CANDIDATES,
    iterations: Sequence[int] = DEFAULT_RL_ITERATIONS,
    train_kwargs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    read_noise_sigma: float = 0.01,
    bits: int | None = 8,
) -> dict[str, Any]:
    """``privcap attack``: attack a camera's recordings of ``inputs`` and save the result.

    Exactly one of ``checkpoint_or_camera_dir`` (a training run folder with ``best.pt``)
    and ``camera`` (a name of :data:`CAMERA_NAMES`, built for ``profile``) gives the
    camera. The scenes (:func:`load_inputs`, at ``image_size``, default the camera's
    ``config.image_size`` or 128) are recorded by the camera as it hands them over: its
    evaluation-mode image with read noise of ``read_noise_sigma`` stored with ``bits`` bits
    (:class:`~privcap.optics.recording.SensorRecording`, seeded with ``seed``; ``0`` and
    ``None`` give the noise-free float image), and split by :func:`split_pairs` (``ratio``,
    ``seed``): the first part is the attacker's tuning / training set, the rest is attacked
    and scored.

    Writes ``out_dir/reconstructions/<name>.png`` for every evaluated image and
    ``out_dir/scores.json`` (attack, camera, parameter, SSIM_mean, SSIM_std, PSNR_mean,
    n_images, n_tuning, per-image scores, tuning table; an infinite PSNR is written as
    null), into a temporary folder that
    replaces ``out_dir`` only when complete. An existing non-empty ``out_dir`` is an error
    unless ``overwrite``. Returns the JSON content.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    recording = SensorRecording(read_noise_sigma, bits, seed)  # validates both
    if (checkpoint_or_camera_dir is None) == (camera is None):
        raise ValueError("give either a camera run folder or a camera name (--camera), not "
                         f"both or neither (got {checkpoint_or_camera_dir!r} and {camera!r})")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    if camera is not None:
        cam = build_camera(camera, profile, seed)
        camera_label = camera
    else:
        cam = load_camera(checkpoint_or_camera_dir)
        camera_label = str(checkpoint_or_camera_dir)
    if attack in ("wiener", "richardson-lucy"):
        camera_psf(cam)  # fail before loading any image
    config = getattr(cam, "config", None)
    size = image_size if image_size is not None else getattr(config, "image_size", 128)
    names, originals = load_inputs(inputs, size, seed=seed, limit=limit)
    if originals.shape[0] < 2:
        raise ValueError(f"need at least 2 images (tuning + evaluation), got "
                         f"{originals.shape[0]}")
    cam.eval()
    with torch.no_grad():
        private = cam(originals)
    if not isinstance(cam, IdentityCamera):  # the no-lens camera stands for the originals
        private = recording(private)
    tune_idx, eval_idx = split_pairs(originals.shape[0], ratio, seed)
    result = attack_images(
        cam, attack, private[eval_idx], originals[eval_idx],
        tuning=(private[tune_idx], originals[tune_idx]),
        candidates=candidates, iterations=iterations, train_kwargs=train_kwargs,
    )
    eval_names = [names[i] for i in eval_idx]
    report = {
        "attack": attack,
        "camera": camera_label,
        "profile": profile if camera is not None else None,
        "image_size": int(size),
        "recording": recording.to_dict(),
        "parameter": result["parameter"],
        "SSIM_mean": result["SSIM_mean"],
        "SSIM_std": result["SSIM_std"],
        "PSNR_mean": result["PSNR_mean"],
        "n_images": result["n_images"],
        "n_tuning": result["n_tuning"],
        "tuning_images": [names[i] for i in tune_idx],
        "per_image": [
            {"name": n, "ssim": s, "psnr": p}
            for n, s, p in zip(eval_names, result["ssim"], result["psnr"], strict=True)
        ],
        "table": result["table"],
    }
    report = _json_safe(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / RECONSTRUCTIONS_DIR).mkdir()
        for name, image in zip(eval_names, result["images"], strict=True):
            _write_png(image, tmp / RECONSTRUCTIONS_DIR / f"{name}.png")
        (tmp / SCORES_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
