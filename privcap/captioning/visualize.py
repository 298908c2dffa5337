"""Figures of the captioner: attention maps word by word, example captions.

The attention weights ``alpha_t`` of Eq. 4 live on the backbone's ``h x w`` region grid;
:func:`attention_maps` upsamples them to the image so that each word can be shown with the
part of the image the decoder looked at when it chose that word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def attention_maps(alphas: Tensor, grid: tuple[int, int], image_hw: tuple[int, int]) -> Tensor:
    """``T x H x W`` attention maps from ``T x L`` weights on an ``h x w`` grid (``L = h w``).

    Bilinear upsampling; each map keeps the relative weights of the regions (it is
    normalised to a maximum of 1 for display).
    """
    h, w = grid
    if alphas.dim() != 2 or alphas.shape[1] != h * w:
        raise ValueError(
            f"alphas must be T x {h * w} for a {h} x {w} grid, got {tuple(alphas.shape)}"
        )
    maps = alphas.detach().float().view(-1, 1, h, w)
    maps = F.interpolate(maps, size=image_hw, mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak.view(-1, 1, 1)


def plot_attention(
    image: Tensor,
    words: Sequence[str],
    alphas: Tensor,
    grid: tuple[int, int],
    *,
    columns: int = 6,
    title: str | None = None,
    panel_size_in: float = 1.8,
):
    """Figure: the image, then one panel per word with its attention map over the image.

    Args:
        image: ``3 x H x W`` in ``[0, 1]``.
        words: the generated words (``len(words) <= T``).
        alphas: ``T x L`` attention weights of those words (``<end>`` may follow).
        grid: ``(h, w)`` region grid of the encoder.
        columns: panels per row.
        title: optional figure title.
        panel_size_in: side of one panel in inches.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    n_words = len(words)
    if alphas.shape[0] < n_words:
        raise ValueError(f"{n_words} words but only {alphas.shape[0]} attention maps")
    hw = tuple(image.shape[-2:])
    maps = attention_maps(alphas[:n_words], grid, hw) if n_words else torch.zeros(0, *hw)
    panels = n_words + 1
    rows = (panels + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * panel_size_in, rows * panel_size_in), squeeze=False
    )
    rgb = image.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k == 0:
            ax.imshow(rgb)
            ax.set_title("image", fontsize=9)
        elif k < panels:
            ax.imshow(rgb)
            ax.imshow(maps[k - 1].cpu().numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            ax.set_title(words[k - 1], fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_examples(
    images: Sequence[Tensor],
    references: Sequence[Sequence[str]],
    generated: Sequence[str] | None = None,
    *,
    columns: int = 4,
    n_references: int = 2,
    panel_size_in: float = 3.0,
):
    """Grid of images, each titled with a few reference captions (and the generated one)."""
    import matplotlib.pyplot as plt

    if len(images) != len(references) or (generated is not None and len(generated) != len(images)):
        raise ValueError(
            f"images, references and generated differ in length: {len(images)}, "
            f"{len(references)}, {None if generated is None else len(generated)}"
        )
    rows = max(1, (len(images) + columns - 1) // columns)
    n_lines = n_references + (generated is not None)
    fig, axes = plt.subplots(
        rows, columns,
        figsize=(columns * panel_size_in, rows * (panel_size_in + 0.3 * n_lines)),
        squeeze=False,
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy())
        lines = [f"model: {generated[k]}"] if generated is not None else []
        lines += [f"ref: {r}" for r in references[k][:n_references]]
        ax.set_title("\n".join(_wrap(line, 42) for line in lines), fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def metrics_table(
    rows: Mapping[str, Mapping[str, float | None]],
    names: Sequence[str] = ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"),
    digits: int = 3,
) -> str:
    """Markdown table: one row per labelled metrics dict, one column per metric name.

    A missing or ``None`` value (e.g. METEOR skipped) is shown as ``-``.
    """
    lines = [
        "| captions | " + " | ".join(n.replace("_", "-") for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for label, metrics in rows.items():
        cells = []
        for name in names:
            value = metrics.get(name)
            cells.append("-" if value is None else f"{value:.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
