"""A real ``privcap train`` process killed with SIGKILL (after its first checkpoint, and
again inside a later epoch) and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_training import TINY_CAPTIONER, TINY_OPTICS_ARGS, key_values

from privcap.training import read_run_checkpoint

pytestmark = pytest.mark.slow

SETTINGS = {"val_meteor": False, "checkpoint_every_steps": 1, "captions_per_image": 2,
            "lr_lens": 0.01, "lr_defocus": 0.01, "device": "cpu"}


def command(out: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "privcap", "train", "--profile", "quick", "--camera",
            "learned-lens", "--out", str(out), "--num-images", "16", "--num-val-images", "4",
            "--epochs", "2", "--batch-size", "4", "--seed", "2", "--no-progress"]
    for item in key_values(SETTINGS):
        args += ["--set", item]
    for item in key_values({**TINY_CAPTIONER, "min_count": 2, "max_len": 12}):
        args += ["--captioner-set", item]
    for item in TINY_OPTICS_ARGS:
        args += ["--optics-set", item]
    return args + list(extra)


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_to_end(out: Path, *extra: str) -> None:
    proc = subprocess.run(command(out, *extra), capture_output=True, text=True, timeout=600,
                          env=environment())
    assert proc.returncode == 0, proc.stderr[-3000:]


def kill_when(out: Path, ready, *extra: str) -> None:
    """Start a run, SIGKILL it as soon as ``ready()`` holds (polled every 10 ms)."""
    proc = subprocess.Popen(command(out, *extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=environment())
    deadline = time.monotonic() + 600
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"run ended before it could be killed: "
                                     f"{proc.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("run never reached the kill point")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def comparable(out: Path) -> dict:
    history = json.loads((out / "history.json").read_text())
    for record in history["epochs"]:
        record.pop("seconds"), record.pop("cpu_seconds")
    history.pop("checkpoints")
    return history


def test_sigkill_and_resume_match_an_uninterrupted_run(tmp_path) -> None:
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_to_end(straight)
    last = broken / "last.pt"
    kill_when(broken, last.is_file)  # right after the first checkpoint (step 1)

    first_stamp: list[int | None] = [None]
    metrics = broken / "metrics.jsonl"

    def after_epoch_one_mid_epoch_two() -> bool:
        if not metrics.is_file() or len(metrics.read_text().splitlines()) != 1:
            return False
        stamp = last.stat().st_mtime_ns
        if first_stamp[0] is None:
            first_stamp[0] = stamp  # the checkpoint written at the end of epoch 1
            return False
        return stamp != first_stamp[0]  # a mid-epoch checkpoint of epoch 2 has replaced it

    kill_when(broken, after_epoch_one_mid_epoch_two, "--resume")
    assert read_run_checkpoint(last)["step"] > 4  # killed in epoch 2 (4 steps per epoch)
    run_to_end(broken, "--resume")
    a, b = comparable(straight), comparable(broken)
    assert len(a["steps"]) == 8 and len(a["epochs"]) == 2
    assert b["steps"] == a["steps"]
    assert b["epochs"] == a["epochs"]  # validation losses, CIDEr, SSIM: identical
    assert b["camera_snapshots"] == a["camera_snapshots"]
    assert (straight / "metrics.jsonl").read_text().count("\n") == 2
    stripped = [json.loads(line) for line in (broken / "metrics.jsonl").read_text().splitlines()]
    for record in stripped:
        record.pop("seconds"), record.pop("cpu_seconds")
    assert stripped == a["epochs"]
