"""Privacy of trained cameras (``privacy.json``) and the privacy-utility frontier, on tiny runs.

One tiny Table 1 run (a small captioner on 128-pixel synthetic scenes, one seed, one epoch,
the ``quick`` optics) is made in a temporary results folder; the privacy measurements run on
it at smoke size, with the two portraits as the only faces.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from helpers_training import tiny_captioner

from privcap.paths import RESULTS_ENV
from privcap.privacy.evaluate import (
    CONTROL_BLUR,
    CONTROL_BLUR_MIRRORED,
    DETAILS_FILE,
    EXAMPLES_FILE,
    NON_BLIND,
    PRIVACY_FILE,
    PRIVACY_KEYS,
    PrivacySettings,
    best_reconstruction,
    check_attacks,
    default_attacks,
    gaussian_psf,
    load_privacy,
    load_table1_cameras,
    radial_mtf,
    run_privacy,
)
from privcap.privacy.frontier import FRONTIER_FILE, frontier_point, run_frontier, wp_label
from privcap.training import CAMERA_KINDS, build_camera, load_caption_data, train, train_config
from privcap.training.report import run_book_table1, table1_settings

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

KINDS = list(CAMERA_KINDS)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory, one_torch_thread):
    """``<root>/quick``: a 128-pixel clean captioner, Table 1 runs (seed 0) and privacy.json."""
    root = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv(RESULTS_ENV, str(root))
    settings = table1_settings("quick", smoke=True, seeds=(0,))
    train_data, _, _ = load_caption_data("quick", num_images=settings.num_images,
                                         num_val_images=settings.num_val_images,
                                         image_size=128)
    model = tiny_captioner(train_data, image_size=128)
    train(model, build_camera("no-lens"), train_data, None,
          train_config("quick", epochs=1, batch_size=8, device="cpu"),
          root / "quick" / "captioner", progress=False, log_epochs=False)
    run_book_table1(settings)
    privacy = run_privacy("quick", smoke=True, coco_dir=None)
    yield {"root": root / "quick", "privacy": privacy, "settings": settings}
    mp.undo()


def rows(privacy, key, **match):
    return [r for r in privacy[key] if all(r[k] == v for k, v in match.items())]


def test_contract_keys_and_types(tiny_results) -> None:
    privacy = tiny_results["privacy"]
    out = tiny_results["root"]
    on_disk = json.loads((out / PRIVACY_FILE).read_text())
    assert on_disk == json.loads(json.dumps(privacy))
    assert set(on_disk) == {"profile", "dataset", *PRIVACY_KEYS}
    assert on_disk["profile"] == "quick"
    assert "portraits only" in on_disk["dataset"] and "coco-mini" in on_disk["dataset"]
    for key, fields in PRIVACY_KEYS.items():
        assert on_disk[key], f"no {key} rows"
        for row in on_disk[key]:
            assert set(row) == set(fields), (key, row)
            for name in ("SSIM_mean", "SSIM_std", "accuracy", "chance", "entropy_bits", "top1"):
                if name in row:
                    assert isinstance(row[name], float) and math.isfinite(row[name]), row
            for name in ("n_images", "faces", "detected", "gallery"):
                if name in row:
                    assert isinstance(row[name], int) and row[name] >= 0, row
            if "attack" in row and key != "control":
                assert row["attack"] in (None, *NON_BLIND, "learned"), row
    assert load_privacy(out) == on_disk
    assert (out / DETAILS_FILE).is_file() and (out / EXAMPLES_FILE).is_file()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_private_and_attack_rows(tiny_results) -> None:
    privacy = tiny_results["privacy"]
    assert [r["camera"] for r in privacy["private"]] == KINDS
    clean = rows(privacy, "private", camera="no-lens")[0]
    assert clean["SSIM_mean"] == pytest.approx(1.0) and clean["PSNR_mean"] is None
    n_eval = clean["n_images"]
    attacked = {(r["camera"], r["attack"]) for r in privacy["attacks"]}
    # non-blind attacks need a PSF; the learned attack goes where it was asked for
    assert attacked == {(k, a) for k in ("learned-lens", "defocus")
                        for a in ("wiener", "richardson-lucy", "learned")}
    for row in privacy["private"] + privacy["attacks"]:
        assert row["n_images"] == n_eval
        assert 0 < row["SSIM_mean"] <= 1 + 1e-6
        if row["camera"] != "no-lens":
            assert row["PSNR_mean"] > 0
    assert rows(privacy, "private", camera="low-res")[0]["SSIM_mean"] < 0.9
    # 2:1 split of the held-out scenes: attacker pairs and evaluated ones
    n_scenes = PrivacySettings.smoke().num_scenes
    assert n_eval == n_scenes - round(2 / 3 * n_scenes)


def test_faces_and_reidentification(tiny_results) -> None:
    privacy = tiny_results["privacy"]
    for detector in ("mtcnn", "haar"):
        found = rows(privacy, "faces", detector=detector)
        clean = rows(privacy, "faces", detector=detector, camera="no-lens")
        assert len(clean) == 1 and clean[0]["attack"] is None
        # the no-lens camera records the originals: every face found there is found again
        assert clean[0]["detected"] == clean[0]["faces"]
        assert {r["faces"] for r in found} == {clean[0]["faces"]}
        assert all(0 <= r["detected"] <= r["faces"] for r in found)
        cases = {(r["camera"], r["attack"]) for r in found}
        assert cases == {(k, None) for k in KINDS} | {
            (r["camera"], r["attack"]) for r in privacy["attacks"]}
    assert rows(privacy, "faces", detector="mtcnn", camera="no-lens")[0]["faces"] >= 1
    reid = privacy["reidentification"]
    assert {(r["camera"], r["attack"]) for r in reid} == {(k, None) for k in KINDS} | {
        (r["camera"], r["attack"]) for r in privacy["attacks"]}
    for row in reid:
        assert row["gallery"] == 2  # the two portraits
        assert row["chance"] == pytest.approx(1 / row["gallery"])
        assert 0 <= row["top1"] <= 1
    assert rows(privacy, "reidentification", camera="no-lens")[0]["top1"] == 1.0


def test_sensitive_detail_and_control(tiny_results) -> None:
    privacy = tiny_results["privacy"]
    detail = privacy["sensitive_detail"]
    assert [r["camera"] for r in detail if r["attack"] is None] == KINDS
    after = {r["camera"]: r["attack"] for r in detail if r["attack"] is not None}
    assert set(after) == {"learned-lens", "defocus"}
    details = json.loads((tiny_results["root"] / DETAILS_FILE).read_text())
    for camera, attack in after.items():
        # the reader attacks with the non-blind attack of the higher SSIM on the scenes
        scores = {r["attack"]: r["SSIM_mean"] for r in privacy["attacks"]
                  if r["camera"] == camera and r["attack"] in NON_BLIND}
        assert attack == max(scores, key=scores.get) == details["best_non_blind"][camera]
    for row in detail:
        assert row["chance"] == pytest.approx(0.1)
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["entropy_bits"] <= math.log2(10) + 1e-9
    control = privacy["control"]
    assert [(r["blur"], r["attack"]) for r in control] == [
        (CONTROL_BLUR, None), (CONTROL_BLUR, "wiener"), (CONTROL_BLUR, "richardson-lucy"),
        (CONTROL_BLUR_MIRRORED, None), (CONTROL_BLUR_MIRRORED, "learned")]
    blurred = [r["SSIM_mean"] for r in control if r["attack"] is None]
    assert all(0 < v < 1 for v in blurred)
    # the two borders blur the same interior: the blurred scenes score nearly alike
    assert blurred[0] == pytest.approx(blurred[1], abs=0.05)


def test_examples_hold_every_attack(tiny_results) -> None:
    examples = torch.load(tiny_results["root"] / EXAMPLES_FILE, weights_only=True)
    assert examples["face_names"] == ["astronaut", "grace_hopper"]
    for kind in ("scenes", "faces"):
        originals = examples[kind]["original"]
        assert originals.dtype == torch.uint8 and originals.shape[1:] == (3, 128, 128)
        assert set(examples[kind]["learned-lens"]) == {"none", "wiener", "richardson-lucy",
                                                       "learned"}
        assert set(examples[kind]["low-res"]) == {"none"}
        assert torch.equal(examples[kind]["no-lens"]["none"], originals)


def test_rerun_reuses_the_measurement(tiny_results, monkeypatch) -> None:
    import privcap.privacy.evaluate as evaluate_module

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished measurement was made again")

    monkeypatch.setattr(evaluate_module, "measure_privacy", forbidden)
    assert run_privacy("quick", smoke=True, coco_dir=None) == tiny_results["privacy"]
    with pytest.raises(AssertionError, match="made again"):  # another request measures
        run_privacy("quick", smoke=True, coco_dir=None, learned_cameras=["learned-lens"])
    # so does another face-detector threshold (a constant, not a setting)
    monkeypatch.setattr(evaluate_module, "MTCNN_MIN_PROBABILITY", 0.95)
    with pytest.raises(AssertionError, match="made again"):
        run_privacy("quick", smoke=True, coco_dir=None)


def test_bad_inputs(tiny_results, tmp_path) -> None:
    partial = tmp_path / "cameras"
    shutil.copytree(tiny_results["root"] / "cameras", partial)
    shutil.rmtree(partial / "learned-lens")
    with pytest.raises(FileNotFoundError, match="learned-lens/seed0"):
        load_table1_cameras(partial)
    with pytest.raises(FileNotFoundError, match="learned-lens/seed0"):
        run_privacy("quick", partial, smoke=True, coco_dir=None, out_dir=tmp_path)
    cameras, size = load_table1_cameras(tiny_results["root"] / "cameras")
    assert size == 128 and set(cameras) == set(KINDS)
    with pytest.raises(ValueError, match="'low-res' cannot get \\['wiener'\\]"):
        run_privacy("quick", smoke=True, coco_dir=None, attacks={"low-res": ["wiener"]},
                    out_dir=tmp_path)
    assert not (tmp_path / PRIVACY_FILE).exists()
    with pytest.raises(ValueError, match="no-lens"):
        check_attacks(cameras, {"no-lens": ["richardson-lucy"]})
    with pytest.raises(ValueError, match="unknown attack"):
        check_attacks(cameras, {"defocus": ["deblur"]})
    with pytest.raises(ValueError, match="unknown camera"):
        default_attacks(cameras, learned=["pinhole"])
    assert default_attacks(cameras, learned=["low-res"]) == {
        "no-lens": (), "learned-lens": NON_BLIND, "defocus": NON_BLIND, "low-res": ("learned",)}
    with pytest.raises(FileNotFoundError, match="coco-mini folder not found"):
        run_privacy("quick", smoke=True, coco_dir=tmp_path / "nowhere", out_dir=tmp_path)


def test_gaussian_psf_moments() -> None:
    psf = gaussian_psf(1.5)
    assert psf.shape == (3, 13, 13)
    assert torch.allclose(psf.sum(dim=(-2, -1)), torch.ones(3))
    offsets = torch.arange(-6, 7, dtype=torch.float64)
    variance = (psf[0].double().sum(0) * offsets**2).sum()
    assert float(variance) == pytest.approx(1.5**2, rel=1e-3)
    assert torch.equal(psf[0], psf[0].T) and torch.equal(psf[0], psf[0].flip(0))


def test_radial_mtf_of_a_point_and_a_gaussian() -> None:
    point = torch.zeros(3, 5, 5)
    point[:, 2, 2] = 2.0  # normalised inside: only the shape counts
    flat = radial_mtf(point, 32)
    assert flat["mtf"] == pytest.approx([1.0] * 17) and flat["share_passed"] == 1.0
    assert flat["cycles_per_pixel"][-1] == 0.5
    curve = radial_mtf(gaussian_psf(1.5), 128)
    for k in (8, 16, 24):  # |T(f)| = exp(-2 pi^2 sigma^2 f^2) at f = k / 128 cycles per pixel
        assert curve["mtf"][k] == pytest.approx(math.exp(-2 * math.pi**2 * 1.5**2
                                                         * (k / 128) ** 2), rel=0.02)
    assert 0.1 < curve["share_passed"] < 0.5


def _planted_privacy():
    return {
        "private": [{"camera": "cam", "SSIM_mean": 0.5}],
        "attacks": [{"camera": "cam", "attack": "wiener", "SSIM_mean": 0.45},
                    {"camera": "cam", "attack": "richardson-lucy", "SSIM_mean": 0.55},
                    {"camera": "cam", "attack": "learned", "SSIM_mean": 0.7},
                    {"camera": "other", "attack": "wiener", "SSIM_mean": 0.9}],
        "faces": [{"camera": "cam", "attack": None, "detector": "mtcnn", "faces": 10,
                   "detected": 1},
                  {"camera": "cam", "attack": "wiener", "detector": "mtcnn", "faces": 10,
                   "detected": 3},
                  {"camera": "cam", "attack": "learned", "detector": "mtcnn", "faces": 10,
                   "detected": 9},
                  {"camera": "cam", "attack": None, "detector": "haar", "faces": 5,
                   "detected": 5}],
        "sensitive_detail": [
            {"camera": "cam", "attack": None, "accuracy": 0.2, "chance": 0.1,
             "entropy_bits": 3.0},
            {"camera": "cam", "attack": "richardson-lucy", "accuracy": 0.3, "chance": 0.1,
             "entropy_bits": 3.0}],
    }


def test_best_reconstruction_and_frontier_point() -> None:
    privacy = _planted_privacy()
    assert best_reconstruction(privacy, "cam") == ("learned", 0.7)
    assert best_reconstruction(privacy, "cam", NON_BLIND) == ("richardson-lucy", 0.55)
    assert best_reconstruction(privacy, "cam", ("wiener",)) == (None, 0.5)
    with pytest.raises(ValueError, match="not in the privacy results"):
        best_reconstruction(privacy, "nobody")
    point = frontier_point(privacy, "cam", {"CIDEr": 0.9, "BLEU_4": 0.3}, label="x", w_p=1.0,
                           source="frontier")
    # learned attack and Haar rows are not part of the frontier's measures
    assert point["SSIM_best"] == 0.55 and point["best_attack"] == "richardson-lucy"
    assert point["face_rate"] == pytest.approx(0.3)
    assert point["hidden_accuracy"] == 0.3 and point["SSIM_private"] == 0.5
    assert wp_label(0.1) == "wp0.1" and wp_label(1.0) == "wp1" and wp_label(10) == "wp10"
    with pytest.raises(ValueError, match="w_p"):
        wp_label(-1)


def test_frontier_trains_each_weight_once(tiny_results, monkeypatch) -> None:
    root = tiny_results["root"]
    frontier = run_frontier(tiny_results["settings"], (0.5, 5.0), smoke=True, coco_dir=None)
    on_disk = json.loads((root / "frontier" / FRONTIER_FILE).read_text())
    assert on_disk == json.loads(json.dumps(frontier))
    sweep = [p for p in on_disk["points"] if p["source"] == "frontier"]
    assert [p["w_p"] for p in sweep] == [0.5, 5.0]
    assert [p["camera"] for p in on_disk["points"] if p["source"] == "table1"] == KINDS
    for w_p in (0.5, 5.0):
        run = root / "frontier" / wp_label(w_p) / "cameras" / "learned-lens" / "seed0"
        history = json.loads((run / "history.json").read_text())
        assert history["train_config"]["w_p"] == w_p
        assert history["train_config"]["camera"] == "learned-lens"
        assert load_privacy(root / "frontier" / wp_label(w_p))["private"][0]["camera"] == \
            "learned-lens"
    # the Table 1 cameras are measured here, with the sweep's settings, not read from 07
    reference = load_privacy(root / "frontier" / "table1")
    assert [r["camera"] for r in reference["private"]] == KINDS
    assert {r["attack"] for r in reference["attacks"]} <= set(NON_BLIND)
    assert {r["detector"] for r in reference["faces"]} == {"mtcnn"}
    clean = next(p for p in on_disk["points"] if p["camera"] == "no-lens")
    assert clean["SSIM_best"] == pytest.approx(1.0) and clean["face_rate"] == 1.0
    # a rerun trains nothing and measures nothing again
    import privcap.privacy.frontier as frontier_module
    import privcap.training.table1 as table1_module

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished lens was trained or measured again")

    monkeypatch.setattr(table1_module, "train", forbidden)
    monkeypatch.setattr(frontier_module, "measure_privacy", forbidden)
    assert run_frontier(tiny_results["settings"], (0.5, 5.0), smoke=True,
                        coco_dir=None) == frontier


def test_cameras_are_recorded_with_read_noise_and_bit_depth() -> None:
    """The attacker gets the camera's recording: noise of the set level, 8-bit levels; the
    originals (no-lens) are left untouched."""
    from privcap.optics import IdentityCamera
    from privcap.privacy.evaluate import _through

    camera = build_camera("defocus").eval()
    scenes = torch.rand(2, 3, 128, 128)
    settings = PrivacySettings.smoke()
    assert settings.read_noise_sigma == pytest.approx(0.01) and settings.bits == 8
    clean = _through(camera, scenes)
    recorded = _through(camera, scenes, settings.recording, 1)
    assert torch.allclose(recorded * 255, (recorded * 255).round(), atol=1e-4)
    inside = (clean > 0.1) & (clean < 0.9)
    assert float((recorded - clean)[inside].std()) == pytest.approx(0.01, rel=0.1)
    assert torch.equal(recorded, _through(camera, scenes, settings.recording, 1))
    ideal = PrivacySettings(read_noise_sigma=0.0, bits=None).recording
    assert torch.equal(_through(camera, scenes, ideal, 1), clean)
    assert torch.equal(_through(IdentityCamera(), scenes, settings.recording, 1), scenes)
    with pytest.raises(ValueError, match="noise_sigma"):
        PrivacySettings(read_noise_sigma=-1.0)
    with pytest.raises(ValueError, match="bits"):
        PrivacySettings(bits=0)


def test_detail_free_ssim_falls_with_the_blur_width() -> None:
    from privcap.privacy.blur import gaussian_blur
    from privcap.privacy.evaluate import DETAIL_FREE_SIGMAS_PX, detail_free_ssim

    torch.manual_seed(0)
    x = torch.rand(4, 3, 64, 64)
    rows = detail_free_ssim(x)
    assert [r["sigma_px"] for r in rows] == list(DETAIL_FREE_SIGMAS_PX)
    values = [r["SSIM_mean"] for r in rows]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    from privcap.metrics import ssim

    expected = float(ssim(gaussian_blur(x, 4.0).clamp(0, 1), x).double().mean())
    assert detail_free_ssim(x, (4.0,))[0]["SSIM_mean"] == pytest.approx(expected)
    assert detail_free_ssim(x, (0.0,))[0]["SSIM_mean"] == pytest.approx(1.0)
