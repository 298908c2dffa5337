"""The end-to-end chapters' helpers: the book's Table 1 settings and run folders, Table 1 beside
the paper, loss-term tables, lens heights, PSF images, per-image scores and the figures."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # tests only: no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from privcap.optics import OpticsConfig  # noqa: E402
from privcap.paper import TABLE1_ROWS  # noqa: E402
from privcap.paths import RESULTS_ENV  # noqa: E402
from privcap.training.report import (  # noqa: E402
    Table1Settings,
    base_checkpoint,
    lens_heights_um,
    load_table1_evaluations,
    loss_terms_frame,
    per_image_scores,
    plot_loss_terms,
    plot_table1_heatmap,
    psf_rgb,
    table1_frame,
    table1_markdown,
    table1_run_dir,
    table1_settings,
)
from privcap.training.table1 import TABLE1_METRICS  # noqa: E402

TINY_OPTICS = OpticsConfig.quick().replace(grid_size=32, num_terms=15, psf_size=32,
                                           image_size=32, psf_radius_px=4.0)


# --------------------------------------------------------------------------- settings, paths
def test_book_settings_have_several_seeds_and_smoke_is_tiny() -> None:
    quick = table1_settings("quick")
    assert len(quick.seeds) >= 2 and quick.meteor and quick.epochs is None
    smoke = table1_settings("quick", smoke=True)
    assert smoke.seeds == quick.seeds and smoke.epochs == 1 and not smoke.meteor
    assert smoke.num_images < quick.num_images and smoke.num_test_images < quick.num_test_images
    assert dict(smoke.train_overrides)["batch_size"] <= smoke.num_images


def test_settings_changes_none_keeps_the_book_value_and_empty_captions_mean_none() -> None:
    base = table1_settings("quick")
    same = table1_settings("quick", seeds=None, epochs=None, captions_json="")
    assert same == base and same.captions_json is None
    changed = table1_settings("quick", seeds=[3, 4, 5], epochs=2, num_test_images=7)
    assert changed.seeds == (3, 4, 5) and changed.epochs == 2 and changed.num_test_images == 7


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(sedes=(0,)), "unknown Table 1 settings"),
        (dict(seeds=(1, 1)), "seeds repeat"),
        (dict(seeds=()), "seeds is empty"),
        (dict(epochs=0), "epochs"),
        (dict(num_test_images=0), "num_test_images"),
    ],
)
def test_settings_refuse_bad_values(changes, message) -> None:
    with pytest.raises(ValueError, match=message):
        table1_settings("quick", **changes)


def test_settings_refuse_an_unknown_profile() -> None:
    with pytest.raises(ValueError, match="profile"):
        Table1Settings(profile="huge")


def test_run_folder_and_base_checkpoint_follow_the_results_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    assert table1_run_dir("quick", "defocus", 1) == tmp_path / "quick" / "cameras" / \
        "defocus" / "seed1"
    assert table1_run_dir("quick", "low-res", 0, out_root=tmp_path / "x") == \
        tmp_path / "x" / "cameras" / "low-res" / "seed0"
    with pytest.raises(ValueError, match="camera must be one of"):
        table1_run_dir("quick", "pinhole", 0)
    with pytest.raises(FileNotFoundError, match="chapter 03"):
        base_checkpoint("quick")
    with pytest.raises(FileNotFoundError, match="seed0.evaluation.json|evaluation.json"):
        load_table1_evaluations("quick", [0], ["no-lens"])


# --------------------------------------------------------------------------- Table 1
def fake_table() -> dict:
    rows = []
    for kind, scale, ssim in (("no-lens", 1.0, 1.0), ("learned-lens", 0.9, 0.45),
                              ("defocus", 0.8, 0.6), ("low-res", 0.5, 0.55)):
        row = {"model": kind, "privacy": kind != "no-lens", "n_images": 10,
               "SSIM_mean": ssim, "SSIM_std": 0.1}
        for k, metric in enumerate(TABLE1_METRICS):
            row[metric] = scale * (0.1 + 0.1 * k)
            row[f"{metric}_std"] = 0.01
        rows.append(row)
    return {"profile": "quick", "dataset": "synthetic", "seeds": [0, 1], "rows": rows}


def test_table_frame_puts_the_paper_value_beside_each_camera() -> None:
    frame = table1_frame(fake_table()).set_index("model")
    assert frame.loc["no-lens", "paper_model"] == "Proposed-w"
    assert frame.loc["no-lens", "CIDEr_paper"] == pytest.approx(1.012)
    assert frame.loc["learned-lens", "BLEU_4_paper"] == pytest.approx(0.29)
    assert frame.loc["low-res", "METEOR_paper"] == pytest.approx(0.233)
    assert pd.isna(frame.loc["defocus", "ROUGE_L_paper"])  # not in the paper's table
    assert frame.loc["learned-lens", "SSIM_paper"] == pytest.approx(0.48)
    assert pd.isna(frame.loc["defocus", "SSIM_paper"])


def test_table_markdown_follows_the_paper_rows_with_ours_beside_theirs() -> None:
    text = table1_markdown(fake_table())
    lines = text.splitlines()
    assert len(lines) == 2 + len(TABLE1_ROWS)
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[2:6] == ["B-1", "B-1 (paper)", "B-2", "B-2 (paper)"]
    assert head[-2:] == ["SSIM", "SSIM (paper)"]
    cells = {line.split("|")[2].strip().split(" ")[0].rstrip(":"):
             [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    brnn = cells["BRNN"]
    assert "quoted" in brnn[1] and "Karpathy" in brnn[1]
    assert brnn[2:4] == ["–", "64.2"] and brnn[-2:] == ["–", "–"]
    proposed = cells["Proposed"]
    assert "`learned-lens`" in proposed[1]
    # B-1 ours (0.9 * 0.1 = 9.0 %, std 1.0 %) then the paper's 68.9
    assert proposed[2:4] == ["9.0 ± 1.0", "68.9"]
    cider = head.index("C")
    assert proposed[cider:cider + 2] == ["63.0 ± 1.0", "89.0"]
    assert proposed[-2:] == ["0.45 ± 0.10", "0.48 ± 0.12"]
    assert cells["Low-Res"][-1] == "–"
    rouge = head.index("R-L")
    assert cells["Proposed-w"][rouge + 1] == "–"
    # one seed: no standard deviation
    one = fake_table() | {"seeds": [0]}
    assert "9.0 | 68.9" in table1_markdown(one)


def test_heatmap_shows_each_camera_as_percent_of_no_lens() -> None:
    fig = plot_table1_heatmap(fake_table())
    ours, paper = fig.axes[0], fig.axes[1]
    values = [t.get_text() for t in ours.texts]
    assert values.count("90") == len(TABLE1_METRICS) and values.count("50") == len(TABLE1_METRICS)
    # paper: Proposed CIDEr 89.0 of Proposed-w 101.2 -> 88 %
    assert "88" in [t.get_text() for t in paper.texts]
    plt.close(fig)
    without = fake_table()
    without["rows"] = without["rows"][1:]
    with pytest.raises(ValueError, match="no-lens"):
        plot_table1_heatmap(without)


# --------------------------------------------------------------------------- training curves
def fake_history() -> dict:
    steps = []
    for step, (epoch, ce, p) in enumerate([(1, 3.0, 0.9), (1, 2.0, 0.8), (2, 1.5, 0.7),
                                           (2, 1.0, 0.6)], start=1):
        steps.append({"step": step, "epoch": epoch, "total": ce + 2 * p, "ce": ce, "ds": 10.0,
                      "p": p, "h": None, "tokens": 5})
    return {"steps": steps, "train_config": {"w_ce": 1.0, "ds_lambda": 0.5, "w_p": 2.0,
                                             "w_h": 3.0}}


def test_loss_terms_frame_weights_each_term_and_skips_missing_ones() -> None:
    frame = loss_terms_frame(fake_history())
    assert set(frame["term"]) == {"total", "ce", "ds", "p"}  # no L_H without a lens
    p = frame[frame["term"] == "p"]
    assert p["epoch"].tolist() == [0.5, 1.0, 1.5, 2.0]
    assert p["weighted"].tolist() == pytest.approx([1.8, 1.6, 1.4, 1.2])
    ds = frame[frame["term"] == "ds"]
    assert ds["weighted"].tolist() == pytest.approx([5.0] * 4)
    with pytest.raises(ValueError, match="no training step"):
        loss_terms_frame({"steps": [], "train_config": {}})


def test_plot_loss_terms_draws_one_panel_per_term_and_the_changes() -> None:
    fig = plot_loss_terms(fake_history(), window=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and titles[-1].startswith("weighted term minus")
    plt.close(fig)


# --------------------------------------------------------------------------- the lens
def test_lens_heights_of_defocus_alone_follow_z4() -> None:
    a4 = 1.5
    z4_only = [0.0] * TINY_OPTICS.num_terms
    z4_only[3] = a4
    heights, aperture = lens_heights_um(TINY_OPTICS, [z4_only, z4_only, [0.0] * 15])
    assert heights.shape == (3, 32, 32) and aperture.shape == (32, 32)
    np.testing.assert_array_equal(heights[0], heights[1])
    np.testing.assert_allclose(heights[2], 0.0, atol=1e-12)
    # Z4 = sqrt(3) (2 rho^2 - 1): lowest at the centre, the rim 2 sqrt(3) a4 higher
    centre = heights[0][16, 16]
    assert centre == pytest.approx(-math.sqrt(3) * a4, rel=0.02)
    rim = heights[0][aperture].max()
    assert rim - heights[0][aperture].min() == pytest.approx(2 * math.sqrt(3) * a4, rel=0.1)
    with pytest.raises(ValueError, match="no coefficient"):
        lens_heights_um(TINY_OPTICS, [])


def test_psf_rgb_crops_the_centre_and_normalises() -> None:
    psf = torch.zeros(3, 9, 9)
    psf[1, 4, 4] = 4.0
    psf[0, 0, 0] = 1.0  # outside a 3-pixel crop
    image = psf_rgb(psf, crop_px=3, gamma=1.0)
    assert image.shape == (3, 3, 3)
    assert image[1, 1, 1] == pytest.approx(1.0) and image[..., 0].max() == 0.0
    full = psf_rgb(psf, gamma=0.5)
    assert full[0, 0, 0] == pytest.approx(0.5)  # sqrt(1 / 4)
    with pytest.raises(ValueError, match="3 x K x K"):
        psf_rgb(torch.zeros(9, 9))


# --------------------------------------------------------------------------- Fig. 2 scores
def test_per_image_scores_refuse_captions_of_other_images() -> None:
    refs = {"1": ["a red circle"], "2": ["a blue square"]}
    with pytest.raises(ValueError, match="do not match"):
        per_image_scores(refs, {"no-lens": {"1": "a red circle"}}, meteor=False)


def test_per_image_scores_score_every_camera_image_by_image() -> None:
    refs = {"1": ["a red circle on the left"], "2": ["a blue square at the top"]}
    captions = {"no-lens": {"1": "a red circle on the left", "2": "a blue square at the top"},
                "low-res": {"1": "a blue square at the top", "2": "a red circle on the left"}}
    scores = per_image_scores(refs, captions, meteor=False).set_index(["camera", "image_id"])
    assert len(scores) == 4
    assert scores.loc[("no-lens", "1"), "BLEU_1"] == pytest.approx(1.0, abs=1e-6)
    assert scores.loc[("low-res", "1"), "BLEU_1"] < 0.6
    assert scores.loc[("low-res", "2"), "caption"] == "a red circle on the left"
    assert scores["METEOR"].isna().all()


def test_a_run_made_with_other_settings_is_not_reused(tmp_path, monkeypatch) -> None:
    import json

    from privcap.training.report import check_run_settings, run_train_config

    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    settings = table1_settings("quick", smoke=True)
    base = tmp_path / "quick" / "captioner" / "best.pt"
    base.parent.mkdir(parents=True)
    base.write_bytes(b"")
    run_dir = table1_run_dir("quick", "defocus", 1)
    check_run_settings(settings, "defocus", 1)  # nothing there yet
    run_dir.mkdir(parents=True)
    config = run_train_config(settings, "defocus", 1).to_dict()
    assert config["seed"] == 1 and config["epochs"] == 1 and config["batch_size"] == 8
    history = {"train_config": config | {"device": "cpu"}, "init_from": str(base)}
    (run_dir / "history.json").write_text(json.dumps(history))
    check_run_settings(settings, "defocus", 1)  # same settings (the device may differ)
    (run_dir / "history.json").write_text(json.dumps(history | {
        "train_config": config | {"lr_lens": 123.0}}))
    with pytest.raises(ValueError, match=r"differ in \['lr_lens'\].*delete that folder"):
        check_run_settings(settings, "defocus", 1)
    (run_dir / "history.json").write_text(json.dumps(history | {"init_from": "other.pt"}))
    with pytest.raises(ValueError, match="started from 'other.pt'"):
        check_run_settings(settings, "defocus", 1)
