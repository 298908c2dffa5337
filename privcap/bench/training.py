"""Benchmark section ``training``: one joint training step beside the captioner's step alone.

What end-to-end training costs over training the captioner on clean images. Both steps are
the training loop's own step (:meth:`privcap.training.Trainer.step`: captions chosen, a
forward pass, the joint objective, backward, gradient clipping, the Adam step and, with a
lens, its projection onto the coefficient bounds), built as :func:`privcap.training.train`
builds them, on the same batch of synthetic scenes and from the same captioner weights:

* *joint*: the ``learned-lens`` camera (:func:`privcap.training.build_camera` on the
  profile's optics) in front of the captioner, the full objective ``w_ce L_ce + ds_lambda L_d
  + w_p L_p + w_h L_H`` and the lens's own Adam groups;
* *captioner*: the ``no-lens`` camera (the captioner sees the clean scenes), objective
  ``w_ce L_ce + ds_lambda L_d``.

The settings are those of the quick profile's fine-tuning (``train_config("quick", camera,
finetune=True)``: batch size, captions per image, learning rates, clipping), the quick
captioner (:func:`privcap.captioning.captioner_config`) and the quick optics, on the CPU
with the current torch threads. The two steps are timed in the same run, interleaved round
by round (so a change of load on a shared machine hits both alike); data loading is not
timed (the same collated batch is fed to every step).

Section answer (contract in :mod:`privcap.bench`): measurements
``joint_step_learned_lens`` and ``captioner_step_no_lens`` (times, ``images_per_s`` =
batch / median time, batch size, image size) and ``check_joint_step_moves_lens`` (how far
the timed steps moved the lens: proof that the camera is trained); the ratio
``time_ratio_joint_step_to_captioner_step``. Sizes: full (default) and ``quick=True`` differ
only in repeats; ``smoke=True`` uses a tiny captioner, a 64-sample lens and a batch of four
32-pixel scenes, numbers meaningless.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

import torch

from privcap.bench.timing import summarize_times, time_call

__all__ = ["PLANS", "Plan", "SEED", "run"]

#: seed of the captioner's weights, the lens's read noise and the data
SEED = 0
#: data profile whose training settings are timed
PROFILE = "quick"
#: captioner overrides of the smoke run (a tiny network on 32-pixel images)
SMOKE_CAPTIONER = dict(small_cnn_channels=(8, 16), small_cnn_convs=(1, 1), feature_dim=16,
                       embed_dim=16, hidden_dim=24, attention_dim=8, image_size=32)
#: images per step of the smoke run
SMOKE_BATCH = 4
#: scenes whose captions make the vocabulary (the quick profile's training set size)
VOCAB_SCENES = 2000


@dataclass(frozen=True)
class Plan:
    """Repeats of one size of the section: ``warmup`` untimed rounds, ``repeats`` timed."""

    mode: str
    warmup: int
    repeats: int


PLANS: dict[str, Plan] = {
    "full": Plan("full", warmup=3, repeats=40),
    "quick": Plan("quick", warmup=2, repeats=15),
    "smoke": Plan("smoke", warmup=1, repeats=2),
}


def _steps(smoke: bool) -> dict[str, Any]:
    """The two trainers (joint, captioner alone) and the batch they are timed on."""
    from privcap.captioning import Captioner, captioner_config
    from privcap.data.synthetic import SyntheticScenes
    from privcap.optics import IdentityCamera
    from privcap.optics.config import optics_config
    from privcap.training import Trainer, build_camera, build_vocabulary, train_config
    from privcap.training.data import collate_items

    overrides: dict[str, Any] = {"device": "cpu"}
    if smoke:
        from privcap.bench.workloads import bench_config

        overrides["batch_size"] = SMOKE_BATCH
        cap_config = captioner_config(PROFILE, **SMOKE_CAPTIONER)
        optics = bench_config("smoke-full").replace(image_size=cap_config.image_size)
        vocab_scenes = 200
    else:
        cap_config = captioner_config(PROFILE)
        optics = optics_config(PROFILE)
        vocab_scenes = VOCAB_SCENES
    joint_cfg = train_config(PROFILE, "learned-lens", finetune=True, seed=SEED, **overrides)
    clean_cfg = train_config(PROFILE, "no-lens", finetune=True, seed=SEED, **overrides)
    if joint_cfg.batch_size != clean_cfg.batch_size:
        raise RuntimeError("the joint and the captioner presets have different batch sizes")
    batch_size = joint_cfg.batch_size
    size = cap_config.image_size

    scenes = SyntheticScenes(vocab_scenes, image_size=size, seed=SEED, split="train")
    vocab = build_vocabulary(scenes, cap_config.min_count, cap_config.max_len)
    batch = collate_items([scenes[i] for i in range(batch_size)], image_size=size)

    torch.manual_seed(SEED)
    captioner = Captioner(cap_config, vocab)
    twin = copy.deepcopy(captioner)  # the same starting weights for both steps
    camera = build_camera("learned-lens", optics)
    cpu = torch.device("cpu")
    return {
        "joint": Trainer(captioner, camera, joint_cfg, device=cpu),
        "captioner": Trainer(twin, IdentityCamera(), clean_cfg, device=cpu),
        "batch": batch,
        "batch_size": batch_size,
        "image_size": size,
        "optics": optics,
        "captioner_config": cap_config,
        "captions_per_image": joint_cfg.captions_per_image,
        "vocab_size": len(vocab),
        "preset_batch_size": train_config(PROFILE, "learned-lens", finetune=True).batch_size,
    }


def _time_interleaved(trainers: dict[str, Any], batch: dict[str, Any], plan: Plan
                      ) -> dict[str, list[float]]:
    """Seconds of each trainer's steps, ``plan.repeats`` rounds after ``plan.warmup``; round
    ``r`` runs one step of every trainer, in order. Step ``k`` of a trainer is its
    ``batch_index`` ``k`` of epoch 0 (its own seed for dropout and read noise, as in
    training)."""
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for k in range(plan.warmup + plan.repeats):
        for name, trainer in trainers.items():
            def step(trainer: Any = trainer, k: int = k) -> None:
                trainer.step(batch, 0, k)

            if k < plan.warmup:
                step()
            else:
                times[name].append(time_call(step, repeats=1, warmup=0)["times_s"][0])
    return times


def run(quick: bool, smoke: bool = False) -> dict[str, Any]:
    """Time the joint training step and the captioner's step; return the section answer."""
    plan = PLANS["smoke" if smoke else "quick" if quick else "full"]
    threads = torch.get_num_threads()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    with torch.random.fork_rng(devices=[]):  # the steps reseed torch: leave the caller's RNG
        setup = _steps(smoke)
        joint, captioner = setup["joint"], setup["captioner"]
        lens = joint.lens
        if lens is None:
            raise RuntimeError("the joint step has no lens")
        before = lens.coefficients_um().detach().clone()
        times = _time_interleaved({"joint": joint, "captioner": captioner}, setup["batch"],
                                  plan)
        change = (lens.coefficients_um().detach() - before).abs()
    batch, size = setup["batch_size"], setup["image_size"]
    optics = setup["optics"]
    per_image = setup["captions_per_image"]
    caps_text = "all captions" if per_image is None else f"{per_image} captions"
    shape = f"{batch} x 3 x {size} x {size}"

    def step_measurement(name: str, what: str) -> dict[str, Any]:
        m = summarize_times(times[name], what, plan.warmup)
        m["images_per_s"] = batch / m["median_s"]
        m["batch_size"] = batch
        m["image_size_px"] = size
        return m

    measurements = {
        "joint_step_learned_lens": step_measurement(
            "joint",
            f"one joint training step (Trainer.step): learned-lens camera + captioner, "
            f"forward, joint loss, backward, Adam step; {shape} scenes, {caps_text} each",
        ),
        "captioner_step_no_lens": step_measurement(
            "captioner",
            f"the same training step for the captioner alone on the clean scenes (no-lens "
            f"camera); {shape} scenes, {caps_text} each",
        ),
        "check_joint_step_moves_lens": {
            "what": "largest change of a Zernike coefficient over the joint steps of this "
                    "run (warm-up and timed): the camera is part of the trained step",
            "lens_coefficients_max_change_um": float(change.max()),
            "steps": plan.warmup + plan.repeats,
        },
    }
    joint_s = measurements["joint_step_learned_lens"]["median_s"]
    captioner_s = measurements["captioner_step_no_lens"]["median_s"]
    ratios = {"time_ratio_joint_step_to_captioner_step": joint_s / captioner_s}
    descriptions = {
        "time_ratio_joint_step_to_captioner_step": (
            f"joint training step (learned-lens camera + captioner) / the captioner's step "
            f"on clean images, median times of one {PROFILE}-profile step on {shape} scenes, "
            "interleaved in this run (> 1: the camera adds cost)"
        ),
    }
    batch_text = (f"batch size {batch} (smoke; the {PROFILE} preset trains on "
                  f"{setup['preset_batch_size']})" if plan.mode == "smoke"
                  else f"batch size {batch} ({PROFILE} profile fine-tuning preset)")
    notes = [
        f"{batch_text}, {caps_text} per image, {size} x {size} pixel synthetic scenes, "
        f"vocabulary of {setup['vocab_size']} words, "
        f"{threads} torch thread{'s' if threads != 1 else ''}, CPU; both steps "
        f"are timed in the same run, interleaved round by round ({plan.warmup} untimed "
        f"warm-up and {plan.repeats} timed rounds), from the same captioner weights, "
        f"seed {SEED}",
        f"load average at start "
        f"{', '.join(f'{v:.2f}' for v in load_start) if load_start else 'unknown'}",
        f"the camera: {optics.grid_size} x {optics.grid_size} lens grid, FFT "
        f"{optics.fft_size} x {optics.fft_size}, {optics.num_terms} Zernike terms, PSF "
        f"{optics.psf_size} x {optics.psf_size}; the PSF is computed at every step (the lens "
        "changes at every step), read noise on",
        "each step is the training loop's own (privcap.training.Trainer.step): caption "
        "choice and encoding, forward, loss, backward, gradient clipping, Adam, lens "
        "projection; data loading is not timed (the same collated batch every step); "
        "images_per_s = batch size / median step time",
    ]
    if plan.mode == "smoke":
        notes.append(
            f"SMOKE run: a tiny captioner, a {optics.grid_size}-sample lens and {shape} "
            "scenes stand in for the quick profile; the numbers only show that every "
            "measurement runs"
        )
    comparisons = [{
        "task": f"training step, {shape} scenes",
        "bars": {"privcap joint (learned lens)": joint_s, "captioner alone (no lens)":
                 captioner_s},
        "targets": [],
    }]
    return {
        "measurements": measurements,
        "ratios": ratios,
        "ratio_descriptions": descriptions,
        "notes": notes,
        "comparisons": comparisons,
    }
