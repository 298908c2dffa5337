"""Tables and figures of the privacy chapters, drawn from the result files only.

* :func:`privacy_frames` -- the rows of ``privacy.json`` as pandas tables (rates added);
* :func:`reconstruction_markdown` -- SSIM of every camera and attack beside the paper's
  Fig. 3 numbers (:data:`privcap.paper.FIG3_SSIM`);
* :func:`plot_reconstructions` -- the analogue of the paper's Fig. 3: original, private and
  reconstructed images side by side with their SSIM (``privacy_examples.pt``);
* :func:`plot_attack_ssim`, :func:`plot_face_privacy` -- the measurements at a glance;
* :func:`plot_frontier` -- caption CIDEr against each privacy measure (``frontier.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from privcap.paper import FIG3_SSIM

__all__ = [
    "ATTACK_LABELS",
    "face_markdown",
    "plot_attack_ssim",
    "plot_face_privacy",
    "plot_frontier",
    "plot_frontier_lenses",
    "plot_mtf",
    "plot_reconstructions",
    "privacy_frames",
    "reconstruction_markdown",
]

#: column titles of the attacks (``None``: the camera's own image)
ATTACK_LABELS: dict[str | None, str] = {
    None: "private image", "none": "private image", "wiener": "Wiener",
    "richardson-lucy": "Richardson-Lucy", "learned": "learned (DeblurGAN-v2-like)",
}
_CAMERA_COLOURS = {"no-lens": "tab:gray", "learned-lens": "tab:red", "defocus": "tab:blue",
                   "low-res": "tab:green"}


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _label(attack: str | None) -> str:
    return ATTACK_LABELS.get(attack, str(attack))


def privacy_frames(privacy: Mapping[str, Any]) -> dict[str, Any]:
    """pandas tables of ``privacy.json``: ``"ssim"`` (private and attack rows together,
    attack ``"private image"`` for the camera's own), ``"control"``, ``"faces"`` (with
    ``rate = detected / faces``), ``"sensitive_detail"`` and ``"reidentification"``
    (attack labels as in :data:`ATTACK_LABELS`)."""
    import pandas as pd

    ssim_rows = [{"camera": r["camera"], "attack": _label(None), **{
        k: r[k] for k in ("SSIM_mean", "SSIM_std", "PSNR_mean", "n_images")}}
        for r in privacy["private"]]
    ssim_rows += [{"camera": r["camera"], "attack": _label(r["attack"]), **{
        k: r[k] for k in ("SSIM_mean", "SSIM_std", "PSNR_mean", "n_images")}}
        for r in privacy["attacks"]]
    def labelled(key: str) -> Any:
        names = {None: "none (blurred image)"} if key == "control" else {}
        return pd.DataFrame([{**r, "attack": names.get(r["attack"], _label(r["attack"]))}
                             for r in privacy[key]])

    faces = labelled("faces")
    if len(faces):
        faces["rate"] = faces["detected"] / faces["faces"].where(faces["faces"] > 0)
    frames = {"ssim": pd.DataFrame(ssim_rows), "control": labelled("control"),
              "faces": faces, "sensitive_detail": labelled("sensitive_detail"),
              "reidentification": labelled("reidentification")}
    return frames


def reconstruction_markdown(privacy: Mapping[str, Any],
                            paper: Mapping[str, tuple[float, float]] = FIG3_SSIM) -> str:
    """Markdown table: mean +- std SSIM (and mean PSNR) of every camera's private images
    and of each attack, and the paper's Fig. 3 values for its learned lens."""
    columns = [None, "wiener", "richardson-lucy", "learned"]
    cells: dict[str, dict[Any, str]] = {}
    for row in privacy["private"]:
        cells.setdefault(row["camera"], {})[None] = _cell(row)
    for row in privacy["attacks"]:
        cells.setdefault(row["camera"], {})[row["attack"]] = _cell(row)
    head = "| camera | " + " | ".join(_label(c) for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for camera, values in cells.items():
        lines.append(f"| {camera} | " + " | ".join(values.get(c, "--") for c in columns)
                     + " |")
    quoted = {None: paper.get("private"), "wiener": paper.get("wiener"),
              "learned": paper.get("deblurgan-v2")}
    lines.append("| paper's learned lens (COCO) | " + " | ".join(
        f"{quoted[c][0]:.2f} ± {quoted[c][1]:.2f}" if quoted.get(c) else "--"
        for c in columns) + " |")
    return "\n".join(lines)


def face_markdown(privacy: Mapping[str, Any]) -> str:
    """Markdown table, one row per camera and attack: faces each detector still finds
    (``detected / faces`` of the originals) and the top-1 re-identification accuracy."""
    detectors = list(dict.fromkeys(r["detector"] for r in privacy["faces"]))
    cases: dict[tuple[str, Any], dict[str, str]] = {}
    for r in privacy["faces"]:
        share = f" ({100 * r['detected'] / r['faces']:.0f} %)" if r["faces"] else ""
        cases.setdefault((r["camera"], r["attack"]), {})[r["detector"]] = \
            f"{r['detected']} / {r['faces']}{share}"
    for r in privacy["reidentification"]:
        cases.setdefault((r["camera"], r["attack"]), {})["reid"] = \
            f"{r['top1']:.3f} (chance {r['chance']:.3f})"
    head = ["camera", "attack", *(f"{d} faces still found" for d in detectors),
            "re-identified, top-1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (camera, attack), cells in cases.items():
        values = [camera, _label(attack), *(cells.get(d, "--") for d in detectors),
                  cells.get("reid", "--")]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _cell(row: Mapping[str, Any]) -> str:
    psnr = row["PSNR_mean"]
    tail = f" ({psnr:.1f} dB)" if psnr is not None else ""
    return f"{row['SSIM_mean']:.3f} ± {row['SSIM_std']:.3f}{tail}"


def _image(x: torch.Tensor) -> np.ndarray:
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def plot_reconstructions(examples: Mapping[str, Any], kind: str = "scenes",
                         cameras: Sequence[str] = ("learned-lens", "defocus"),
                         attacks: Sequence[str] = ("none", "wiener", "richardson-lucy",
                                                   "learned"),
                         max_images: int | None = None):
    """The analogue of the paper's Fig. 3: one row per example image and camera, columns
    original, private image and each attack, each titled with its SSIM to the original.
    ``examples`` is ``privacy_examples.pt``; ``kind`` ``"scenes"`` or ``"faces"``; an attack
    a camera did not get is left out (blank)."""
    if kind not in ("scenes", "faces"):
        raise ValueError(f"kind must be 'scenes' or 'faces', got {kind!r}")
    plt = _plt()
    images = examples[kind]
    originals = images["original"]
    n = len(originals) if max_images is None else min(max_images, len(originals))
    cameras = [c for c in cameras if c in images]
    if not cameras:
        raise ValueError(f"no example images of {list(cameras)}; available: {list(images)}")
    rows = [(i, c) for i in range(n) for c in cameras]
    cols = 1 + len(attacks)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.1 * cols, 2.25 * len(rows)),
                             squeeze=False)
    for r, (i, camera) in enumerate(rows):
        axes[r, 0].imshow(_image(originals[i]))
        axes[r, 0].set_title("original", fontsize=8)
        axes[r, 0].set_ylabel(camera, fontsize=8)
        for c, attack in enumerate(attacks, start=1):
            ax = axes[r, c]
            if attack in images[camera]:
                score = examples["ssim"][kind][camera][attack][i]
                ax.imshow(_image(images[camera][attack][i]))
                ax.set_title(f"{_label(attack).split(' (')[0]}\nSSIM {score:.2f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    fig.tight_layout()
    return fig


def plot_attack_ssim(privacy: Mapping[str, Any],
                     paper: Mapping[str, tuple[float, float]] = FIG3_SSIM):
    """Mean SSIM (error bars: standard deviation over images) of every camera's private
    images and reconstructions, with the paper's learned-lens values as horizontal lines,
    and the competence control on the right."""
    plt = _plt()
    cameras = list(dict.fromkeys(r["camera"] for r in privacy["private"]))
    attacks = [None, "wiener", "richardson-lucy", "learned"]
    values: dict[tuple[str, Any], tuple[float, float]] = {
        (r["camera"], None): (r["SSIM_mean"], r["SSIM_std"]) for r in privacy["private"]}
    values.update({(r["camera"], r["attack"]): (r["SSIM_mean"], r["SSIM_std"])
                   for r in privacy["attacks"]})
    fig, (ax, ax_c) = plt.subplots(1, 2, figsize=(13, 4.4),
                                   gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(attacks)
    colours = dict(zip(attacks, ("tab:gray", "tab:blue", "tab:orange", "tab:purple"),
                       strict=True))
    labelled: set[Any] = set()
    for i, camera in enumerate(cameras):
        present = [a for a in attacks if (camera, a) in values]
        for k, attack in enumerate(present):
            mean, std = values[(camera, attack)]
            ax.bar(i + (k - (len(present) - 1) / 2) * width, mean, width, yerr=std,
                   capsize=2, color=colours[attack],
                   label=None if attack in labelled else _label(attack))
            labelled.add(attack)
    styles = {"private": ":", "wiener": "--", "deblurgan-v2": "-."}
    for key, (mean, _) in paper.items():
        ax.axhline(mean, color="tab:red", linestyle=styles.get(key, "--"), linewidth=0.9,
                   label=f"paper, learned lens: {key}")
    ax.set_xticks(range(len(cameras)), cameras)
    ax.set(ylabel="mean SSIM to the original", ylim=(0, 1.05),
           title="held-out scenes: private images and reconstructions")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    control = privacy["control"]
    ax_c.bar(range(len(control)), [r["SSIM_mean"] for r in control], color="tab:gray")
    names = [_label(r["attack"]).split(" (")[0] if r["attack"] is not None else
             "blurred, " + r["blur"].split(", ")[-1].split(" (")[0] for r in control]
    ax_c.set_xticks(range(len(control)), names, rotation=35, ha="right", fontsize=7)
    ax_c.axhline(0.8, color="k", linestyle=":", linewidth=0.9)
    ax_c.set(ylim=(0, 1.05), ylabel="mean SSIM",
             title="control: " + control[0]["blur"].split(",")[0] if control else "control")
    fig.tight_layout()
    return fig


def plot_mtf(details: Mapping[str, Any], floor: float | None = None):
    """Contrast each lens keeps at each spatial frequency (radial mean of ``|T|``, the
    ``"mtf"`` entry of ``privacy_details.json``), on a log scale, with the floor under
    which a frequency counts as lost."""
    from privcap.privacy.evaluate import MTF_FLOOR

    plt = _plt()
    floor = MTF_FLOOR if floor is None else floor
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for camera, curve in details.get("mtf", {}).items():
        ax.semilogy(curve["cycles_per_pixel"], np.maximum(curve["mtf"], 1e-6),
                    color=_CAMERA_COLOURS.get(camera, None),
                    label=f"{camera} ({100 * curve['share_passed']:.0f} % of frequencies "
                          f"above the floor)")
    ax.axhline(floor, color="k", linestyle=":", linewidth=0.9, label="floor")
    ax.set(xlabel="spatial frequency (cycles per pixel)",
           ylabel="kept contrast |T| (radial mean)", ylim=(1e-4, 1.2))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_face_privacy(privacy: Mapping[str, Any]):
    """Heat maps: share of the originals' faces each detector still finds, and top-1
    re-identification, for every camera (rows) and attack (columns); tag-reading accuracy
    beside them."""
    import seaborn as sns

    plt = _plt()
    frames = privacy_frames(privacy)
    faces = frames["faces"]
    panels = [(f"faces still found ({d})", faces[faces["detector"] == d]
               .pivot(index="camera", columns="attack", values="rate"))
              for d in dict.fromkeys(faces["detector"])]
    reid = frames["reidentification"]
    if len(reid):
        chance = float(reid["chance"].iloc[0])
        panels.append((f"re-identified, top-1 (chance {chance:.2f})",
                       reid.pivot(index="camera", columns="attack", values="top1")))
    detail = frames["sensitive_detail"]
    panels.append(("digit tag read (chance {:.2f})".format(float(detail["chance"].iloc[0])),
                   detail.pivot(index="camera", columns="attack", values="accuracy")))
    order = list(dict.fromkeys(r["camera"] for r in privacy["private"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.2), squeeze=False)
    for ax, (title, table) in zip(axes[0], panels, strict=True):
        table = table.reindex([c for c in order if c in table.index])
        columns = [c for c in ATTACK_LABELS.values() if c in table.columns]
        table = table[list(dict.fromkeys(columns))]
        sns.heatmap(table, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="rocket_r", cbar=False,
                    ax=ax)
        ax.set(title=title, xlabel="", ylabel="")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    fig.tight_layout()
    return fig


def plot_frontier(frontier: Mapping[str, Any]):
    """Caption CIDEr against the three privacy measures of ``frontier.json``: the sweep's
    lenses joined in order of ``w_p`` (labelled), the Table 1 cameras as separate markers."""
    plt = _plt()
    measures = [("SSIM_best", "best reconstruction SSIM\n(private or non-blind attack)"),
                ("face_rate", "faces still found by MTCNN (share)"),
                ("hidden_accuracy", "digit tag read (best reader)")]
    sweep = sorted((p for p in frontier["points"] if p["source"] == "frontier"),
                   key=lambda p: p["w_p"])
    table1 = [p for p in frontier["points"] if p["source"] == "table1"]
    fig, axes = plt.subplots(1, len(measures), figsize=(16, 4.2), sharey=True)
    for ax, (key, label) in zip(axes, measures, strict=True):
        ax.plot([p[key] for p in sweep], [p["CIDEr"] for p in sweep], "o-", color="tab:red",
                label="learned lens, swept $w_p$")
        for p in sweep:
            ax.annotate(f"{p['w_p']:g}", (p[key], p["CIDEr"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="tab:red")
        for p in table1:
            ax.plot(p[key], p["CIDEr"], "s", markersize=8, markerfacecolor="none",
                    markeredgewidth=1.5, color=_CAMERA_COLOURS.get(p["camera"], "k"),
                    label=f"Table 1: {p['camera']}")
        if key == "hidden_accuracy" and sweep:
            ax.axvline(sweep[0]["hidden_chance"], color="k", linestyle=":", linewidth=0.9,
                       label="chance")
        ax.set(xlabel=label, xlim=(-0.02, 1.02))
    axes[0].set_ylabel("CIDEr (test scenes, seed 0)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def plot_frontier_lenses(frontier_root: Any, w_p_values: Sequence[float],
                         psf_crop_px: int = 48):
    """One column per swept lens (``<frontier_root>/wp<value>/``): its PSF (central
    ``psf_crop_px`` pixels, square-root scale) and what it records of an evaluated scene and
    of the portraits, with the SSIM to the original."""
    from pathlib import Path

    from privcap.privacy.evaluate import EXAMPLES_FILE
    from privcap.privacy.frontier import wp_label
    from privcap.training.checkpoint import load_run
    from privcap.training.report import psf_rgb

    plt = _plt()
    root = Path(frontier_root)
    columns = []
    for value in w_p_values:
        folder = root / wp_label(value)
        _, camera, _ = load_run(folder / "cameras" / "learned-lens" / "seed0", which="last")
        with torch.no_grad():
            psf = camera.psf()
        examples = torch.load(folder / EXAMPLES_FILE, weights_only=True)
        columns.append((value, psf, examples))
    first = columns[0][2]
    shown = [("scenes", 0)] + [("faces", i) for i in range(len(first["faces"]["original"]))]
    fig, axes = plt.subplots(1 + len(shown), len(columns) + 1,
                             figsize=(2.0 * (len(columns) + 1), 2.1 * (1 + len(shown))),
                             squeeze=False)
    axes[0, 0].axis("off")
    for r, (kind, i) in enumerate(shown, start=1):
        axes[r, 0].imshow(_image(first[kind]["original"][i]))
        axes[r, 0].set_title("original", fontsize=8)
    for c, (value, psf, examples) in enumerate(columns, start=1):
        axes[0, c].imshow(psf_rgb(psf, psf_crop_px))
        axes[0, c].set_title(f"$w_p$ = {value:g}: PSF", fontsize=8)
        for r, (kind, i) in enumerate(shown, start=1):
            axes[r, c].imshow(_image(examples[kind]["learned-lens"]["none"][i]))
            score = examples["ssim"][kind]["learned-lens"]["none"][i]
            axes[r, c].set_title(f"SSIM {score:.2f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
