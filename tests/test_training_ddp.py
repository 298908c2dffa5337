"""Two CPU processes under ``torchrun`` (DDP, gloo) follow the loss trajectory of one process
with the same global batch, and learn the same lens.

The comparison removes every legitimate difference between the two set-ups: no dropout, no
read noise, each image's captions fixed by ``(seed, epoch, image id)``, and a frozen
backbone (BatchNorm normalises with running statistics: on CPU each process would otherwise
normalise with the statistics of its own half batch, since ``SyncBatchNorm`` needs CUDA).
What remains is float32 rounding: two processes sum their halves of the batch and average
their gradients (all-reduce), one process sums the whole batch at once, so sums run in
another order (relative differences ~1e-7 per operation). Adam divides each step by the
running gradient scale, so these differences do not blow up over a few steps; we allow a
relative 1e-4 on every logged loss term and 1e-4 um on every Zernike coefficient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_training import TINY_CAPTIONER, TINY_OPTICS_ARGS, key_values

pytestmark = pytest.mark.slow

SETTINGS = {"val_meteor": False, "captions_per_image": 2, "lr_lens": 0.01,
            "lr_defocus": 0.01, "device": "cpu", "amp": False}
CAPTIONER = {**TINY_CAPTIONER, "min_count": 2, "max_len": 12, "dropout": 0.0,
             "finetune_stages": 0}


def train_args(out: Path) -> list[str]:
    args = ["train", "--profile", "quick", "--camera", "learned-lens", "--out", str(out),
            "--num-images", "16", "--num-val-images", "0", "--epochs", "2",
            "--batch-size", "4", "--seed", "3", "--no-progress"]
    for item in key_values(SETTINGS):
        args += ["--set", item]
    for item in key_values(CAPTIONER):
        args += ["--captioner-set", item]
    for item in [*TINY_OPTICS_ARGS, "noise_sigma_range=(0.0, 0.0)"]:
        args += ["--optics-set", item]
    return args


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_two_gloo_processes_match_one_process(tmp_path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "privcap", *train_args(one)])
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "privcap", *train_args(two)])
    a = json.loads((one / "history.json").read_text())
    b = json.loads((two / "history.json").read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert len(a["steps"]) == len(b["steps"]) == 8  # 16 images, global batch 4, 2 epochs
    for sa, sb in zip(a["steps"], b["steps"], strict=True):
        assert sb["tokens"] == sa["tokens"]  # the same captions in every global batch
        for key in ("total", "ce", "ds", "p", "h"):
            assert sb[key] == pytest.approx(sa[key], rel=1e-4), (sa["step"], key)
    # the losses do change along the way (the comparison is not between constants)
    assert abs(a["steps"][-1]["ce"] - a["steps"][0]["ce"]) > 1e-3
    first, last_a = a["camera_snapshots"][0], a["camera_snapshots"][-1]
    last_b = b["camera_snapshots"][-1]
    moved = max(abs(x - y) for x, y in zip(last_a["coefficients_um"],
                                           first["coefficients_um"], strict=True))
    assert moved > 0.01  # the lens learned (8 steps of 0.01 um)
    assert last_b["coefficients_um"] == pytest.approx(last_a["coefficients_um"], abs=1e-4)
    assert not (two / "last.pt.tmp").exists() and (two / "last.pt").is_file()
