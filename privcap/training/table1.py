"""The paper's Table 1: four cameras fine-tuned from one clean captioner, caption metrics and
the SSIM of what each camera records.

For every camera of :data:`~privcap.training.cameras.CAMERA_KINDS` and every seed,
:func:`run_table1` starts from the same clean captioner checkpoint (chapter 03's
``best.pt``), fine-tunes camera and captioner together for the same number of epochs on the
same data (:func:`~privcap.training.config.train_config` with ``finetune=True``), saves the
run under ``<out_root>/cameras/<camera>/seed<k>/`` and evaluates the final model on the same
held-out images (camera in evaluation mode: no read noise) with
:func:`~privcap.training.evaluation.evaluate_camera_run`. The table goes to
``<out_root>/table1.json``::

    {"profile": str, "dataset": str, "seeds": [int, ...],
     "rows": [{"model": "no-lens" | "learned-lens" | "defocus" | "low-res",
               "privacy": bool,
               "BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr": mean over
               seeds (fractions, as pycocoevalcap returns them),
               "<metric>_std": standard deviation over seeds (sample, ddof=1; 0 for one seed),
               "SSIM_mean": mean SSIM over images and seeds,
               "SSIM_std": standard deviation of the SSIM over images (all seeds pooled),
               "n_images": held-out images per seed}]}

Each finished run leaves ``evaluation.json`` in its folder; a rerun skips runs whose
evaluation is there (and matches the request) and resumes unfinished trainings from their
``last.pt``. A folder whose run was trained with other settings or from another captioner is
refused with an error naming it (:func:`check_stored_run`), never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privcap.captioning.checkpoint import load_captioner
from privcap.optics.config import OpticsConfig, optics_config
from privcap.paths import results_dir
from privcap.profiles import check_profile
from privcap.training.cameras import CAMERA_KINDS, PRIVACY_CAMERAS, build_camera, check_kind
from privcap.training.config import train_config
from privcap.training.data import load_caption_data, load_test_data
from privcap.training.evaluation import evaluate_camera_run
from privcap.training.io import load_json, write_json
from privcap.training.loop import train

__all__ = ["TABLE1_METRICS", "TABLE1_FILE", "EVALUATION_FILE", "check_stored_run",
           "finetune_config", "run_table1", "table1_rows"]

#: caption metrics of a Table 1 row, as pycocoevalcap names them
TABLE1_METRICS: tuple[str, ...] = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR",
                                   "ROUGE_L", "CIDEr")
TABLE1_FILE = "table1.json"
EVALUATION_FILE = "evaluation.json"


def run_table1(
    profile: str = "quick",
    *,
    seeds: Sequence[int] = (0, 1),
    epochs: int | None = None,
    base_checkpoint: str | Path | None = None,
    cameras: Sequence[str] = CAMERA_KINDS,
    dataset: str | Path = "auto",
    captions_json: str | Path | None = None,
    num_images: int = 2000,
    num_val_images: int = 200,
    num_test_images: int = 200,
    data_seed: int = 0,
    train_data: Any = None,
    val_data: Any = None,
    test_data: Any = None,
    dataset_name: str | None = None,
    optics: OpticsConfig | None = None,
    out_root: str | Path | None = None,
    meteor: bool = True,
    beam_size: int | None = None,
    progress: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune and evaluate every camera for every seed; write and return Table 1.

    Args:
        profile: data/model profile (presets, default data, default paths).
        seeds: training seeds (each camera is trained once per seed).
        epochs: fine-tuning epochs (default: the profile's fine-tuning preset).
        base_checkpoint: the clean captioner every run starts from (default
            ``results/<profile>/captioner/best.pt``, written by chapter 03).
        cameras: which rows (default all four, in the table's order).
        dataset, captions_json, num_images, num_val_images, num_test_images, data_seed:
            the data (:func:`~privcap.training.data.load_caption_data` /
            :func:`~privcap.training.data.load_test_data`) unless ``train_data``,
            ``val_data`` and ``test_data`` are given (``val_data=None`` skips per-epoch
            validation; then name the test data with ``dataset_name``).
        optics: the lens geometry (default: the profile's, :func:`optics_config`).
        out_root: where ``cameras/`` and ``table1.json`` go (default ``results/<profile>``).
        meteor: compute METEOR in the final evaluations.
        beam_size: beam of the final captions (default: the captioner's config).
        progress: tqdm bars.
        **overrides: further training settings for every run (e.g. ``batch_size``).

    Returns:
        The table (see the module docstring), also written to ``<out_root>/table1.json``.
    """
    check_profile(profile)
    for kind in cameras:
        check_kind(kind)
    if not seeds:
        raise ValueError("seeds is empty")
    base = Path(base_checkpoint) if base_checkpoint is not None else \
        results_dir(profile, "captioner", create=False) / "best.pt"
    if not base.is_file():
        raise FileNotFoundError(
            f"clean captioner checkpoint not found: {base} (train it first: chapter 03, or "
            "`privcap train --camera no-lens`)"
        )
    image_size = load_captioner(base)[0].config.image_size
    out = Path(out_root) if out_root is not None else results_dir(profile)
    if train_data is None:
        train_data, val_data, data_info = load_caption_data(
            profile, dataset, captions_json, num_images=num_images,
            num_val_images=num_val_images, image_size=image_size, seed=data_seed)
        test_data, test_info = load_test_data(
            profile, dataset, captions_json, num_images=num_test_images,
            num_train_images=num_images, num_val_images=num_val_images, image_size=image_size,
            seed=data_seed)
        name = test_info["name"]
    else:
        if test_data is None:
            raise ValueError("train_data given without test_data")
        data_info = {"source": "given"}
        name = dataset_name or "given"
    lens = optics if optics is not None else optics_config(profile)
    request = {"epochs": epochs, "base_checkpoint": str(base), "dataset": name,
               "n_images": len(test_data), "meteor": meteor, "beam_size": beam_size}
    results: dict[str, list[dict[str, Any]]] = {}
    for kind in cameras:
        results[kind] = []
        for seed in seeds:
            run_dir = out / "cameras" / kind / f"seed{int(seed)}"
            check_stored_run(run_dir, finetune_config(profile, kind, int(seed), epochs,
                                                      overrides).to_dict(), base)
            done = _finished(run_dir, request)
            if done is None:
                done = _run_one(profile, kind, int(seed), base, lens, train_data, val_data,
                                test_data, data_info, run_dir, request, epochs, meteor,
                                beam_size, progress, overrides)
            results[kind].append(done)
    table = {"profile": profile, "dataset": name, "seeds": [int(s) for s in seeds],
             "rows": table1_rows(results)}
    write_json(out / "table1.json", table)
    return table


#: training settings that may differ between a stored run and a new request (where it ran)
_IGNORED_SETTINGS = frozenset({"device", "num_workers", "checkpoint_every_steps"})


def check_stored_run(run_dir: str | Path, expected: dict[str, Any], base: str | Path) -> None:
    """Refuse a run folder made with other training settings or from another captioner.

    A run's ``evaluation.json`` records the request (epochs, starting checkpoint, test
    images, METEOR, beam) but not every training setting; its ``history.json`` does. This
    compares that history's ``train_config`` with ``expected`` (a
    :meth:`~privcap.training.config.TrainConfig.to_dict`; the device and loader settings
    apart) and its ``init_from`` with ``base``, and raises ``ValueError`` naming the folder
    to delete when they differ, so that a run made before a preset changed is never reused
    (or resumed) silently. A folder without a history (never started) passes.
    """
    run_dir = Path(run_dir)
    path = run_dir / "history.json"
    if not path.is_file():
        return
    history = load_json(path, "training history")
    stored = history.get("train_config", {})
    differ = sorted(k for k in set(expected) | set(stored)
                    if k not in _IGNORED_SETTINGS and expected.get(k) != stored.get(k))
    if differ or history.get("init_from") != str(base):
        why = (f"training settings differ in {differ}" if differ else
               f"it started from {history.get('init_from')!r}, not {str(base)!r}")
        raise ValueError(
            f"the Table 1 run in {run_dir} was made with other settings ({why}); delete that "
            "folder to train it again with the current ones"
        )


def finetune_config(profile: str, kind: str, seed: int, epochs: int | None,
                    overrides: dict[str, Any]) -> Any:
    """The training settings of one Table 1 run (fine-tuning preset, ``seed``, ``epochs``
    when given, then ``overrides``)."""
    settings = dict(overrides, seed=int(seed))
    if epochs is not None:
        settings["epochs"] = int(epochs)
    return train_config(profile, kind, finetune=True, **settings)


def _finished(run_dir: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    path = run_dir / EVALUATION_FILE
    if not path.is_file():
        return None
    stored = load_json(path, "evaluation")
    if stored.get("request") != request or not all(k in stored.get("metrics", {})
                                                   for k in TABLE1_METRICS):
        return None
    return stored


def _run_one(profile, kind, seed, base, lens, train_data, val_data, test_data, data_info,
             run_dir, request, epochs, meteor, beam_size, progress, overrides) -> dict:
    model, _ = load_captioner(base)
    torch.manual_seed(seed)
    camera = build_camera(kind, lens)
    cfg = finetune_config(profile, kind, seed, epochs, overrides)
    train(model, camera, train_data, val_data, cfg, run_dir, resume=True, init_from=base,
          progress=progress, profile=profile, data_info=data_info, log_epochs=progress)
    evaluation = evaluate_camera_run(model, camera, test_data, meteor=meteor,
                                     beam_size=beam_size)
    record = {"request": request, "model": kind, "seed": seed,
              "metrics": evaluation["metrics"], "SSIM_mean": evaluation["SSIM_mean"],
              "SSIM_std": evaluation["SSIM_std"], "ssim": evaluation["ssim"],
              "n_images": evaluation["n_images"],
              "captions": {str(k): v for k, v in evaluation["captions"].items()}}
    write_json(run_dir / EVALUATION_FILE, record)
    return record


def table1_rows(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of Table 1 from each camera's per-seed evaluations (see the module docstring)."""
    rows = []
    for kind in CAMERA_KINDS:
        runs = results.get(kind)
        if not runs:
            continue
        row: dict[str, Any] = {"model": kind, "privacy": kind in PRIVACY_CAMERAS}
        for metric in TABLE1_METRICS:
            values = [r["metrics"][metric] for r in runs]
            if any(v is None for v in values):
                row[metric], row[f"{metric}_std"] = None, None
                continue
            arr = np.asarray(values, dtype=np.float64)
            row[metric] = float(arr.mean())
            row[f"{metric}_std"] = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        pooled = np.concatenate([np.asarray(r["ssim"], dtype=np.float64) for r in runs])
        row["SSIM_mean"] = float(np.mean([r["SSIM_mean"] for r in runs]))
        row["SSIM_std"] = float(pooled.std())
        row["n_images"] = int(runs[0]["n_images"])
        rows.append(row)
    return rows
