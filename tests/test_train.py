"""Training loop of the captioner: smoke run, history, checkpoints, resume, camera hook."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from privcap.captioning import Captioner, captioner_config, load_captioner
from privcap.data.synthetic import SyntheticScenes
from privcap.train import (
    beam_size_sweep,
    build_vocabulary,
    collate_scenes,
    dataset_references,
    evaluate_captioner,
    holdout_split,
    load_caption_data,
    random_caption_baseline,
    train_captioner,
    train_config,
)

N_TRAIN, N_VAL, SIZE, BATCH = 12, 4, 32, 4


@pytest.fixture(scope="module")
def data():
    train = SyntheticScenes(N_TRAIN, image_size=SIZE, seed=3, split="train")
    val = SyntheticScenes(N_VAL, image_size=SIZE, seed=3, split="test")
    return train, val


def make_model(train, seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    vocab = build_vocabulary(train, min_count=2, max_len=12)
    config = captioner_config(
        "quick", small_cnn_channels=(8, 16), small_cnn_convs=(1, 1), feature_dim=16,
        embed_dim=16, hidden_dim=24, attention_dim=8, image_size=SIZE,
    )
    return Captioner(config, vocab)


def quick_cfg(**overrides):
    args = dict(epochs=2, batch_size=BATCH, val_meteor=False, captions_per_image=2, seed=5)
    args.update(overrides)
    return train_config("quick", **args)


def test_train_smoke_run_writes_history_and_checkpoints(data, tmp_path) -> None:
    train, val = data
    model = make_model(train)
    before = [p.detach().clone() for p in model.parameters()]
    history = train_captioner(model, train, val, config=quick_cfg(), out_dir=tmp_path,
                              progress=False)
    steps_per_epoch = N_TRAIN // BATCH
    assert len(history["steps"]) == 2 * steps_per_epoch
    assert [s["step"] for s in history["steps"]] == list(range(1, 2 * steps_per_epoch + 1))
    assert all(math.isfinite(s["loss"]) and s["ce"] > 0 for s in history["steps"])
    assert len(history["epochs"]) == 2
    for record in history["epochs"]:
        assert set(record["metrics"]) == {"BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR",
                                          "ROUGE_L", "CIDEr"}
        assert record["metrics"]["METEOR"] is None  # skipped explicitly
        assert record["val_loss"] > 0
    # the loss goes down on average from the first to the last epoch
    assert history["epochs"][1]["train_loss"] < history["epochs"][0]["train_loss"]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk["epochs"][1]["train_loss"] == pytest.approx(history["epochs"][1]["train_loss"])
    assert on_disk["vocab_size"] == len(model.vocab)
    best, extra = load_captioner(tmp_path / "best.pt", vocab=model.vocab)
    assert extra["epoch"] + 1 == history["best_epoch"]
    last, _ = load_captioner(tmp_path / "last.pt", vocab=model.vocab)
    for a, b in zip(last.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_continues_exactly(data, tmp_path) -> None:
    train, _ = data
    straight = train_captioner(make_model(train), train, None, config=quick_cfg(epochs=3),
                               out_dir=tmp_path / "a", progress=False)
    first = train_captioner(make_model(train), train, None, config=quick_cfg(epochs=1),
                            out_dir=tmp_path / "b", progress=False)
    assert len(first["epochs"]) == 1
    resumed_model = make_model(train, seed=99)  # different init: resume must overwrite it
    resumed = train_captioner(resumed_model, train, None, config=quick_cfg(epochs=3),
                              out_dir=tmp_path / "b", resume=True, progress=False)
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    losses_a = [s["loss"] for s in straight["steps"]]
    losses_b = [s["loss"] for s in resumed["steps"]]
    assert losses_b == pytest.approx(losses_a, rel=1e-5)


def test_resume_refuses_another_vocabulary(data, tmp_path) -> None:
    train, _ = data
    train_captioner(make_model(train), train, None, config=quick_cfg(epochs=1),
                    out_dir=tmp_path, progress=False)
    other = make_model(train)
    other.vocab = type(other.vocab)(words=[*other.vocab.words[:-1], "zebra"],
                                    max_len=other.vocab.max_len)
    with pytest.raises(ValueError, match="cannot resume.*vocabulary mismatch"):
        train_captioner(other, train, None, config=quick_cfg(epochs=2), out_dir=tmp_path,
                        resume=True, progress=False)


class GainCamera(nn.Module):
    """A stand-in camera: a trainable gain, clamped to [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.gain).clamp(0, 1)


def test_camera_in_front_of_the_captioner_is_trained(data, tmp_path) -> None:
    train, _ = data
    camera = GainCamera()
    seen = []

    def extra_loss(clean, sensor):
        seen.append((clean.shape, sensor.shape))
        return 0.1 * (1 - (sensor - clean).pow(2).mean())  # L_p-like term

    history = train_captioner(
        make_model(train), train, None, config=quick_cfg(epochs=1, lr_camera=1e-2),
        out_dir=tmp_path, camera=camera, extra_loss=extra_loss, progress=False,
    )
    assert float(camera.gain.detach()) != pytest.approx(0.8)
    assert len(seen) == N_TRAIN // BATCH and seen[0][0] == seen[0][1]
    assert all("extra" in s for s in history["steps"])
    assert history["camera"] == "GainCamera"


def test_collate_resizes_to_the_model_size(data) -> None:
    train, _ = data
    items = [train[0], {**train[1], "image": torch.rand(3, 48, 64)}]
    batch = collate_scenes(items, image_size=SIZE)
    assert batch["image"].shape == (2, 3, SIZE, SIZE)
    assert batch["image_id"] == [0, 1]
    with pytest.raises(ValueError, match="differ in shape"):
        collate_scenes(items, image_size=None)


def test_evaluation_helpers(data, tmp_path) -> None:
    train, val = data
    model = make_model(train)
    metrics, candidates = evaluate_captioner(model, val, beam_size=2, meteor=False)
    assert set(candidates) == set(range(N_VAL)) and metrics["CIDEr"] >= 0
    sweep = beam_size_sweep(model, val, [1, 2], out_path=tmp_path / "beam.json", meteor=False)
    assert [r["beam_size"] for r in sweep["rows"]] == [1, 2]
    assert json.loads((tmp_path / "beam.json").read_text())["rows"][1]["beam_size"] == 2
    chance = random_caption_baseline(train.references(), val.references(), meteor=False)
    assert 0 <= chance["random_caption"]["BLEU_1"] <= 1
    assert chance["most_frequent"] in {c for caps in train.references().values() for c in caps}


def test_bad_training_config() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        train_config("quick", batch_size=0)
    with pytest.raises(ValueError, match="unknown training config keys"):
        train_config("quick", epoch=3)
    with pytest.raises(ValueError, match="profile"):
        train_config("tiny")


def test_load_caption_data_synthetic_and_errors() -> None:
    train, val, info = load_caption_data("quick", num_images=6, num_val_images=3,
                                         image_size=32, seed=1)
    assert (len(train), len(val)) == (6, 3)
    assert info["source"] == "synthetic" and train[0]["image"].shape == (3, 32, 32)
    # validation scenes use the test digits and another seed stream: different scenes
    assert train.captions(0) != val.captions(0)
    with pytest.raises(ValueError, match="no default data set"):
        load_caption_data("full")
    with pytest.raises(ValueError, match="captions_json is needed"):
        load_caption_data("quick", "/some/folder")
    with pytest.raises(ValueError, match="num_images"):
        load_caption_data("quick", num_images=0)


def test_holdout_split_and_subset_references(data) -> None:
    train, _ = data
    a, b = holdout_split(train, 3, seed=0)
    assert len(a) == N_TRAIN - 3 and len(b) == 3
    assert set(a.indices).isdisjoint(b.indices)
    refs = dataset_references(b)
    assert set(refs) == set(b.indices)
    assert refs[b.indices[0]] == train[b.indices[0]]["captions"]
    with pytest.raises(ValueError, match="num_val"):
        holdout_split(train, N_TRAIN)


@pytest.mark.shared
def test_load_caption_data_coco_mini(coco_mini_dir) -> None:
    train, val, info = load_caption_data("coco-mini", num_images=1000, num_val_images=20,
                                         image_size=64)
    assert info["source"] == "coco"
    assert len(train) + len(val) == 159 and len(val) == 20
    assert info["reports"]["all"]["skipped_images"]["missing_file"] == 5000 - 159
    refs = dataset_references(val)
    item = val[0]
    assert item["image"].shape == (3, 64, 64)
    assert refs[item["image_id"]] == item["captions"]
    vocab = build_vocabulary(train, min_count=2)
    assert len(vocab) > 100
