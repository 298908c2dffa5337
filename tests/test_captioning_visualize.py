"""Attention-map figures and metric tables of the captioner."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only: no display

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from privcap.captioning.visualize import (  # noqa: E402
    attention_maps,
    metrics_table,
    plot_attention,
    plot_examples,
)


def test_attention_maps_upsample_and_normalise() -> None:
    alphas = torch.zeros(2, 4)
    alphas[0, 0] = 1.0  # top-left region of a 2 x 2 grid
    alphas[1] = 0.25  # uniform
    maps = attention_maps(alphas, (2, 2), (8, 8))
    assert maps.shape == (2, 8, 8)
    assert float(maps[0].max()) == pytest.approx(1.0)
    assert float(maps[0, 0, 0]) == pytest.approx(1.0) and float(maps[0, 7, 7]) == 0.0
    torch.testing.assert_close(maps[1], torch.ones(8, 8))
    with pytest.raises(ValueError, match="grid"):
        attention_maps(torch.zeros(2, 5), (2, 2), (8, 8))


def test_plot_attention_has_one_panel_per_word() -> None:
    fig = plot_attention(torch.rand(3, 16, 16), ["a", "red", "circle"],
                         torch.softmax(torch.randn(4, 4), -1), (2, 2), columns=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["image", "a", "red", "circle"]
    plt.close(fig)
    with pytest.raises(ValueError, match="attention maps"):
        plot_attention(torch.rand(3, 8, 8), ["a", "b"], torch.zeros(1, 4), (2, 2))


def test_plot_examples_titles() -> None:
    fig = plot_examples([torch.rand(3, 8, 8)] * 2, [["ref one", "ref two"], ["x"]],
                        ["gen a", "gen b"], columns=2)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("model: gen a") and "ref: ref two" in titles[0]
    plt.close(fig)
    with pytest.raises(ValueError, match="differ in length"):
        plot_examples([torch.rand(3, 8, 8)], [["a"], ["b"]])


def test_metrics_table() -> None:
    table = metrics_table({"model": {"BLEU_4": 0.25, "CIDEr": 1.0, "METEOR": None}},
                          names=("BLEU_4", "METEOR", "CIDEr"))
    assert table.splitlines() == [
        "| captions | BLEU-4 | METEOR | CIDEr |",
        "|---|---|---|---|",
        "| model | 0.250 | - | 1.000 |",
    ]
