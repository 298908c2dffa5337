"""Table 1 on a tiny run: the ``table1.json`` contract, per-run folders, rerun skips."""

from __future__ import annotations

import json

import pytest
from helpers_training import TINY_OPTICS, tiny_captioner, tiny_data

import privcap.training.table1 as table1_module
from privcap.training import TABLE1_METRICS, build_camera, run_table1, train, train_config

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]

ROW_KEYS = {"model", "privacy", *TABLE1_METRICS, *(f"{m}_std" for m in TABLE1_METRICS),
            "SSIM_mean", "SSIM_std", "n_images"}


def test_table1_contract_and_rerun(tmp_path, monkeypatch) -> None:
    train_data, test_data = tiny_data(n_train=8, n_val=4)
    base_dir = tmp_path / "captioner"
    train(tiny_captioner(train_data), build_camera("no-lens"), train_data, None,
          train_config("quick", epochs=1, batch_size=4, device="cpu"), base_dir,
          progress=False, log_epochs=False)
    out = tmp_path / "results"
    kwargs = dict(seeds=(0, 1), epochs=1, base_checkpoint=base_dir / "best.pt",
                  train_data=train_data, val_data=None, test_data=test_data,
                  dataset_name="synthetic", optics=TINY_OPTICS, out_root=out, meteor=False,
                  batch_size=4, captions_per_image=2, device="cpu")
    table = run_table1("quick", **kwargs)
    on_disk = json.loads((out / "table1.json").read_text())
    assert on_disk == json.loads(json.dumps(table))
    assert set(on_disk) == {"profile", "dataset", "seeds", "rows"}
    assert on_disk["profile"] == "quick" and on_disk["dataset"] == "synthetic"
    assert on_disk["seeds"] == [0, 1]
    rows = on_disk["rows"]
    assert [r["model"] for r in rows] == ["no-lens", "learned-lens", "defocus", "low-res"]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["privacy"] == (row["model"] != "no-lens")
        assert row["n_images"] == len(test_data)
        for metric in ("BLEU_1", "BLEU_4", "ROUGE_L", "CIDEr"):
            assert isinstance(row[metric], float) and row[f"{metric}_std"] >= 0
            assert 0 <= row[metric] <= (10 if metric == "CIDEr" else 1)
        assert row["METEOR"] is None  # skipped explicitly (meteor=False)
        assert 0 < row["SSIM_mean"] <= 1 + 1e-6 and row["SSIM_std"] >= 0
    by_model = {r["model"]: r for r in rows}
    assert by_model["no-lens"]["SSIM_mean"] == pytest.approx(1.0)
    assert by_model["low-res"]["SSIM_mean"] < 0.9
    # each run in its own folder, evaluated on the same images; the seeds differ
    for kind in ("no-lens", "learned-lens", "defocus", "low-res"):
        for seed in (0, 1):
            run = out / "cameras" / kind / f"seed{seed}"
            assert (run / "last.pt").is_file() and (run / "evaluation.json").is_file()
    ev = [json.loads((out / "cameras" / "learned-lens" / f"seed{s}" / "evaluation.json")
                     .read_text()) for s in (0, 1)]
    assert set(ev[0]["captions"]) == set(ev[1]["captions"])
    history = json.loads((out / "cameras" / "defocus" / "seed1" / "history.json").read_text())
    assert history["init_from"] == str(base_dir / "best.pt")
    assert history["train_config"]["seed"] == 1 and history["train_config"]["epochs"] == 1

    # a rerun finds every row complete: no training, the same table
    def no_training(*args, **kw):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(table1_module, "train", no_training)
    assert run_table1("quick", **kwargs) == table

    # a finished run made with other training settings is refused, not reused: here the
    # distortion weight changed after the table was made
    with pytest.raises(ValueError, match=r"cameras/no-lens/seed0 .*differ in \['w_p'\]"):
        run_table1("quick", **{**kwargs, "w_p": 99.0})
    # so is one that started from another captioner
    other = tmp_path / "other.pt"
    other.write_bytes((base_dir / "best.pt").read_bytes())
    with pytest.raises(ValueError, match="started from"):
        run_table1("quick", **{**kwargs, "base_checkpoint": other})
