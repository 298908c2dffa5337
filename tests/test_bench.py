"""Tests of the benchmark harness (``privcap.bench``): output contract, errors, CLI.

No test asserts a speed (speed is what the benchmark reports); they check that the numbers
exist, are finite and positive, are consistent with each other, and that the baselines
compute what privcap computes.
"""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
import torch

import privcap.bench as bench
import privcap.bench.optics as bench_optics
from privcap.bench import load_bench, merge_sections, run_bench
from privcap.bench.baselines import _box_resample_matrix, direct_conv2d
from privcap.bench.memory import peak_rss_in_subprocess, peak_rss_in_subprocesses
from privcap.bench.report import (
    format_bytes,
    format_ratio,
    format_seconds,
    html_table,
    plot_comparison,
    to_markdown,
)
from privcap.bench.timing import (
    time_call,
    time_forward_backward,
    time_forward_backward_interleaved,
)
from privcap.cli import main

HEADLINE_RATIOS = (
    "speedup_vs_direct_conv",
    "speedup_vs_deepinv",
    "time_ratio_to_prysm",
    "speedup_vs_authors_psf",
    "speedup_vs_authors_psf_backward",
    "speedup_vs_authors_camera",
    "speedup_vs_authors_basis",
    "memory_ratio_to_authors",
)

#: ratio to the authors' camera -> (numerator, denominator) measurements of the same run
AUTHORS_RATIOS = {
    "speedup_vs_authors_psf": (
        "authors_algorithm_full_psf_forward", "privcap_full_psf_forward", "median_s"),
    "speedup_vs_authors_psf_backward": (
        "authors_algorithm_full_psf_forward_backward", "privcap_full_psf_forward_backward",
        "median_s"),
    "speedup_vs_authors_camera": (
        "authors_algorithm_full_camera_forward_backward", "privcap_full_camera_forward_backward",
        "median_s"),
    "speedup_vs_authors_basis": (
        "authors_algorithm_full_basis_build", "privcap_full_build", "median_s"),
    "memory_ratio_to_authors": (
        "privcap_full_camera_peak_rss", "authors_algorithm_full_camera_peak_rss",
        "peak_rss_bytes"),
    "memory_ratio_to_authors_above_imports": (
        "privcap_full_camera_peak_rss", "authors_algorithm_full_camera_peak_rss",
        "task_rss_bytes"),
}

#: quoted numbers planted in place of the real ones: a ratio built from them would show
POISONED_REFERENCE = {
    "psf_forward_s": 1234.5,
    "psf_forward_backward_s": 2345.6,
    "camera_forward_backward_8x3x256x256_s": 3456.7,
    "resident_memory_bytes": 4.5678e15,
    "basis_build_s": 5678.9,
}


# ----------------------------------------------------------------- the real smoke run


@pytest.fixture(scope="module")
def smoke_optics(tmp_path_factory):
    """One smoke run of the optics section (tiny geometries, seconds), on one torch thread
    (the test machine is shared), with the quoted reference numbers of the authors' code
    replaced by absurd values: no ratio may change because of them."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    reference = {**bench_optics.AUTHORS_RELEASED_REFERENCE, **POISONED_REFERENCE}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_optics, "AUTHORS_RELEASED_REFERENCE", reference)
        result = run_bench(["optics"], out_path=out, smoke=True, echo=False, threads=1)
    assert torch.get_num_threads() == threads  # restored after the run
    return out, result


def test_smoke_optics_bench_writes_top_level_ratios(smoke_optics):
    out, result = smoke_optics
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(result))
    assert data["smoke"] is True and data["quick"] is True
    assert any("SMOKE" in note for note in data["notes"])
    for key in HEADLINE_RATIOS:
        value = data[key]
        assert isinstance(value, float), key
        assert math.isfinite(value) and value > 0, (key, value)
        assert key in data["ratio_keys"]
    # every target is recorded with a verdict consistent with the value
    for key, target in data["targets"].items():
        value = data[key]
        expected = value >= target["value"] if target["op"] == ">=" else value <= target["value"]
        assert target["met"] is expected, key
    assert data["targets"]["speedup_vs_authors_camera"]["value"] == 10.0
    assert data["targets"]["memory_ratio_to_authors"] == {
        "op": "<=", "value": 0.25, "met": data["memory_ratio_to_authors"] <= 0.25}


def test_authors_ratios_divide_measurements_of_the_same_run(smoke_optics):
    _, data = smoke_optics
    m = data["sections"]["optics"]["measurements"]
    # the quoted numbers travel as reference text only (here: the planted values)...
    ref = data["reference_authors_released_code"]
    assert {k: ref[k] for k in POISONED_REFERENCE} == POISONED_REFERENCE
    assert "used by no ratio" in ref["source"]
    planted = set(POISONED_REFERENCE.values())
    # ...and every ratio to the authors is a quotient of two measurements of this run
    for key, (top, bottom, field) in AUTHORS_RATIOS.items():
        assert data[key] == pytest.approx(m[top][field] / m[bottom][field], rel=1e-12), key
        assert m[top][field] not in planted and m[bottom][field] not in planted
    for key in data["ratio_keys"]:
        for value in planted:
            assert data[key] != pytest.approx(value / 1, rel=1e-3)
    # the head-to-head timings were interleaved: same repeats for privcap and the authors
    for stage in ("psf_forward", "psf_forward_backward", "camera_forward_backward"):
        ours, theirs = m[f"privcap_full_{stage}"], m[f"authors_algorithm_full_{stage}"]
        assert ours["repeats"] == theirs["repeats"] >= 1
        assert ours["warmup"] == theirs["warmup"]
    # both memory probes ran a fresh process, the authors' with their dense basis loaded
    basis = m["authors_algorithm_full_camera_peak_rss"]["result"]["volume_bytes"]
    assert basis == 21 * 64 * 64 * 4  # smoke-full: 21 terms on the 64-sample lens
    for key in ("privcap_full_camera_peak_rss", "authors_algorithm_full_camera_peak_rss"):
        assert m[key]["peak_rss_bytes"] >= m[key]["baseline_rss_bytes"] > 0


def test_smoke_optics_bench_baselines_compute_the_same_thing(smoke_optics):
    _, data = smoke_optics
    m = data["sections"]["optics"]["measurements"]
    # FFT convolution and direct conv2d agree; prysm's PSF matches privcap's (same physics)
    assert m["check_fft_vs_direct_conv"]["max_relative_difference"] < 1e-4
    assert m["prysm_quick_psf_forward"]["l1_difference_to_privcap_psf"] < 0.05
    # the authors' algorithm: the same PSF up to its binning offset, padding and aperture
    check = m["check_authors_vs_privcap_psf"]
    assert 0 < check["l1_difference"] < 0.6
    assert check["max_centroid_offset_px"] < 1.0
    # the quick run is the same comparison on the real geometry, batch and images
    quick = bench_optics.PLANS["quick"]
    assert quick.geometries == {"quick": "quick", "full": "full"}
    assert (quick.batch, quick.image_size) == (8, 256)


def test_smoke_optics_bench_machine_info_and_markdown(smoke_optics):
    out, data = smoke_optics
    machine = data["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch_threads"] == 1
    assert machine["versions"]["torch"] == torch.__version__.split("+")[0] or machine["versions"][
        "torch"
    ].startswith(torch.__version__.split("+")[0])
    assert machine["versions"]["deepinv"] and machine["versions"]["prysm"]
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    for key in HEADLINE_RATIOS:
        assert key in md
    assert "| ratio | value | target | met | meaning |" in md
    assert "SMOKE run" in md and "used by no ratio" in md
    assert load_bench(out) == data


def test_plot_comparison_draws_one_panel_per_task(smoke_optics):
    import matplotlib.pyplot as plt

    _, data = smoke_optics
    fig = plot_comparison(data)
    groups = [g for s in data["sections"].values() for g in s["comparisons"]]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(groups) >= 5
    assert [ax.get_title() for ax in visible] == [g["task"] for g in groups]
    assert all(ax.get_yscale() == "log" for ax in visible)
    camera = next(g for g in groups if g["task"].startswith("camera"))
    assert set(camera["bars"]) >= {"privcap", "authors' algorithm"}
    assert not any("quoted" in label for g in groups for label in g["bars"])
    plt.close(fig)


# ----------------------------------------------------------------- errors and CLI


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ValueError, match="'nope'"):
        run_bench(["nope"], out_path=tmp_path / "b.json", echo=False)
    with pytest.raises(ValueError, match="at least one"):
        run_bench([], out_path=tmp_path / "b.json", echo=False)
    with pytest.raises(ValueError, match="out_path"):
        run_bench(["optics"], out_path=tmp_path / "b.txt", echo=False)
    with pytest.raises(ValueError, match="threads"):
        run_bench(["optics"], out_path=tmp_path / "b.json", echo=False, threads=0)
    assert not (tmp_path / "b.json").exists()


def test_cli_unknown_section_exits_2(capsys):
    assert main(["bench", "--sections", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("privcap: error:")
    assert "nope" in err and "optics" in err


def test_load_bench_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_bench(tmp_path / "missing.json")


# ----------------------------------------------------------------- merging (fake sections)


def _fake_section(ratios, **extra):
    answer = {
        "measurements": {"thing": {"what": "a thing", "median_s": 0.5, "min_s": 0.4}},
        "ratios": ratios,
    }
    answer.update(extra)
    return types.SimpleNamespace(run=lambda quick: answer)


def test_default_sections_skip_a_missing_module_and_record_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_bench_section", _fake_section({"speedup_vs_x": 3.0}))
    monkeypatch.setattr(
        bench,
        "SECTIONS",
        {"fake": "fake_bench_section", "absent": "privcap.bench.absent_section_module"},
    )
    out = tmp_path / "b.json"
    result = run_bench(None, out_path=out, quick=True, echo=False)
    assert result["speedup_vs_x"] == 3.0
    assert "absent" in result["skipped_sections"]
    assert any("absent" in note for note in result["notes"])
    # asked for by name, a missing section is an error
    with pytest.raises(RuntimeError, match="absent"):
        run_bench(["absent"], out_path=out, echo=False)


def test_merge_rejects_bad_ratios_and_clashes(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_bad", _fake_section({"speedup_vs_x": float("nan")}))
    monkeypatch.setattr(bench, "SECTIONS", {"bad": "fake_bad"})
    with pytest.raises(ValueError, match="speedup_vs_x"):
        run_bench(["bad"], out_path=tmp_path / "b.json", echo=False)
    good = {"measurements": {}, "ratios": {"speedup_vs_x": 2.0}}
    with pytest.raises(ValueError, match="clashes"):
        merge_sections({"a": good, "b": good}, quick=True)


def test_merge_records_targets_and_references():
    answer = {
        "measurements": {},
        "ratios": {"speedup_vs_x": 12.0, "time_ratio_to_y": 2.0},
        "targets": {"speedup_vs_x": [">=", 10.0], "time_ratio_to_y": ["<=", 1.5]},
        "notes": ["n1"],
        "references": {"reference_z": {"t_s": 1.0}},
    }
    merged = merge_sections({"s": answer}, quick=False)
    assert merged["targets"]["speedup_vs_x"] == {"op": ">=", "value": 10.0, "met": True}
    assert merged["targets"]["time_ratio_to_y"]["met"] is False
    assert merged["reference_z"] == {"t_s": 1.0}
    assert merged["notes"] == ["s: n1"]
    assert merged["ratio_keys"] == ["speedup_vs_x", "time_ratio_to_y"]
    assert "speedup_vs_x" in to_markdown(merged)


# ----------------------------------------------------------------- building blocks


def test_time_call_counts_runs():
    calls = []
    m = time_call(lambda: calls.append(1), repeats=4, warmup=2, what="x")
    assert len(calls) == 6
    assert m["repeats"] == 4 and len(m["times_s"]) == 4
    assert m["min_s"] <= m["median_s"] <= m["max_s"]
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)


def test_time_forward_backward_runs_the_backward():
    x = torch.ones(5, requires_grad=True)
    forward, both = time_forward_backward(lambda: 3 * x, repeats=2, warmup=1)
    assert x.grad is not None and bool((x.grad > 0).all())  # 3 runs accumulated 3 * w
    assert all(f <= b for f, b in zip(forward["times_s"], both["times_s"], strict=True))
    assert forward["repeats"] == both["repeats"] == 2


def test_interleaved_timing_alternates_the_contenders():
    order = []
    x = torch.ones(3, requires_grad=True)

    def contender(name, factor):
        def forward():
            order.append(name)
            return factor * x
        return forward

    timed = time_forward_backward_interleaved(
        {"a": contender("a", 2.0), "b": contender("b", 3.0)}, repeats=3, warmup=1,
        what={"a": "first", "b": "second"},
    )
    assert order == ["a", "b"] * 4  # one warm-up round, then three rounds
    for name, what in (("a", "first"), ("b", "second")):
        forward, both = timed[name]
        assert forward["repeats"] == both["repeats"] == 3 and forward["warmup"] == 1
        assert forward["what"].startswith(what)
    with pytest.raises(ValueError, match="contender"):
        time_forward_backward_interleaved({})


def test_memory_probes_run_side_by_side_in_order():
    sizes = [120_000_000, 40_000_000, 80_000_000]
    probes = [
        {"task": "privcap.bench.memory:touch_bytes", "kwargs": {"n_bytes": n}, "threads": 1,
         "what": f"{n} bytes"}
        for n in sizes
    ]
    results = peak_rss_in_subprocesses(probes, max_parallel=2)
    assert [r["what"] for r in results] == [p["what"] for p in probes]
    for n, r in zip(sizes, results, strict=True):
        assert r["result"]["touched_bytes"] >= n - 8
        assert 0.9 * n <= r["task_rss_bytes"] <= n + 60e6
    with pytest.raises(RuntimeError, match="touch_bytes failed"):  # a negative size raises
        peak_rss_in_subprocesses([{**probes[1], "kwargs": {"n_bytes": -8}}])


def test_memory_probe_sees_an_allocation():
    m = peak_rss_in_subprocess(
        "privcap.bench.memory:touch_bytes", {"n_bytes": 300_000_000}, threads=1
    )
    assert m["result"]["touched_bytes"] >= 299_000_000
    assert 280e6 <= m["task_rss_bytes"] <= 400e6
    assert m["peak_rss_bytes"] >= m["baseline_rss_bytes"] + m["task_rss_bytes"] - 1
    with pytest.raises(ValueError, match="task"):
        peak_rss_in_subprocess("no_colon_here")


def test_direct_conv2d_is_a_centred_convolution():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 9, 9, generator=gen)
    delta = torch.zeros(3, 5, 5)
    delta[:, 2, 2] = 1.0
    assert torch.allclose(direct_conv2d(images, delta), images)
    shifted = torch.zeros(3, 5, 5)
    shifted[:, 3, 2] = 1.0  # one row below the centre: the image moves down one row
    out = direct_conv2d(images, shifted)
    assert torch.allclose(out[..., 1:, :], images[..., :-1, :])
    assert torch.all(out[..., 0, :] == 0)  # zero padding, no wrap-around
    with pytest.raises(ValueError, match="psf"):
        direct_conv2d(images, torch.ones(2, 3, 3))


def test_box_resample_matrix_integrates_and_centres():
    m = _box_resample_matrix(n_in=64, n_out=8, ratio=3.5)
    assert m.shape == (8, 64)
    assert m.sum(axis=1) == pytest.approx([3.5] * 8)
    # the axis sample (64 // 2) falls entirely in the centre pixel (8 // 2)
    assert m[:, 32].argmax() == 4 and m[4, 32] == pytest.approx(1.0)


def test_formatting():
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(2.5) == "2.50 s"
    assert format_seconds(None) == "-"
    assert format_bytes(3.4e9) == "3.40 GB"
    assert format_bytes(288e6) == "288 MB"
    assert format_ratio(3829.6) == "3830" and format_ratio(0.05823) == "0.0582"
    table = html_table(["a", "b"], [["x<y", "1"]], code_columns=(0,))
    assert table.startswith("<table>") and "<td><code>x&lt;y</code></td>" in table
