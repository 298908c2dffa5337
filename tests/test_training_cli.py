"""``privcap train / evaluate / caption`` on COCO laid out the Karpathy way (the ``full``
profile's data path), at smoke size: a few coco-mini images copied into ``train2014/`` and
``val2014/`` of a temporary folder with a small ``dataset_coco.json``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_training import TINY_CAPTIONER, TINY_OPTICS_ARGS, key_values
from PIL import Image

pytestmark = [pytest.mark.shared, pytest.mark.slow]

SPLITS = ["train"] * 5 + ["restval"] * 3 + ["val"] * 2 + ["test"] * 2


def karpathy_folder(coco_mini: Path, dest: Path) -> Path:
    """A COCO-2014-like folder: ``train2014/``, ``val2014/`` and ``dataset_coco.json``."""
    data = json.loads((coco_mini / "annotations" / "captions_val2017.json").read_text())
    present = {p.name for p in (coco_mini / "val2017").iterdir()}
    images = [im for im in data["images"] if im["file_name"] in present][: len(SPLITS)]
    captions: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    entries = []
    for k, (image, split) in enumerate(zip(images, SPLITS, strict=True)):
        folder = "train2014" if split in ("train", "restval") else "val2014"
        name = f"COCO_{folder}_{image['id']:012d}.jpg"
        (dest / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(coco_mini / "val2017" / image["file_name"], dest / folder / name)
        entries.append({"filepath": folder, "filename": name, "imgid": k, "split": split,
                        "cocoid": image["id"],
                        "sentences": [{"raw": c, "tokens": c.lower().split()}
                                      for c in captions[image["id"]]]})
    (dest / "dataset_coco.json").write_text(json.dumps({"images": entries,
                                                        "dataset": "coco"}))
    return dest


def privcap(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "privcap", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def test_full_profile_train_evaluate_caption_on_karpathy_coco(coco_mini_dir, tmp_path) -> None:
    coco = karpathy_folder(coco_mini_dir, tmp_path / "coco")
    run = tmp_path / "run"
    args = ["train", "--profile", "full", "--camera", "learned-lens", "--data", str(coco),
            "--captions", str(coco / "dataset_coco.json"), "--out", str(run),
            "--num-images", "8", "--num-val-images", "2", "--epochs", "1",
            "--batch-size", "4", "--device", "cpu", "--no-progress"]
    for item in key_values({"val_meteor": False, "num_workers": 0}):
        args += ["--set", item]
    for item in key_values({**TINY_CAPTIONER, "backbone": "small_cnn", "grid_size": None,
                            "feature_dim": 16, "finetune_stages": -1, "min_count": 1}):
        args += ["--captioner-set", item]
    for item in TINY_OPTICS_ARGS:
        args += ["--optics-set", item]
    proc = privcap(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((run / "history.json").read_text())
    assert history["data"]["source"] == "coco"
    assert history["data"]["num_train"] == 8 and history["data"]["num_val"] == 2
    assert history["profile"] == "full" and history["train_config"]["w_h"] == 30.0
    assert len(history["steps"]) == 2 and history["epochs"][0]["metrics"]["CIDEr"] >= 0
    assert history["camera"]["kind"] == "learned-lens"

    out_json = tmp_path / "eval.json"
    proc = privcap("evaluate", str(run), "--profile", "full", "--data", str(coco),
                   "--captions", str(coco / "dataset_coco.json"), "--no-meteor",
                   "--out", str(out_json))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out_json.read_text())
    assert result["split"] == "test" and result["n_images"] == 2
    assert 0 < result["SSIM_mean"] < 1 and result["metrics"]["METEOR"] is None
    assert json.loads(proc.stdout)["camera"] == "learned-lens"

    image = next((coco / "val2014").iterdir())
    private = tmp_path / "private.png"
    proc = privcap("caption", str(image), "--checkpoint", str(run), "--save-private",
                   str(private))
    assert proc.returncode == 0, proc.stderr[-3000:]
    path, caption = proc.stdout.strip().split("\t")
    assert path == str(image) and caption.strip()
    assert Image.open(private).size == (32, 32)
