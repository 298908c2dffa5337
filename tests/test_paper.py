"""The figures quoted from the paper: transcription and lookup."""

from __future__ import annotations

import pytest

from privcap import paper


def test_table1_rows_are_the_papers_in_order() -> None:
    names = [r["model"] for r in paper.TABLE1_ROWS]
    assert names == ["BRNN", "NIC", "Hard Attn", "2PSC-w", "Proposed-w", "2PSC", "Proposed",
                     "Defocus", "Low-Res"]
    assert [r["privacy"] for r in paper.TABLE1_ROWS] == [False] * 5 + [True] * 4


@pytest.mark.parametrize(
    ("model", "metric", "value"),
    [("learned-lens", "CIDEr", 0.89), ("no-lens", "CIDEr", 1.012), ("defocus", "BLEU_1", 0.673),
     ("low-res", "METEOR", 0.233), ("Proposed-w", "BLEU_4", 0.333), ("NIC", "CIDEr", None)],
)
def test_paper_row_values_are_fractions(model: str, metric: str, value: float | None) -> None:
    assert paper.paper_row(model)[metric] == value


def test_unknown_model_is_named() -> None:
    with pytest.raises(ValueError, match="'pinhole'"):
        paper.paper_row("pinhole")


def test_fig3_ssim() -> None:
    assert paper.FIG3_SSIM["private"] == (0.48, 0.12)
    assert paper.FIG3_SSIM["wiener"][0] < paper.FIG3_SSIM["deblurgan-v2"][0]
