"""The end-to-end chapters' run, figures and tables: the book's Table 1 run (shared by the
chapters on end-to-end training, Table 1 and the qualitative results), the lens
learning-rate search, the training curves of every loss term, the lens during training,
Table 1 beside the paper's, and the analogue of the paper's Fig. 2.

Nothing here trains or scores by itself except through :func:`run_book_table1` (which calls
:func:`~privcap.training.table1.run_table1`) and :func:`per_image_scores` (which calls
:func:`~privcap.metrics.caption_scores` once); the rest reads result files and draws.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from privcap.captioning.checkpoint import load_captioner
from privcap.metrics import caption_scores
from privcap.optics.config import OpticsConfig
from privcap.optics.lens import Lens
from privcap.paper import FIG3_SSIM, TABLE1_MEASURED_NAMES, TABLE1_ROWS
from privcap.paths import results_dir
from privcap.profiles import check_profile
from privcap.training.cameras import CAMERA_KINDS, check_kind
from privcap.training.config import TrainConfig
from privcap.training.data import load_caption_data, load_test_data
from privcap.training.io import load_json
from privcap.training.table1 import (
    EVALUATION_FILE,
    TABLE1_METRICS,
    check_stored_run,
    finetune_config,
    run_table1,
)

__all__ = [
    "METRIC_LABELS",
    "Table1Settings",
    "base_checkpoint",
    "check_run_settings",
    "lens_heights_um",
    "load_table1_evaluations",
    "loss_terms_frame",
    "per_image_scores",
    "plot_coefficient_paths",
    "plot_lens_comparison",
    "plot_lens_snapshots",
    "plot_loss_terms",
    "plot_lr_search",
    "plot_qualitative",
    "plot_score_vs_ssim",
    "plot_table1_distributions",
    "plot_table1_heatmap",
    "psf_rgb",
    "run_book_table1",
    "run_train_config",
    "table1_data",
    "table1_frame",
    "table1_markdown",
    "table1_run_dir",
    "table1_seed_frame",
    "table1_settings",
]

#: short names of the caption metrics, as the paper's Table 1 heads its columns
METRIC_LABELS: dict[str, str] = {
    "BLEU_1": "B-1", "BLEU_2": "B-2", "BLEU_3": "B-3", "BLEU_4": "B-4", "METEOR": "M",
    "ROUGE_L": "R-L", "CIDEr": "C",
}
#: loss terms of a training history, with their symbols
TERM_LABELS: dict[str, str] = {
    "total": "total $L$", "ce": r"$L_{ce}$ (Eq. 6)", "ds": r"$L_d$ attention term (Eq. 7)",
    "p": r"$L_p = 1 - \mathrm{MSE}$", "h": r"$L_H$ (Eqs. 8-9)",
}
#: weight of each term in the training config
TERM_WEIGHTS: dict[str, str] = {"ce": "w_ce", "ds": "ds_lambda", "p": "w_p", "h": "w_h"}


# ============================================================================ the book's run
@dataclass(frozen=True)
class Table1Settings:
    """The Table 1 run of the book: the same for the chapter that trains the learned lens
    (seed 0 of its row) and the chapter that fills the table, so that the second reuses the
    first's run instead of training it again.

    Attributes:
        profile: data/model profile.
        seeds: training seeds of every row.
        epochs: fine-tuning epochs (``None``: the profile's fine-tuning preset,
            :data:`~privcap.training.config.FINETUNE`).
        num_images: training images (those the clean captioner of chapter 03 trained on).
        num_val_images: validation images (chapter 03's; the learning-rate search scores on
            them; the Table 1 runs do not validate: every row is evaluated after its last
            epoch on the test images).
        num_test_images: held-out test images of the final evaluation.
        meteor: METEOR in the final evaluation.
        dataset, captions_json, data_seed: the data (as chapter 03 loads them).
        train_overrides: further training settings of every run (``(name, value)`` pairs).
    """

    profile: str = "quick"
    seeds: tuple[int, ...] = (0, 1)
    epochs: int | None = None
    num_images: int = 2000
    num_val_images: int = 200
    num_test_images: int = 200
    meteor: bool = True
    dataset: str = "auto"
    captions_json: str | None = None
    data_seed: int = 0
    train_overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_profile(self.profile)
        if not self.seeds:
            raise ValueError("seeds is empty")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"epochs must be None or >= 1, got {self.epochs!r}")
        for name in ("num_images", "num_val_images", "num_test_images"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


#: the book's Table 1 run per profile (``full``: COCO with Karpathy's split)
_BOOK_TABLE1: dict[str, dict[str, Any]] = {
    "quick": dict(num_images=2000, num_val_images=200, num_test_images=200),
    "coco-mini": dict(num_images=2000, num_val_images=200, num_test_images=200),
    "full": dict(num_images=120_000, num_val_images=5000, num_test_images=5000),
}
#: tiny sizes of the test suite's smoke run (numbers without meaning)
_SMOKE_TABLE1: dict[str, Any] = dict(
    epochs=1, num_images=16, num_val_images=8, num_test_images=8, meteor=False,
    train_overrides=(("batch_size", 8),),
)


def table1_settings(profile: str = "quick", *, smoke: bool = False, **changes: Any
                    ) -> Table1Settings:
    """The book's :class:`Table1Settings` of ``profile`` (tiny ones with ``smoke``), with
    ``changes`` applied (``None`` values are ignored, so notebook parameters left at ``None``
    keep the book's setting; ``captions_json=""`` means none)."""
    check_profile(profile)
    values: dict[str, Any] = {"profile": profile, **_BOOK_TABLE1[profile]}
    if smoke:
        values.update(_SMOKE_TABLE1)
    known = {f.name for f in dataclasses.fields(Table1Settings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown Table 1 settings: {unknown}; known: {sorted(known)}")
    for key, value in changes.items():
        if value is None:
            continue
        if key == "seeds":
            value = tuple(value)
        if key == "captions_json" and value == "":
            value = None
        values[key] = value
    return Table1Settings(**values)


def base_checkpoint(profile: str) -> Path:
    """The clean captioner every Table 1 run starts from (chapter 03's ``best.pt``), exactly
    as :func:`~privcap.training.table1.run_table1` names it by default."""
    path = results_dir(profile, "captioner", create=False) / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"clean captioner checkpoint not found: {path} (run chapter 03 with profile "
            f"{profile!r} first)"
        )
    return path


def table1_data(settings: Table1Settings, image_size: int
                ) -> tuple[Dataset, Dataset, Dataset, dict[str, Any]]:
    """``(train, val, test, test description)`` of the book's Table 1 run, loaded as
    :func:`~privcap.training.table1.run_table1` loads them."""
    s = settings
    train, val, _ = load_caption_data(
        s.profile, s.dataset, s.captions_json, num_images=s.num_images,
        num_val_images=s.num_val_images, image_size=image_size, seed=s.data_seed)
    test, info = load_test_data(
        s.profile, s.dataset, s.captions_json, num_images=s.num_test_images,
        num_train_images=s.num_images, num_val_images=s.num_val_images,
        image_size=image_size, seed=s.data_seed)
    return train, val, test, info


def run_book_table1(
    settings: Table1Settings,
    *,
    cameras: Sequence[str] = CAMERA_KINDS,
    seeds: Sequence[int] | None = None,
    out_root: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`~privcap.training.table1.run_table1` with the book's settings, for some cameras
    and seeds (default: all of them); finished runs are reused.

    Every run fine-tunes the clean captioner of :func:`base_checkpoint` without per-epoch
    validation (Table 1 scores the model after its last epoch, so validating would only add
    time) and is evaluated on the test images. A run already in its folder but made with
    other training settings or from another captioner is refused (:func:`check_run_settings`)
    instead of being reused. Writes and returns ``table1.json`` of the runs asked for.
    """
    for kind in cameras:
        check_kind(kind)
    seeds = tuple(settings.seeds if seeds is None else seeds)
    base = base_checkpoint(settings.profile)
    for kind in cameras:
        for seed in seeds:
            check_run_settings(settings, kind, seed, out_root)
    image_size = load_captioner(base)[0].config.image_size
    train, _, test, info = table1_data(settings, image_size)
    return run_table1(
        settings.profile, seeds=seeds,
        epochs=settings.epochs, base_checkpoint=base, cameras=tuple(cameras),
        train_data=train, val_data=None, test_data=test, dataset_name=info["name"],
        out_root=out_root, meteor=settings.meteor, progress=progress,
        **dict(settings.train_overrides),
    )


def run_train_config(settings: Table1Settings, kind: str, seed: int) -> TrainConfig:
    """The training settings of one Table 1 run, as
    :func:`~privcap.training.table1.run_table1` builds them."""
    return finetune_config(settings.profile, kind, seed, settings.epochs,
                           dict(settings.train_overrides))


def check_run_settings(settings: Table1Settings, kind: str, seed: int,
                       out_root: str | Path | None = None) -> None:
    """Refuse to reuse a run trained with other settings or from another captioner:
    :func:`~privcap.training.table1.check_stored_run` for the book's run of ``kind`` and
    ``seed`` (its folder, :func:`run_train_config`, :func:`base_checkpoint`)."""
    check_stored_run(table1_run_dir(settings.profile, kind, seed, out_root),
                     run_train_config(settings, kind, seed).to_dict(),
                     base_checkpoint(settings.profile))


def table1_run_dir(profile: str, kind: str, seed: int, out_root: str | Path | None = None
                   ) -> Path:
    """Folder of one Table 1 run: ``<out_root>/cameras/<kind>/seed<k>`` (default out_root
    ``results/<profile>``), as :func:`~privcap.training.table1.run_table1` writes it."""
    check_kind(kind)
    root = Path(out_root) if out_root is not None else results_dir(profile, create=False)
    return root / "cameras" / kind / f"seed{int(seed)}"


def load_table1_evaluations(
    profile: str,
    seeds: Sequence[int],
    cameras: Sequence[str] = CAMERA_KINDS,
    out_root: str | Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The ``evaluation.json`` of every camera and seed (per-seed metrics, per-image SSIM,
    captions), ``{camera: [record of each seed]}``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in cameras:
        out[kind] = []
        for seed in seeds:
            path = table1_run_dir(profile, kind, seed, out_root) / EVALUATION_FILE
            if not path.is_file():
                raise FileNotFoundError(
                    f"Table 1 evaluation not found: {path} (run the Table 1 chapter with "
                    f"profile {profile!r} first)"
                )
            out[kind].append(load_json(path, "Table 1 evaluation"))
    return out


# ============================================================================ small helpers
def _plt():
    import matplotlib.pyplot as plt

    return plt


def _moving_average(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Valid moving average and the index (0-based, of the last sample) of each value."""
    window = max(1, min(int(window), len(values)))
    kernel = np.ones(window) / window
    return np.arange(window - 1, len(values)), np.convolve(values, kernel, mode="valid")


def psf_rgb(psf: Tensor | np.ndarray, crop_px: int | None = None, gamma: float = 0.5
            ) -> np.ndarray:
    """``H x W x 3`` image of an RGB PSF (``3 x K x K``): the central ``crop_px`` square,
    divided by its largest value, raised to ``gamma`` (0.5 shows the faint tails)."""
    arr = psf.detach().cpu().numpy() if isinstance(psf, Tensor) else np.asarray(psf)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ValueError(f"psf must be 3 x K x K, got shape {arr.shape}")
    if crop_px is not None:
        k = arr.shape[-1]
        side = min(int(crop_px), k)
        start = k // 2 - side // 2
        arr = arr[:, start : start + side, start : start + side]
    arr = np.clip(arr, 0.0, None) / max(float(arr.max()), 1e-30)
    return np.moveaxis(arr, 0, -1) ** gamma


def _draw_disk(ax, centre_px: float, radius_px: float) -> None:
    import matplotlib.patches as patches

    ax.add_patch(patches.Circle((centre_px, centre_px), radius_px, fill=False,
                                edgecolor="white", linestyle="--", linewidth=0.8))


def _image(x: Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


# ============================================================================ lr search
def plot_lr_search(result: Mapping[str, Any], preset_lr: float | None = None):
    """Figure of :func:`~privcap.training.lr_search.lr_search`: how far the lens moved, and
    the held-out SSIM and caption loss, against the lens learning rate; the chosen rate (and
    the preset's, if given and different) marked."""
    plt = _plt()
    rows = sorted(result["rows"], key=lambda r: r["lr"])
    lrs = np.array([r["lr"] for r in rows])
    start = result["start"]
    chosen = float(result["chosen_lr"])
    fig, (ax_move, ax_ssim, ax_ce) = plt.subplots(1, 3, figsize=(14, 3.8))
    floor = 1e-7
    ax_move.loglog(lrs, [max(abs(r["z4_shift_um"]), floor) for r in rows], "o-",
                   label="|change of Z4|")
    ax_move.loglog(lrs, [max(r["max_shift_um"], floor) for r in rows], "s-",
                   label="largest change, other terms")
    ax_move.loglog(lrs, [max(r["rms_shift_um"], floor) for r in rows], "^-",
                   label="RMS change, other terms")
    ax_move.set(xlabel="lens learning rate (um per step)", ylabel="coefficient change (um)",
                title=f"lens movement after {result['steps']} steps")
    ax_move.legend(fontsize=8)
    ax_ssim.semilogx(lrs, [r["ssim_mean"] for r in rows], "o-", color="tab:purple")
    ax_ssim.axhline(start["ssim_mean"], color="gray", linestyle=":", label="starting lens")
    ax_ssim.set(xlabel="lens learning rate (um per step)", ylabel="mean SSIM (held out)",
                title="privacy: SSIM of the sensor images")
    ax_ssim.legend(fontsize=8)
    ax_ce.semilogx(lrs, [r["val_ce"] for r in rows], "o-", color="tab:red")
    ax_ce.axhline(start["val_ce"], color="gray", linestyle=":", label="starting lens")
    ax_ce.set(xlabel="lens learning rate (um per step)", ylabel="$L_{ce}$ (held out, nats)",
              title="utility: caption loss")
    ax_ce.legend(fontsize=8)
    for ax in (ax_move, ax_ssim, ax_ce):
        ax.axvline(chosen, color="tab:green", linewidth=1, label="chosen")
        if preset_lr is not None and not math.isclose(preset_lr, chosen):
            ax.axvline(preset_lr, color="tab:orange", linestyle="--", linewidth=1)
    ax_move.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ============================================================================ training curves
def loss_terms_frame(history: Mapping[str, Any]):
    """Long table (pandas) of every step's loss terms: ``step``, ``epoch`` (fractional),
    ``term`` (``total``, ``ce``, ``ds``, ``p``, ``h``), ``value`` and ``weighted`` (value
    times the term's weight in the run's training config; the total as it is)."""
    import pandas as pd

    steps = history["steps"]
    if not steps:
        raise ValueError("the history has no training step")
    per_epoch: dict[int, int] = {}
    for s in steps:
        per_epoch[s["epoch"]] = per_epoch.get(s["epoch"], 0) + 1
    seen: dict[int, int] = {}
    cfg = history["train_config"]
    rows = []
    for s in steps:
        seen[s["epoch"]] = seen.get(s["epoch"], 0) + 1
        epoch = s["epoch"] - 1 + seen[s["epoch"]] / per_epoch[s["epoch"]]
        for term in TERM_LABELS:
            value = s.get(term)
            if value is None:
                continue
            weight = 1.0 if term == "total" else float(cfg[TERM_WEIGHTS[term]])
            rows.append((s["step"], epoch, term, float(value), weight * float(value)))
    return pd.DataFrame(rows, columns=["step", "epoch", "term", "value", "weighted"])


def plot_loss_terms(history: Mapping[str, Any], window: int | None = None):
    """Every loss term of a run step by step (faint) with its moving average over ``window``
    steps (default: a tenth of the run), and in the last panel the change of each weighted
    term since the start of training (moving averages): which terms the run traded."""
    plt = _plt()
    frame = loss_terms_frame(history)
    terms = [t for t in TERM_LABELS if t in set(frame["term"])]
    n_steps = int(frame["step"].max())
    window = window or max(1, n_steps // 10)
    fig, axes = plt.subplots(2, 3, figsize=(14, 6.5))
    colours = dict(zip(TERM_LABELS, ("black", "tab:blue", "tab:olive", "tab:purple",
                                     "tab:red"), strict=True))
    for ax, term in zip(axes.flat, terms, strict=False):
        part = frame[frame["term"] == term]
        x, y = part["epoch"].to_numpy(), part["value"].to_numpy()
        ax.plot(x, y, color=colours[term], alpha=0.25, linewidth=0.8)
        idx, avg = _moving_average(y, window)
        ax.plot(x[idx], avg, color=colours[term])
        ax.set(title=TERM_LABELS[term], xlabel="epoch")
    last = axes.flat[-1]
    for term in terms:
        if term == "total":
            continue
        part = frame[frame["term"] == term]
        idx, avg = _moving_average(part["weighted"].to_numpy(), window)
        last.plot(part["epoch"].to_numpy()[idx], avg - avg[0], color=colours[term],
                  label=TERM_LABELS[term].split(" (")[0])
    last.axhline(0.0, color="gray", linewidth=0.6)
    last.set(title="weighted term minus its start (moving averages)", xlabel="epoch")
    last.legend(fontsize=8)
    for ax in list(axes.flat)[len(terms):-1]:
        ax.axis("off")
    fig.tight_layout()
    return fig


# ============================================================================ the lens
def lens_heights_um(optics: OpticsConfig, coefficient_sets: Sequence[Sequence[float]]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Surface heights ``sum_j alpha_j Z_j`` (um, ``S x N x N``) of several coefficient
    vectors on the lens grid of ``optics``, and the aperture (``N x N`` bool)."""
    heights = []
    aperture = None
    with torch.no_grad():
        for coefficients in coefficient_sets:
            lens = Lens(optics, trainable="none", init_coefficients_um=list(coefficients))
            heights.append(lens.height_um().double().numpy())
            aperture = lens.aperture.numpy() > 0.5
    if aperture is None:
        raise ValueError("no coefficient vector given")
    return np.stack(heights), aperture


def _snapshots_with_psf(history: Mapping[str, Any]) -> list[dict[str, Any]]:
    snaps = [s for s in history.get("camera_snapshots", []) if "psf_crop" in s]
    if not snaps:
        raise ValueError("the history holds no PSF snapshot (a camera without a lens?)")
    return snaps


def _optics_of(history: Mapping[str, Any]) -> OpticsConfig:
    from privcap.training.cameras import optics_from_dict

    optics = history["camera"].get("optics")
    if not optics:
        raise ValueError("the history's camera has no optics")
    return optics_from_dict(optics)


def plot_lens_snapshots(history: Mapping[str, Any], columns: int = 5):
    """The lens during training, from the history's camera snapshots: top row the central
    PSF (RGB, square root of the intensity, the L_H disk dashed), bottom row the change of
    the surface since the start of training (um, inside the aperture)."""
    plt = _plt()
    snaps = _snapshots_with_psf(history)
    picks = np.unique(np.linspace(0, len(snaps) - 1, min(columns, len(snaps))).round()
                      .astype(int))
    chosen = [snaps[i] for i in picks]
    optics = _optics_of(history)
    start = history["camera_snapshots"][0]["coefficients_um"]
    heights, aperture = lens_heights_um(optics, [start] + [s["coefficients_um"] for s in chosen])
    change = heights[1:] - heights[0]
    limit = max(float(np.abs(change[:, aperture]).max()), 1e-6)
    radius = float(optics.psf_radius_px)
    fig, axes = plt.subplots(2, len(chosen), figsize=(2.7 * len(chosen), 5.6), squeeze=False)
    extent_mm = optics.grid_size * optics.pitch_m * 1e3 / 2
    image = None
    for c, snap in enumerate(chosen):
        crop = np.asarray(snap["psf_crop"])
        ax = axes[0, c]
        ax.imshow(psf_rgb(crop), origin="lower")
        _draw_disk(ax, (crop.shape[-1] - 1) / 2, radius)
        ax.set_title(f"step {snap['step']} (epoch {snap['epoch']:.2f})", fontsize=9)
        ax.axis("off")
        ax = axes[1, c]
        image = ax.imshow(np.where(aperture, change[c], np.nan), cmap="RdBu_r", vmin=-limit,
                          vmax=limit, origin="lower",
                          extent=(-extent_mm, extent_mm, -extent_mm, extent_mm))
        ax.set_xlabel("x (mm)", fontsize=8)
        if c == 0:
            ax.set_ylabel("surface change (um)\ny (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label="um")
    return fig


def plot_coefficient_paths(history: Mapping[str, Any], top: int = 6):
    """Zernike coefficients along training (camera snapshots, change since the start): Z4
    alone, and the ``top`` other terms that moved most by the end."""
    plt = _plt()
    snaps = history.get("camera_snapshots", [])
    if len(snaps) < 2:
        raise ValueError("the history holds fewer than two camera snapshots")
    coefficients = np.array([s["coefficients_um"] for s in snaps])
    change = coefficients - coefficients[0]
    epochs = np.array([s["epoch"] for s in snaps], dtype=float)
    others = [j for j in range(change.shape[1]) if j != 3]
    moved = sorted(others, key=lambda j: -abs(change[-1, j]))[:top]
    fig, (ax_z4, ax_rest) = plt.subplots(1, 2, figsize=(12, 3.6))
    ax_z4.plot(epochs, change[:, 3], "o-", color="tab:blue")
    ax_z4.set(xlabel="epoch", ylabel="change of Z4 (um)",
              title=f"defocus term (start {coefficients[0, 3]:.2f} um)")
    for j in moved:
        ax_rest.plot(epochs, change[:, j], "o-", markersize=3, label=f"$Z_{{{j + 1}}}$")
    ax_rest.axhline(0.0, color="gray", linewidth=0.6)
    ax_rest.set(xlabel="epoch", ylabel="change (um)",
                title=f"the {len(moved)} other terms that moved most")
    ax_rest.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def plot_lens_comparison(cameras: Mapping[str, nn.Module], scene: Tensor,
                         psf_crop_px: int | None = None):
    """Lenses side by side, one row each: surface height (um, inside the aperture), RGB PSF
    (the L_H disk dashed), and the sensor image of ``scene`` (``3 x H x W``) with its SSIM;
    a last column shows the scene and the surface difference of the last lens to the first.

    The cameras are put in evaluation mode (no read noise)."""
    from privcap.metrics import ssim

    plt = _plt()
    names = list(cameras)
    if not names:
        raise ValueError("no camera given")
    rows = len(names)
    fig, axes = plt.subplots(rows, 4, figsize=(14, 3.4 * rows), squeeze=False)
    heights = []
    with torch.no_grad():
        for r, name in enumerate(names):
            camera = cameras[name].eval()
            optics = camera.config
            height = camera.lens.height_um().double().numpy()
            aperture = camera.lens.aperture.numpy() > 0.5
            heights.append(height)
            extent_mm = optics.grid_size * optics.pitch_m * 1e3 / 2
            ext = (-extent_mm, extent_mm, -extent_mm, extent_mm)
            ax = axes[r, 0]
            im = ax.imshow(np.where(aperture, height, np.nan), cmap="viridis", origin="lower",
                           extent=ext)
            fig.colorbar(im, ax=ax, shrink=0.8, label="height (um)")
            ax.set(title=f"{name}\nsurface", xlabel="x (mm)", ylabel="y (mm)")
            psf = camera.psf()
            crop = psf_crop_px or int(4 * math.ceil(optics.psf_radius_px) + 1)
            ax = axes[r, 1]
            ax.imshow(psf_rgb(psf, crop), origin="lower")
            _draw_disk(ax, (min(crop, psf.shape[-1]) - 1) / 2, float(optics.psf_radius_px))
            ax.set_title(f"{name}\nPSF (square root, central {min(crop, psf.shape[-1])} px)")
            ax.axis("off")
            sensor = camera(scene.unsqueeze(0))[0].clamp(0, 1)
            value = float(ssim(sensor.unsqueeze(0), scene.unsqueeze(0)))
            ax = axes[r, 2]
            ax.imshow(_image(sensor))
            ax.set_title(f"{name}\nsensor image, SSIM {value:.3f}")
            ax.axis("off")
            axes[r, 3].axis("off")
    axes[0, 3].imshow(_image(scene))
    axes[0, 3].set_title("scene")
    if rows > 1:
        diff = heights[-1] - heights[0]
        limit = max(float(np.abs(diff[aperture]).max()), 1e-6)
        ax = axes[-1, 3]
        ax.axis("on")
        im = ax.imshow(np.where(aperture, diff, np.nan), cmap="RdBu_r", vmin=-limit, vmax=limit,
                       origin="lower", extent=ext)
        fig.colorbar(im, ax=ax, shrink=0.8, label="um")
        ax.set(title=f"{names[-1]}\nminus {names[0]}", xlabel="x (mm)")
    fig.tight_layout()
    return fig


# ============================================================================ Table 1
def _paper_value(model: str, metric: str) -> float | None:
    if model not in TABLE1_MEASURED_NAMES:
        return None
    name = TABLE1_MEASURED_NAMES[model]
    row = next(r for r in TABLE1_ROWS if r["model"] == name)
    return row.get(metric)


def table1_frame(table: Mapping[str, Any]):
    """Measured rows of ``table1.json`` beside the paper's (pandas, one row per camera):
    ``model``, ``paper_model``, ``privacy``, and per metric ``<metric>``, ``<metric>_std``,
    ``<metric>_paper`` (fractions; ``None`` where the paper has no value), ``SSIM_mean``,
    ``SSIM_std``, ``SSIM_paper`` (the paper's SSIM of its learned lens, Sec. 3.1)."""
    import pandas as pd

    records = []
    for row in table["rows"]:
        record: dict[str, Any] = {"model": row["model"],
                                  "paper_model": TABLE1_MEASURED_NAMES[row["model"]],
                                  "privacy": bool(row["privacy"])}
        for metric in TABLE1_METRICS:
            record[metric] = row[metric]
            record[f"{metric}_std"] = row[f"{metric}_std"]
            record[f"{metric}_paper"] = _paper_value(row["model"], metric)
        record["SSIM_mean"] = row["SSIM_mean"]
        record["SSIM_std"] = row["SSIM_std"]
        record["SSIM_paper"] = FIG3_SSIM["private"][0] if row["model"] == "learned-lens" \
            else None
        records.append(record)
    return pd.DataFrame.from_records(records)


def _missing(value: Any) -> bool:
    """``None`` or NaN (pandas turns the ``None`` of a numeric column into NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct(value: float | None, digits: int) -> str:
    return "–" if _missing(value) else f"{100 * value:.{digits}f}"


def table1_markdown(table: Mapping[str, Any], digits: int = 1) -> str:
    """Markdown Table 1: the paper's rows in the paper's order, each metric with our value
    (mean ± std over the seeds, percent as the paper prints them) and, in the next column,
    the paper's value. The literature rows are quoted from the paper (:data:`privcap.paper.
    TABLE1_ROWS`, their source named) and have no value of ours; the paper's own rows
    ("Proposed-w", "Proposed", "Defocus", "Low-Res") hold our measurement of the matching
    camera beside the paper's number. Last, the SSIM of the private images (ours: mean ± std
    over the test images) beside the paper's for its learned lens (Sec. 3.1)."""
    frame = table1_frame(table)
    measured = {TABLE1_MEASURED_NAMES[r["model"]]: r for r in frame.to_dict("records")}
    n_seeds = len(table.get("seeds", [])) or 1
    head = ["privacy", "model"]
    for metric in TABLE1_METRICS:
        label = METRIC_LABELS[metric]
        head += [label, f"{label} (paper)"]
    head += ["SSIM", "SSIM (paper)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    paper_ssim = FIG3_SSIM["private"]
    for row in TABLE1_ROWS:
        rec = measured.get(row["model"])
        if rec is None:
            name = f"{row['model']} (quoted, {row['cite']})"
        else:
            name = f"{row['model']}: `{rec['model']}` (ours measured, paper quoted)"
        cells = ["yes" if row["privacy"] else "no", name]
        for metric in TABLE1_METRICS:
            if rec is None or _missing(rec[metric]):
                ours = "–"
            elif n_seeds > 1:
                ours = f"{_pct(rec[metric], digits)} ± {_pct(rec[metric + '_std'], digits)}"
            else:
                ours = _pct(rec[metric], digits)
            cells += [ours, _pct(row.get(metric), digits)]
        cells.append("–" if rec is None else f"{rec['SSIM_mean']:.2f} ± {rec['SSIM_std']:.2f}")
        cells.append(f"{paper_ssim[0]:.2f} ± {paper_ssim[1]:.2f}"
                     if rec is not None and not _missing(rec["SSIM_paper"]) else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_table1_heatmap(table: Mapping[str, Any]):
    """Seaborn heat maps of what each privacy camera keeps of the captioner without privacy,
    metric by metric (percent of the no-lens row): measured here (left) and in the paper
    (right, the paper's rows relative to its "Proposed-w"; ROUGE-L is not in the paper)."""
    import pandas as pd
    import seaborn as sns

    plt = _plt()
    frame = table1_frame(table).set_index("model")
    if "no-lens" not in frame.index:
        raise ValueError("Table 1 has no no-lens row to compare with")
    cameras = [k for k in CAMERA_KINDS if k in frame.index and k != "no-lens"]
    labels = [METRIC_LABELS[m] for m in TABLE1_METRICS]
    ours = pd.DataFrame(index=cameras, columns=labels, dtype=float)
    paper = pd.DataFrame(index=[TABLE1_MEASURED_NAMES[k] for k in cameras], columns=labels,
                         dtype=float)
    for kind in cameras:
        for metric, label in zip(TABLE1_METRICS, labels, strict=True):
            base, value = frame.loc["no-lens", metric], frame.loc[kind, metric]
            if not _missing(base) and not _missing(value) and base > 0:
                ours.loc[kind, label] = 100 * value / base
            p_base, p_value = _paper_value("no-lens", metric), _paper_value(kind, metric)
            if p_base and p_value is not None:
                paper.loc[TABLE1_MEASURED_NAMES[kind], label] = 100 * p_value / p_base
    values = np.concatenate([ours.to_numpy().ravel(), paper.to_numpy().ravel()])
    values = values[np.isfinite(values)]
    vmin, vmax = (float(values.min()), float(max(values.max(), 100.0))) if values.size \
        else (0.0, 100.0)
    fig, (ax_ours, ax_paper) = plt.subplots(1, 2, figsize=(13, 2.2 + 0.5 * len(cameras)))
    kw = dict(annot=True, fmt=".0f", cmap="viridis", vmin=vmin, vmax=vmax, cbar=False)
    sns.heatmap(ours, ax=ax_ours, **kw)
    ax_ours.set_title(f"measured ({table.get('profile')}, {table.get('dataset')}): "
                      "% of the no-lens row")
    sns.heatmap(paper, ax=ax_paper, mask=paper.isna(), **kw)
    ax_paper.set_title("paper (quoted, COCO 2014): % of Proposed-w")
    for ax in (ax_ours, ax_paper):
        ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def table1_seed_frame(evaluations: Mapping[str, Sequence[Mapping[str, Any]]]):
    """Long table (pandas) of every run's scores: ``camera``, ``seed``, ``metric``
    (caption metrics and ``SSIM_mean``), ``value``."""
    import pandas as pd

    rows = []
    for kind, runs in evaluations.items():
        for run in runs:
            for metric in TABLE1_METRICS:
                value = run["metrics"].get(metric)
                if value is not None:
                    rows.append((kind, int(run["seed"]), metric, float(value)))
            rows.append((kind, int(run["seed"]), "SSIM_mean", float(run["SSIM_mean"])))
    return pd.DataFrame(rows, columns=["camera", "seed", "metric", "value"])


def plot_table1_distributions(evaluations: Mapping[str, Sequence[Mapping[str, Any]]]):
    """Left: CIDEr and BLEU-4 of every seed of every camera (points) with their mean (bar);
    right: the SSIM of every test image through every camera (all seeds pooled)."""
    import pandas as pd
    import seaborn as sns

    plt = _plt()
    seeds = table1_seed_frame(evaluations)
    caption = seeds[seeds["metric"].isin(["CIDEr", "BLEU_4"])]
    ssim_rows = [(kind, int(run["seed"]), float(v)) for kind, runs in evaluations.items()
                 for run in runs for v in run["ssim"]]
    ssims = pd.DataFrame(ssim_rows, columns=["camera", "seed", "SSIM"])
    order = [k for k in CAMERA_KINDS if k in evaluations]
    fig, (ax_c, ax_s) = plt.subplots(1, 2, figsize=(13, 3.8))
    sns.barplot(data=caption, x="camera", y="value", hue="metric", order=order,
                errorbar=None, alpha=0.35, ax=ax_c)
    sns.stripplot(data=caption, x="camera", y="value", hue="metric", order=order,
                  dodge=True, palette="dark:black", size=5, legend=False, ax=ax_c)
    ax_c.set(xlabel="", ylabel="score", title="caption metrics: each seed (points), mean (bar)")
    sns.boxplot(data=ssims, x="camera", y="SSIM", order=order, color="tab:purple",
                fliersize=2, ax=ax_s)
    ax_s.set(xlabel="", ylim=(0, 1.02), title="SSIM of each test image (seeds pooled)")
    fig.tight_layout()
    return fig


# ============================================================================ Fig. 2
def per_image_scores(
    references: Mapping[Any, Sequence[str]],
    captions: Mapping[str, Mapping[Any, str]],
    *,
    meteor: bool = True,
):
    """Per-image caption metrics of several cameras' captions of the same images, in one
    :func:`~privcap.metrics.caption_scores` call (one METEOR JVM for everything).

    Args:
        references: ``{image_id: reference captions}``.
        captions: ``{camera: {image_id: caption}}``, each with the ids of ``references``.
        meteor: compute METEOR (``False``: the column is NaN).

    Returns:
        A pandas table: ``camera``, ``image_id``, ``caption`` and the metrics of
        :data:`~privcap.metrics.CAPTION_METRICS` of that single caption (BLEU with
        pycocoevalcap's per-sentence smoothing; per-image CIDEr weighs n-grams by their
        frequency over all scored captions, of every camera).
    """
    import pandas as pd

    refs: dict[str, list[str]] = {}
    cands: dict[str, str] = {}
    keys: dict[str, tuple[str, Any]] = {}
    for kind, by_image in captions.items():
        missing = set(references) - set(by_image)
        extra = set(by_image) - set(references)
        if missing or extra:
            raise ValueError(f"captions of {kind!r} do not match the references' image ids: "
                             f"{len(missing)} missing, {len(extra)} extra")
        for image_id, caption in by_image.items():
            key = f"{kind}\t{image_id}"
            refs[key] = list(references[image_id])
            cands[key] = caption
            keys[key] = (kind, image_id)
    scores = caption_scores(refs, cands, meteor=meteor)
    rows = []
    for key, values in scores.per_image.items():
        kind, image_id = keys[key]
        rows.append({"camera": kind, "image_id": image_id, "caption": cands[key],
                     **{m: (np.nan if v is None else float(v)) for m, v in values.items()}})
    return pd.DataFrame(rows)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def plot_qualitative(
    scenes: Sequence[Tensor],
    references: Sequence[Sequence[str]],
    sensor_images: Mapping[str, Sequence[Tensor]],
    ssim_values: Mapping[str, Sequence[float]],
    captions: Mapping[str, Sequence[str]],
    meteor_values: Mapping[str, Sequence[float]],
    *,
    n_references: int = 2,
    panel_in: float = 2.6,
):
    """The paper's Fig. 2 for several images: one row per image, the original with its
    ground-truth captions, then each camera's sensor image titled with its SSIM and the
    METEOR of its caption, the caption below."""
    plt = _plt()
    kinds = list(sensor_images)
    n = len(scenes)
    if any(len(sensor_images[k]) != n or len(captions[k]) != n for k in kinds) \
            or len(references) != n:
        raise ValueError("scenes, references, sensor images and captions differ in length")
    fig, axes = plt.subplots(n, len(kinds) + 1,
                             figsize=((len(kinds) + 1) * panel_in, n * (panel_in + 1.0)),
                             squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(_image(scenes[i]))
        ax.set_title("original", fontsize=9)
        refs = "\n".join(_wrap(f"GT: {r}", 34) for r in references[i][:n_references])
        ax.set_xlabel(refs, fontsize=7, loc="left")
        for c, kind in enumerate(kinds, start=1):
            ax = axes[i, c]
            ax.imshow(_image(sensor_images[kind][i]))
            meteor = meteor_values[kind][i]
            score = "–" if meteor is None or math.isnan(meteor) else f"{meteor:.2f}"
            ax.set_title(f"{kind}\nSSIM {ssim_values[kind][i]:.2f} · METEOR {score}",
                         fontsize=9)
            ax.set_xlabel(_wrap(captions[kind][i], 34), fontsize=7, loc="left")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_score_vs_ssim(scores, ssim_by_camera: Mapping[str, Mapping[Any, float]],
                       metric: str = "METEOR"):
    """Seaborn: the ``metric`` (default METEOR) of each test image's caption against the SSIM
    of its sensor image, one colour per camera (``scores`` from :func:`per_image_scores`;
    ``ssim_by_camera``: ``{camera: {image_id: SSIM}}``), with the per-camera distribution of
    the metric beside it."""
    import seaborn as sns

    plt = _plt()
    if metric not in scores.columns or scores[metric].isna().all():
        raise ValueError(f"the scores hold no {metric!r} value (computed without it?)")
    frame = scores.copy()
    frame["SSIM"] = [float(ssim_by_camera[k][i]) for k, i in
                     zip(frame["camera"], frame["image_id"], strict=True)]
    order = [k for k in CAMERA_KINDS if k in set(frame["camera"])]
    fig, (ax_sc, ax_box) = plt.subplots(1, 2, figsize=(13, 3.9),
                                        gridspec_kw={"width_ratios": [1.4, 1]})
    sns.scatterplot(data=frame, x="SSIM", y=metric, hue="camera", hue_order=order, s=14,
                    alpha=0.6, ax=ax_sc)
    ax_sc.set(title=f"each test image: privacy (SSIM) and caption quality ({metric})")
    sns.boxplot(data=frame, x="camera", y=metric, order=order, color="tab:green",
                fliersize=2, ax=ax_box)
    ax_box.set(xlabel="", title=f"{metric} of single captions")
    fig.tight_layout()
    return fig
