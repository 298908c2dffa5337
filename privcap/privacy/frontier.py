"""The privacy-utility frontier: learned lenses trained with several distortion weights.

The distortion weight ``w_p`` of the joint objective (``w_ce L_ce + ds_lambda L_d + w_p L_p
+ w_h L_H``, paper Eqs. 6-9) sets how strongly training pushes the lens away from a sharp
image. :func:`run_frontier` trains one learned lens per value with exactly the book's Table 1
recipe (:func:`privcap.training.report.run_book_table1`: fine-tuned from chapter 03's clean
captioner, same data, epochs and settings, only ``w_p`` changed, seed 0), under
``results/<profile>/frontier/wp<value>/`` (``cameras/learned-lens/seed0/`` and
``table1.json``; finished runs are reused), measures each lens's privacy with
:func:`privcap.privacy.evaluate.measure_privacy` (private images, Wiener and Richardson-Lucy
tuned on the attacker's pairs, MTCNN faces, the best tag reader before and after the best
non-blind attack; ``wp<value>/privacy.json`` with its details and example images, reused
while the lens is unchanged), and
writes ``results/<profile>/frontier/frontier.json``::

    {"profile", "dataset" (the sweep's privacy data), "w_p": [values],
     "points": [{"label", "camera", "w_p" (None for a camera without a lens), "source",
                 "CIDEr", "BLEU_4", "SSIM_private", "SSIM_best", "best_attack",
                 "face_rate", "hidden_accuracy", "hidden_chance"}]}

with one point per ``w_p`` (source ``"frontier"``) and one per Table 1 camera (seed 0,
source ``"table1"``: CIDEr from its ``evaluation.json``, privacy measured here, into
``frontier/table1/privacy.json``, with the sweep's settings). Every privacy value of a
point uses the same attackers and sizes: the camera's recorded images and the non-blind
attacks (:data:`FRONTIER_ATTACKS`), so the Table 1 cameras and the sweep are measured alike
(and the sweep does not wait for chapter 07's larger measurement):

* ``SSIM_best``: the highest mean SSIM among the private images and their non-blind
  reconstructions (:func:`privcap.privacy.evaluate.best_reconstruction`);
* ``face_rate``: the largest share of the originals' MTCNN faces still found;
* ``hidden_accuracy``: the largest accuracy of the best tag reader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from privcap.privacy.evaluate import (
    DETAILS_FILE,
    NON_BLIND,
    PRIVACY_FILE,
    PrivacySettings,
    best_reconstruction,
    default_attacks,
    load_privacy,
    load_table1_cameras,
    measure_privacy,
    measurement_constants,
    privacy_data,
    write_privacy,
)

__all__ = [
    "DEFAULT_W_P",
    "FRONTIER_ATTACKS",
    "FRONTIER_DIR",
    "FRONTIER_FILE",
    "frontier_privacy_settings",
    "frontier_point",
    "run_frontier",
    "wp_label",
]

FRONTIER_FILE = "frontier.json"
#: folder of the sweep under ``results/<profile>``
FRONTIER_DIR = "frontier"
#: the distortion weights of the sweep (two decades)
DEFAULT_W_P: tuple[float, ...] = (0.4, 2.0, 5.0, 10.0, 40.0)
#: the attacks every point of the frontier is measured with
FRONTIER_ATTACKS: tuple[str, ...] = NON_BLIND
_KIND = "learned-lens"


def wp_label(w_p: float) -> str:
    """Folder name of one distortion weight: ``wp0.1``, ``wp1``, ``wp10``."""
    if isinstance(w_p, bool) or not isinstance(w_p, (int, float)) or not w_p >= 0:
        raise ValueError(f"w_p must be a number >= 0, got {w_p!r}")
    return f"wp{float(w_p):g}"


def frontier_privacy_settings(smoke: bool = False) -> PrivacySettings:
    """The sizes of the sweep's privacy measurements: smaller tuning sets and readers than
    chapter 07's (five lenses instead of three cameras); :meth:`PrivacySettings.smoke` for
    the test suite."""
    if smoke:
        return PrivacySettings.smoke()
    return PrivacySettings(num_tuning=32,
                           nsr_candidates=tuple(10.0 ** (k / 2) for k in range(-8, 3)),
                           rl_iterations=(1, 2, 5, 10, 20, 50),
                           reader_train=1000, reader_test=400, examples=1)


def frontier_point(privacy: Mapping[str, Any], camera: str, caption_metrics: Mapping[str, Any],
                   *, label: str, w_p: float | None, source: str,
                   attacks: Sequence[str] = FRONTIER_ATTACKS) -> dict[str, Any]:
    """One point of the frontier: ``camera``'s caption metrics and its privacy in
    ``privacy`` (a ``privacy.json``), every privacy value over the private images and
    ``attacks`` (see the module docstring)."""
    best_attack, best_ssim = best_reconstruction(privacy, camera, attacks)
    private = next(r for r in privacy["private"] if r["camera"] == camera)
    allowed = {None, *attacks}
    faces = [r for r in privacy["faces"] if r["camera"] == camera and r["detector"] == "mtcnn"
             and r["attack"] in allowed and r["faces"] > 0]
    readers = [r for r in privacy["sensitive_detail"]
               if r["camera"] == camera and r["attack"] in allowed]
    if not faces or not readers:
        raise ValueError(f"privacy results lack MTCNN faces or tag readers for {camera!r}")
    return {
        "label": label, "camera": camera, "w_p": w_p, "source": source,
        "CIDEr": caption_metrics["CIDEr"], "BLEU_4": caption_metrics["BLEU_4"],
        "SSIM_private": private["SSIM_mean"], "SSIM_best": best_ssim,
        "best_attack": best_attack,
        "face_rate": max(r["detected"] / r["faces"] for r in faces),
        "hidden_accuracy": max(r["accuracy"] for r in readers),
        "hidden_chance": readers[0]["chance"],
    }


def _measured(run_root: Path, cameras_root: Path, kinds: Sequence[str], data_factory,
              settings: PrivacySettings, profile: str, progress: bool) -> dict[str, Any]:
    """``run_root/privacy.json`` of the cameras ``kinds`` of the runs under ``cameras_root``
    (seed 0), measured with the sweep's attackers unless a file for the same checkpoints and
    settings is there."""
    from privcap.training.io import load_json

    checkpoints = {kind: cameras_root / kind / "seed0" / "last.pt" for kind in kinds}
    for kind, checkpoint in checkpoints.items():
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{kind} checkpoint not found: {checkpoint} (train Table 1 "
                                    "first: chapter 05)")
    stamp = {"checkpoints_mtime_ns": {k: c.stat().st_mtime_ns for k, c in checkpoints.items()},
             "settings": settings.to_dict(), "face_detection": measurement_constants()}
    details_path = run_root / DETAILS_FILE
    if (run_root / PRIVACY_FILE).is_file() and details_path.is_file():
        stored = load_json(details_path, "privacy details")
        if stored.get("stamp") == stamp:
            return load_privacy(run_root)
    cameras, image_size = load_table1_cameras(cameras_root, kinds, seed=0)
    data = data_factory(image_size)
    plan = {name: tuple(a for a in attacks if a in FRONTIER_ATTACKS)
            for name, attacks in default_attacks(cameras).items()}
    rows, details, examples = measure_privacy(
        cameras, data, settings, attacks=plan, control=False, reidentification=False,
        detectors=("mtcnn",), progress=progress)
    privacy = {"profile": profile, "dataset": data.description, **rows}
    details["stamp"] = stamp
    write_privacy(run_root, privacy, details, examples)
    return privacy


def run_frontier(
    table1_settings: Any,
    w_p_values: Sequence[float] = DEFAULT_W_P,
    *,
    privacy_settings: PrivacySettings | None = None,
    out_root: str | Path | None = None,
    table1_root: str | Path | None = None,
    coco_dir: str | Path | None = "auto",
    smoke: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train, evaluate and measure one learned lens per ``w_p``; write ``frontier.json``.

    Args:
        table1_settings: the book's :class:`~privcap.training.report.Table1Settings`
            (chapter 05's run); each lens is its learned-lens run, seed 0, with ``w_p``
            added to ``train_overrides``.
        w_p_values: distortion weights (at least two, distinct).
        privacy_settings: sizes (default :func:`frontier_privacy_settings`).
        out_root: folder of the sweep (default ``results/<profile>/frontier``).
        table1_root: where Table 1's ``cameras/`` are (default ``results/<profile>``): the
            reference points, measured with the sweep's settings into
            ``<out_root>/table1/``.
        coco_dir: see :func:`privcap.privacy.evaluate.privacy_data`.
        smoke: tiny privacy sizes (the Table 1 settings decide the training sizes).
        progress: print one line per stage.

    Returns:
        The content of ``frontier.json`` (module docstring).
    """
    from privcap.paths import results_dir
    from privcap.training.cameras import CAMERA_KINDS
    from privcap.training.io import load_json, write_json
    from privcap.training.report import run_book_table1

    values = [float(v) for v in w_p_values]
    labels = [wp_label(v) for v in values]
    if len(values) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"w_p_values must hold at least two distinct values, got "
                         f"{list(w_p_values)}")
    profile = table1_settings.profile
    root = Path(out_root) if out_root is not None else results_dir(profile, FRONTIER_DIR)
    t1_root = Path(table1_root) if table1_root is not None else results_dir(profile,
                                                                            create=False)
    settings = privacy_settings or frontier_privacy_settings(smoke)
    cache: dict[int, Any] = {}

    def data_factory(image_size: int):
        if image_size not in cache:
            cache[image_size] = privacy_data(profile, image_size, settings, coco_dir=coco_dir)
        return cache[image_size]

    points = []
    dataset = None
    for value, label in zip(values, labels, strict=True):
        run_root = root / label
        overrides = tuple((k, v) for k, v in table1_settings.train_overrides if k != "w_p")
        lens_settings = dataclasses.replace(table1_settings, seeds=(0,),
                                            train_overrides=overrides + (("w_p", value),))
        if progress:
            print(f"[frontier] {label}: training / evaluation", flush=True)
        run_book_table1(lens_settings, cameras=(_KIND,), seeds=(0,), out_root=run_root)
        evaluation = load_json(run_root / "cameras" / _KIND / "seed0" / "evaluation.json",
                               "sweep lens evaluation")
        privacy = _measured(run_root, run_root / "cameras", (_KIND,), data_factory, settings,
                            profile, progress)
        dataset = dataset or privacy["dataset"]
        points.append(frontier_point(privacy, _KIND, evaluation["metrics"],
                                     label=f"w_p = {value:g}", w_p=value, source="frontier"))
    if progress:
        print("[frontier] Table 1 cameras: privacy", flush=True)
    reference = _measured(root / "table1", t1_root / "cameras", CAMERA_KINDS, data_factory,
                          settings, profile, progress)
    for kind in CAMERA_KINDS:
        run_dir = t1_root / "cameras" / kind / "seed0"
        evaluation = load_json(run_dir / "evaluation.json", "Table 1 evaluation")
        w_p = None
        if kind in ("learned-lens", "defocus"):
            history = load_json(run_dir / "history.json", "Table 1 training history")
            w_p = float(history["train_config"]["w_p"])
        points.append(frontier_point(reference, kind, evaluation["metrics"],
                                     label=f"Table 1 {kind}", w_p=w_p, source="table1"))
    frontier = {"profile": profile, "dataset": dataset, "w_p": values,
                "points": points}
    write_json(root / FRONTIER_FILE, frontier)
    return frontier

