"""Numbers quoted from the paper, for the chapters that put measured results beside them.

Nothing here is computed: these are the figures printed in *Learning to Describe Scenes via
Privacy-aware Optical Lens* (Arguello et al.), kept in one place with their source so that
every chapter quotes them the same way. Caption metrics are fractions (the paper prints
percentages); ``None`` marks a cell the paper leaves empty.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TABLE1_SOURCE",
    "TABLE1_ROWS",
    "TABLE1_MEASURED_NAMES",
    "FIG3_SSIM",
    "FIG3_SOURCE",
    "paper_row",
]

#: where the rows of :data:`TABLE1_ROWS` come from
TABLE1_SOURCE = "Table 1 of the paper (COCO 2014, Karpathy test split)"

_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "CIDEr")


def _row(model: str, privacy: bool, cite: str, *values: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"model": model, "privacy": privacy, "cite": cite}
    for name, value in zip(_METRICS, values, strict=True):
        row[name] = None if value is None else round(value / 100.0, 6)
    return row


#: Table 1 of the paper, in its order; metrics as fractions. ``cite`` is the paper's
#: reference for literature rows, ``"this paper"`` for the authors' own rows.
TABLE1_ROWS: tuple[dict[str, Any], ...] = (
    _row("BRNN", False, "Karpathy & Fei-Fei 2015 [10]", 64.2, 45.1, 30.3, 20.1, 19.5, 66.6),
    _row("NIC", False, "Vinyals et al. 2015 [25]", 66.6, 46.1, 32.9, 24.6, 23.7, None),
    _row("Hard Attn", False, "Xu et al. 2015 [28]", 71.8, 50.4, 35.7, 25.0, 23.0, None),
    _row("2PSC-w", False, "Arguello et al. 2022 [3]", 72.1, 54.8, 40.4, 29.6, 29.2, 89.2),
    _row("Proposed-w", False, "this paper", 73.2, 56.7, 43.4, 33.3, 29.0, 101.2),
    _row("2PSC", True, "Arguello et al. 2022 [3]", 68.9, 51.3, 37.3, 27.0, 28.1, 88.5),
    _row("Proposed", True, "this paper", 68.9, 51.7, 38.5, 29.0, 26.8, 89.0),
    _row("Defocus", True, "this paper", 67.3, 49.5, 35.5, 25.5, 26.8, 81.1),
    _row("Low-Res", True, "this paper", 61.6, 42.7, 29.1, 19.9, 23.3, 58.8),
)

#: the paper's name of each camera that privcap measures (``table1.json`` model names)
TABLE1_MEASURED_NAMES: dict[str, str] = {
    "no-lens": "Proposed-w",
    "learned-lens": "Proposed",
    "defocus": "Defocus",
    "low-res": "Low-Res",
}

#: where :data:`FIG3_SSIM` comes from
FIG3_SOURCE = "Sec. 3.2 and Fig. 3 of the paper (COCO test images)"

#: mean +- std SSIM against the originals quoted in the paper: the learned lens's private
#: images, and their reconstructions by Wiener deconvolution and by DeblurGAN-v2
FIG3_SSIM: dict[str, tuple[float, float]] = {
    "private": (0.48, 0.12),
    "wiener": (0.38, 0.10),
    "deblurgan-v2": (0.40, 0.11),
}


def paper_row(model: str) -> dict[str, Any]:
    """The paper's Table 1 row of a privcap camera (``"learned-lens"``, ...) or of a paper
    model name (``"Proposed"``, ...)."""
    name = TABLE1_MEASURED_NAMES.get(model, model)
    for row in TABLE1_ROWS:
        if row["model"] == name:
            return dict(row)
    known = sorted(TABLE1_MEASURED_NAMES) + [r["model"] for r in TABLE1_ROWS]
    raise ValueError(f"no Table 1 row for model {model!r}; known: {known}")
