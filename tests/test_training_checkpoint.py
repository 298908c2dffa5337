"""Run checkpoints: weights_only round trip, refused versions / cameras, atomic writes, and an
in-process resume that repeats the uninterrupted run exactly."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch
from helpers_training import TINY_OPTICS, tiny_captioner, tiny_data

from privcap.captioning import load_captioner, save_captioner
from privcap.training import (
    RUN_FORMAT,
    build_camera,
    load_history,
    load_run,
    read_run_checkpoint,
    save_run_checkpoint,
    train,
    train_config,
)
from privcap.training.checkpoint import get_rng_state, set_rng_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def config(kind: str = "learned-lens", **overrides):
    settings = dict(epochs=2, batch_size=4, captions_per_image=2, seed=5, val_meteor=False,
                    device="cpu", lr_lens=1e-2, lr_defocus=1e-2)
    settings.update(overrides)
    return train_config("quick", kind, **settings)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A finished two-epoch learned-lens run with validation."""
    train_data, val = data
    out = tmp_path_factory.mktemp("run")
    model = tiny_captioner(train_data)
    camera = build_camera("learned-lens", TINY_OPTICS)
    history = train(model, camera, train_data, val, config(), out, progress=False,
                    log_epochs=False)
    return out, model, camera, history


def test_checkpoint_round_trip_with_weights_only(run) -> None:
    out, model, camera, history = run
    raw = torch.load(out / "last.pt", weights_only=True)  # plain data and tensors only
    assert raw["format"] == RUN_FORMAT and raw["epoch"] == 2 and raw["batch_in_epoch"] == 0
    assert raw["step"] == len(history["steps"]) == 6
    assert isinstance(raw["rng"]["numpy"][1], torch.Tensor)
    loaded_model, loaded_camera, payload = load_run(out)
    for a, b in zip(loaded_model.state_dict().values(), model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert torch.equal(loaded_camera.lens.coefficients_um(), camera.lens.coefficients_um())
    assert not loaded_camera.training and loaded_camera.noise_sigma_range == \
        camera.noise_sigma_range
    assert payload["history"]["steps"] == history["steps"]
    # the captioner inside a run checkpoint loads with the captioner loader too
    captioner, extra = load_captioner(out / "best.pt", vocab=model.vocab)
    assert extra["epoch"] + 1 == history["best_epoch"]
    # files next to it
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert load_history(out)["epochs"][1]["metrics"] == history["epochs"][1]["metrics"]
    snaps = history["camera_snapshots"]
    assert snaps[0]["step"] == 0 and "psf_crop" in snaps[0]
    assert len(snaps[0]["coefficients_um"]) == TINY_OPTICS.num_terms
    assert snaps[-1]["coefficients_um"] != snaps[0]["coefficients_um"]  # the lens moved


def test_wrong_version_or_camera_is_a_clear_error(run, tmp_path) -> None:
    out, model, _, _ = run
    with pytest.raises(ValueError, match="holds a 'learned-lens' camera, not the requested "
                                         "'defocus'"):
        read_run_checkpoint(out / "last.pt", camera_kind="defocus")
    payload = torch.load(out / "last.pt", weights_only=True)
    payload["format"] = "privcap-run/0"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"not a run checkpoint of format 'privcap-run/1' "
                                         r"\(found 'privcap-run/0'\)"):
        read_run_checkpoint(tmp_path / "old.pt")
    save_captioner(model, tmp_path / "captioner.pt")
    with pytest.raises(ValueError, match="captioner-only checkpoint"):
        load_run(tmp_path / "captioner.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        read_run_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="has no last.pt"):
        load_run(tmp_path)
    # resuming a run with another camera
    train_data, _ = tiny_data()
    with pytest.raises(ValueError, match="holds a 'learned-lens' camera"):
        train(tiny_captioner(train_data), build_camera("defocus", TINY_OPTICS), train_data,
              None, config("defocus"), out, resume=True, progress=False)


def test_pickled_objects_are_refused(tmp_path) -> None:
    from pathlib import PurePosixPath  # any class: unpickling it could run code

    torch.save({"format": RUN_FORMAT, "thing": PurePosixPath("x")}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot be read"):
        read_run_checkpoint(tmp_path / "evil.pt")


def test_a_failed_write_leaves_the_previous_checkpoint(run, tmp_path, monkeypatch) -> None:
    out, _, _, _ = run
    payload = read_run_checkpoint(out / "last.pt")
    target = tmp_path / "last.pt"
    save_run_checkpoint(target, {k: v for k, v in payload.items() if k != "format"})
    before = target.read_bytes()
    changed = {k: v for k, v in payload.items() if k != "format"}
    changed["step"] = 999

    def broken_fsync(fd):  # the data went into the temporary file; the disk then fails
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_run_checkpoint(target, changed)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert read_run_checkpoint(target)["step"] == payload["step"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.vocab.json"]


def test_rng_state_round_trip() -> None:
    state = get_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(2), random.random()
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def _comparable(history: dict) -> dict:
    out = json.loads(json.dumps(history))
    for record in out["epochs"]:
        record.pop("seconds"), record.pop("cpu_seconds")
    return out


def test_resume_after_an_epoch_and_mid_epoch_repeats_the_run(data, tmp_path) -> None:
    train_data, _ = data
    kind = "defocus"

    def fresh(seed=0):
        return tiny_captioner(train_data, seed=seed), build_camera(kind, TINY_OPTICS)

    straight = train(*fresh(), train_data, None, config(kind, epochs=3), tmp_path / "a",
                     progress=False, log_epochs=False)
    first = train(*fresh(), train_data, None, config(kind, epochs=1), tmp_path / "b",
                  progress=False, log_epochs=False)
    assert len(first["epochs"]) == 1
    model, camera = fresh(seed=99)  # another start: resuming must overwrite it
    resumed = train(model, camera, train_data, None, config(kind, epochs=3), tmp_path / "b",
                    resume=True, progress=False, log_epochs=False)
    a, b = _comparable(straight), _comparable(resumed)
    assert b["steps"] == a["steps"] and b["epochs"] == a["epochs"]
    assert b["camera_snapshots"] == a["camera_snapshots"]

    # a run stopped inside an epoch: checkpoint every step, then an error at step 4
    import privcap.training.loop as loop

    class Stop(Exception):
        pass

    original = loop.Trainer.step
    calls = {"n": 0}

    def failing(self, batch, epoch, batch_index):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Stop
        return original(self, batch, epoch, batch_index)

    loop.Trainer.step = failing
    try:
        with pytest.raises(Stop):
            train(*fresh(), train_data, None, config(kind, epochs=3, checkpoint_every_steps=1),
                  tmp_path / "c", progress=False, log_epochs=False)
    finally:
        loop.Trainer.step = original
    assert read_run_checkpoint(tmp_path / "c" / "last.pt")["batch_in_epoch"] == 1
    resumed = train(*fresh(seed=7), train_data, None,
                    config(kind, epochs=3, checkpoint_every_steps=1), tmp_path / "c",
                    resume=True, progress=False, log_epochs=False)
    c = _comparable(resumed)
    assert c["steps"] == a["steps"] and c["epochs"] == a["epochs"]
