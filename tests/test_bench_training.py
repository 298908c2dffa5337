"""Tests of the benchmark section ``training`` (``privcap.bench.training``), smoke size.

No speed is asserted; the tests check that the two training steps are the training loop's,
that the joint one runs and trains the camera, that they are interleaved in one run, and
that the reported numbers are consistent with each other.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

import privcap.bench as bench
import privcap.bench.training as bench_training
from privcap.bench import run_bench
from privcap.optics.camera import IdentityCamera, LensCamera
from privcap.training import Trainer, train_config

JOINT = "joint_step_learned_lens"
CLEAN = "captioner_step_no_lens"
RATIO = "time_ratio_joint_step_to_captioner_step"


@pytest.fixture(scope="module")
def smoke_training(tmp_path_factory):
    """One smoke run of the section on one torch thread, recording which trainer stepped in
    which order and how often each camera ran."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    record = {"steps": [], "lens_calls": 0, "identity_calls": 0}
    step, with_psf = Trainer.step, LensCamera.forward_with_psf
    identity_forward = IdentityCamera.forward

    def counted_step(self, batch, epoch, batch_index):
        record["steps"].append((self.config.camera, batch_index, len(batch["image"])))
        return step(self, batch, epoch, batch_index)

    def counted_psf(self, *args, **kwargs):
        record["lens_calls"] += 1
        return with_psf(self, *args, **kwargs)

    def counted_identity(self, *args, **kwargs):
        record["identity_calls"] += 1
        return identity_forward(self, *args, **kwargs)

    rng = torch.random.get_rng_state()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "step", counted_step)
        patch.setattr(LensCamera, "forward_with_psf", counted_psf)
        patch.setattr(IdentityCamera, "forward", counted_identity)
        result = run_bench(["training"], out_path=out, smoke=True, echo=False, threads=1)
    record["rng_restored"] = bool(torch.equal(rng, torch.random.get_rng_state()))
    return out, result, record


def test_training_section_is_registered_after_optics():
    names = list(bench.SECTIONS)
    assert bench.SECTIONS["training"] == "privcap.bench.training"
    assert names.index("training") == names.index("optics") + 1


def test_smoke_training_bench_has_every_key(smoke_training):
    out, result, _ = smoke_training
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(result))
    assert data["smoke"] is True and list(data["sections"]) == ["training"]
    section = data["sections"]["training"]
    assert set(section["measurements"]) == {JOINT, CLEAN, "check_joint_step_moves_lens"}
    assert data["ratio_keys"] == [RATIO]
    assert math.isfinite(data[RATIO]) and data[RATIO] > 0
    assert "camera" in data["ratio_descriptions"][RATIO]
    for key in (JOINT, CLEAN):
        m = section["measurements"][key]
        for field in ("what", "median_s", "min_s", "max_s", "times_s", "repeats", "warmup",
                      "images_per_s", "batch_size", "image_size_px"):
            assert field in m, (key, field)
    assert [g["task"] for g in section["comparisons"]] == ["training step, 4 x 3 x 32 x 32 "
                                                           "scenes"]
    notes = " ".join(data["notes"])
    assert "SMOKE" in notes and "same run" in notes and "1 torch thread," in notes
    assert "batch size 4" in notes and "32 x 32 pixel" in notes
    preset = train_config("quick", "learned-lens", finetune=True).batch_size
    assert f"the quick preset trains on {preset}" in notes


def test_images_per_second_follow_from_batch_and_median(smoke_training):
    _, data, _ = smoke_training
    m = data["sections"]["training"]["measurements"]
    plan = bench_training.PLANS["smoke"]
    for key in (JOINT, CLEAN):
        step = m[key]
        assert step["batch_size"] == bench_training.SMOKE_BATCH
        assert step["image_size_px"] == 32
        assert step["repeats"] == len(step["times_s"]) == plan.repeats
        assert step["warmup"] == plan.warmup
        assert step["median_s"] == pytest.approx(statistics.median(step["times_s"]))
        assert step["min_s"] <= step["median_s"] <= step["max_s"]
        assert step["images_per_s"] > 0
        assert step["images_per_s"] == pytest.approx(step["batch_size"] / step["median_s"],
                                                     rel=1e-12)
    assert data[RATIO] == pytest.approx(m[JOINT]["median_s"] / m[CLEAN]["median_s"],
                                        rel=1e-12)


def test_joint_step_runs_and_trains_the_camera(smoke_training):
    _, data, record = smoke_training
    plan = bench_training.PLANS["smoke"]
    rounds = plan.warmup + plan.repeats
    # the training loop's step, interleaved: joint then captioner, round by round, each on
    # the whole batch with its own step index
    assert record["steps"] == [
        (camera, k, bench_training.SMOKE_BATCH)
        for k in range(rounds) for camera in ("learned-lens", "no-lens")
    ]
    # each joint step made its sensor images with the lens, each captioner step saw the
    # clean scenes
    assert record["lens_calls"] == rounds
    assert record["identity_calls"] == rounds
    check = data["sections"]["training"]["measurements"]["check_joint_step_moves_lens"]
    assert check["steps"] == rounds
    assert check["lens_coefficients_max_change_um"] > 0
    # the steps reseed torch; the caller's random state is left as it was
    assert record["rng_restored"]
