"""Data, settings and helpers of :mod:`privcap.training`: collate, splits, references, the
caption choice, presets, cameras by name, evaluation helpers, the lens learning-rate search."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_training import SIZE, TINY_OPTICS, tiny_captioner, tiny_data

from privcap.optics import DefocusCamera, IdentityCamera, LensCamera, LowResCamera
from privcap.profiles import PROFILES, check_profile
from privcap.training import (
    CAMERA_KINDS,
    beam_size_sweep,
    build_camera,
    build_vocabulary,
    camera_from_spec,
    camera_spec,
    collate_items,
    dataset_references,
    evaluate_camera_run,
    evaluate_captioner,
    holdout_split,
    load_caption_data,
    load_test_data,
    lr_search,
    random_caption_baseline,
    select_captions,
    train_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def test_profiles_are_listed_once() -> None:
    from privcap import book
    from privcap.captioning import model
    from privcap.optics import config

    assert PROFILES == ("quick", "coco-mini", "full")
    assert book.PROFILES is model.PROFILES is config.PROFILES is PROFILES
    assert check_profile("full") == "full"
    with pytest.raises(ValueError, match="profile must be one of"):
        check_profile("tiny")


def test_collate_resizes_to_the_model_size(data) -> None:
    train, _ = data
    items = [train[0], {**train[1], "image": torch.rand(3, 48, 64)}]
    batch = collate_items(items, image_size=SIZE)
    assert batch["image"].shape == (2, 3, SIZE, SIZE)
    assert batch["image_id"].tolist() == [0, 1]
    assert batch["captions"][0] == train[0]["captions"]
    with pytest.raises(ValueError, match="differ in shape"):
        collate_items(items)


def test_caption_choice_depends_on_seed_epoch_and_image_only() -> None:
    caps = [[f"caption {i} {k}" for k in range(5)] for i in range(4)]
    flat, owner = select_captions(caps, [10, 11, 12, 13], 2, seed=1, epoch=0)
    assert owner == [0, 0, 1, 1, 2, 2, 3, 3] and len(set(flat)) == 8
    # the same image in another batch, at another position: the same captions
    alone, _ = select_captions([caps[2]], [12], 2, seed=1, epoch=0)
    assert alone == flat[4:6]
    other_epoch, _ = select_captions(caps, [10, 11, 12, 13], 2, seed=1, epoch=1)
    assert other_epoch != flat
    every, _ = select_captions(caps, [10, 11, 12, 13], None, seed=1, epoch=0)
    assert every == [c for cs in caps for c in cs]
    with pytest.raises(ValueError, match="no caption"):
        select_captions([[]], [5], 1, seed=0, epoch=0)


def test_training_presets() -> None:
    full = train_config("full", "learned-lens")
    assert (full.w_ce, full.w_p, full.w_h, full.batch_size) == (0.4, 6.0, 30.0, 64)
    assert (full.lr_encoder, full.lr_decoder) == (1e-4, 5e-4)
    quick = train_config("quick", "defocus", finetune=True)
    assert quick.camera == "defocus" and quick.lr_lens > 1e-4 > 5e-7
    assert train_config("quick").camera == "no-lens" and train_config("quick").epochs == 8
    assert train_config("quick", finetune=True).epochs < 8
    with pytest.raises(ValueError, match="batch_size"):
        train_config("quick", batch_size=0)
    with pytest.raises(ValueError, match="unknown training config keys"):
        train_config("quick", epoch=3)
    with pytest.raises(ValueError, match="profile"):
        train_config("tiny")
    with pytest.raises(ValueError, match="camera must be one of"):
        train_config("quick", "pinhole")
    with pytest.raises(ValueError, match="device"):
        train_config("quick", device="tpu")


@pytest.mark.parametrize("kind, cls", [("no-lens", IdentityCamera),
                                       ("learned-lens", LensCamera),
                                       ("defocus", DefocusCamera), ("low-res", LowResCamera)])
def test_cameras_by_name_and_spec_round_trip(kind, cls) -> None:
    camera = build_camera(kind, TINY_OPTICS)
    assert type(camera) is cls
    spec = camera_spec(camera)
    json.dumps(spec)  # plain data
    if kind in ("learned-lens", "defocus"):
        with torch.no_grad():
            camera.lens.defocus += 0.25
    rebuilt = camera_from_spec(json.loads(json.dumps(spec)))
    rebuilt.load_state_dict(camera.state_dict())
    x = torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(rebuilt.eval()(x), camera.eval()(x))
    if kind == "low-res":
        assert camera.sensor_shape(SIZE, SIZE) == (SIZE // 16, SIZE // 16)  # paper's 1/16
    if kind == "learned-lens":
        assert camera.lens.defocus is not None and camera.lens.coefficients.numel() == 11
    with pytest.raises(ValueError, match="camera must be one of"):
        build_camera("pinhole", TINY_OPTICS)
    assert len(CAMERA_KINDS) == 4


def test_load_caption_data_synthetic_and_errors() -> None:
    train, val, info = load_caption_data("quick", num_images=6, num_val_images=3,
                                         image_size=32, seed=1)
    assert (len(train), len(val)) == (6, 3)
    assert info["source"] == "synthetic" and train[0]["image"].shape == (3, 32, 32)
    assert train.captions(0) != val.captions(0)
    test, test_info = load_test_data("quick", num_images=3, image_size=32, seed=1)
    assert len(test) == 3 and test_info["split"] == "test"
    assert test.captions(0) not in (val.captions(0), train.captions(0))
    with pytest.raises(ValueError, match="no default data set"):
        load_caption_data("full")
    with pytest.raises(ValueError, match="captions_json is needed"):
        load_caption_data("quick", "/some/folder")
    with pytest.raises(ValueError, match="num_images"):
        load_caption_data("quick", num_images=0)


def test_holdout_split_and_subset_references(data) -> None:
    train, _ = data
    a, b = holdout_split(train, 3, seed=0)
    assert len(a) == len(train) - 3 and len(b) == 3
    assert set(a.indices).isdisjoint(b.indices)
    refs = dataset_references(b)
    assert set(refs) == set(b.indices)
    assert refs[b.indices[0]] == train[b.indices[0]]["captions"]
    with pytest.raises(ValueError, match="num_val"):
        holdout_split(train, len(train))


def test_evaluation_helpers(data, tmp_path) -> None:
    train, val = data
    model = tiny_captioner(train)
    metrics, candidates = evaluate_captioner(model, val, beam_size=2, meteor=False)
    assert set(candidates) == set(range(len(val))) and metrics["CIDEr"] >= 0
    sweep = beam_size_sweep(model, val, [1, 2], out_path=tmp_path / "beam.json", meteor=False)
    assert [r["beam_size"] for r in sweep["rows"]] == [1, 2]
    assert json.loads((tmp_path / "beam.json").read_text())["rows"][1]["beam_size"] == 2
    chance = random_caption_baseline(train.references(), val.references(), meteor=False)
    assert 0 <= chance["random_caption"]["BLEU_1"] <= 1
    clean = evaluate_camera_run(model, build_camera("no-lens"), val, meteor=False)
    assert clean["SSIM_mean"] == pytest.approx(1.0) and clean["n_images"] == len(val)
    blurred = evaluate_camera_run(model, build_camera("low-res", TINY_OPTICS), val,
                                  meteor=False)
    assert blurred["SSIM_mean"] < 0.9 and len(blurred["ssim"]) == len(val)
    assert blurred["SSIM_std"] > 0


def test_lr_search_shows_the_released_rate_barely_moves_the_lens(data, tmp_path) -> None:
    train, val = data
    model = tiny_captioner(train)
    before = [p.detach().clone() for p in model.parameters()]
    result = lr_search(model, train, val, candidates=(5e-7, 1e-2), steps=4, batch_size=4,
                       num_eval_images=4, optics_config=TINY_OPTICS,
                       out_path=tmp_path / "lr.json")
    slow, fast = result["rows"]
    assert slow["lr"] == 5e-7 and fast["lr"] == 1e-2
    assert abs(slow["z4_shift_um"]) <= 4 * 5e-7 * 1.01 and slow["max_shift_um"] <= 2.1e-6
    assert max(abs(fast["z4_shift_um"]), fast["max_shift_um"]) > 1e-2  # >= one full step
    assert json.loads((tmp_path / "lr.json").read_text())["chosen_lr"] in (5e-7, 1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_build_vocabulary_counts_training_captions(data) -> None:
    train, _ = data
    vocab = build_vocabulary(train, min_count=2, max_len=12)
    assert vocab.max_len == 12 and "<pad>" in vocab.words and len(vocab) > 10
