"""Benchmarks: privcap's optics and metrics timed beside published baselines in one run.

Entry point: :func:`run_bench` (the ``privcap bench`` command). It runs the requested
*sections*, merges their answers, writes ``results/bench.json`` plus a markdown twin
``results/bench.md`` and prints a table.

Section contract
----------------
A section is a module ``privcap.bench.<name>`` (registered in :data:`SECTIONS`) with a
function ``run(quick: bool, smoke: bool = False) -> dict``. ``quick=True`` must finish in
about a minute (fewer repeats, smaller or skipped slow baselines) and still produce every
key; ``smoke=True`` (passed only when asked for) runs tiny sizes in seconds for the test
suite, its numbers meaningless but every key present. The dict:

``"measurements"`` (required): ``{key: measurement}``; a measurement is a dict with
    ``"what"`` (one line saying what was measured, on which sizes) and its numbers, whose
    names carry their units: ``"median_s"`` (median wall time of ``"repeats"`` runs; also
    ``"min_s"``, ``"max_s"``, ``"times_s"``, ``"warmup"``), ``"peak_rss_bytes"``
    (memory), or anything else numeric. ``"estimated": True`` marks a value that was
    derived (for example scaled from a smaller size) rather than measured as such; say how
    in ``"how"``. :func:`privcap.bench.timing.time_call` builds timing measurements.
``"ratios"`` (required): ``{key: float}``; each a finite positive number. These become
    TOP-LEVEL keys of ``bench.json`` (so they must be unique across sections) and are the
    headline results. Name them by what they mean: ``speedup_vs_X`` = X's time / privcap's
    time (bigger is better), ``time_ratio_to_X`` = privcap's time / X's time,
    ``memory_ratio_to_X`` = privcap's memory / X's memory.
``"targets"`` (optional): ``{ratio_key: [op, value]}`` with op ``">="`` or ``"<="``; the
    merged JSON records whether each was met.
``"ratio_descriptions"`` (optional): ``{ratio_key: "one line: what over what"}``.
``"notes"`` (optional): list of strings, every caveat a reader needs (differences in what
    the baselines compute, estimated values, skipped parts and why).
``"comparisons"`` (optional): list of ``{"task": str, "bars": {label: seconds},
    "targets": [{"label": str, "seconds": float}]}`` for the bar chart; the bar labelled
    ``"privcap"`` is ours (see :func:`privcap.bench.report.plot_comparison`).
``"references"`` (optional): ``{name: dict}`` of quoted (not measured) numbers; each is
    copied to the top level of ``bench.json`` under ``name``.

Output (``bench.json``)
-----------------------
Top level: every ratio; ``ratio_keys``, ``ratio_descriptions`` and ``targets``
(``{key: {"op", "value", "met"}}``); ``quick``; ``smoke``; ``created_utc``; ``machine``
(CPU, counts, torch threads, versions: :func:`privcap.bench.machine.machine_info`); the references;
``notes`` (all sections', prefixed by the section name); ``sections``
(``{name: {"measurements", "ratios", "notes", "comparisons", "elapsed_s"}}``) and
``skipped_sections`` (``{name: reason}``).
"""

from __future__ import annotations

import importlib
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from privcap.bench.machine import machine_info
from privcap.bench.report import to_markdown, to_text
from privcap.paths import results_root

#: registered sections, in the order they run: name -> module with ``run(quick) -> dict``
SECTIONS: dict[str, str] = {
    "optics": "privcap.bench.optics",
    "training": "privcap.bench.training",
    "metrics": "privcap.bench.metrics",
}

_TARGET_OPS = (">=", "<=")


def _check_sections(sections: list[str] | None) -> list[str]:
    """Validate the requested section names (None = all), dropping repeats in order."""
    if sections is None:
        return list(SECTIONS)
    if isinstance(sections, str):
        sections = [sections]
    if len(sections) == 0:
        raise ValueError(f"sections must name at least one of {', '.join(SECTIONS)}; got []")
    unknown = [name for name in sections if name not in SECTIONS]
    if unknown:
        raise ValueError(
            f"sections: unknown section {unknown[0]!r}; known sections: {', '.join(SECTIONS)}"
        )
    return list(dict.fromkeys(sections))


def _check_section_result(name: str, answer: Any) -> dict[str, Any]:
    """Validate one section's answer against the contract of the module docstring."""
    if not isinstance(answer, dict):
        raise ValueError(f"section {name!r} returned {type(answer).__name__}, expected a dict")
    for key in ("measurements", "ratios"):
        if not isinstance(answer.get(key), dict):
            raise ValueError(f"section {name!r} must return a dict under {key!r}")
    for key, value in answer["ratios"].items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(
                f"section {name!r}: ratio {key!r} must be a finite positive number, got {value!r}"
            )
    for key, target in answer.get("targets", {}).items():
        if key not in answer["ratios"]:
            raise ValueError(f"section {name!r}: target for unknown ratio {key!r}")
        op, value = target
        if op not in _TARGET_OPS:
            raise ValueError(f"section {name!r}: target op for {key!r} must be >= or <=, got {op}")
    return answer


def _target_met(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def merge_sections(
    answers: dict[str, dict[str, Any]],
    quick: bool,
    skipped: dict[str, str] | None = None,
    elapsed_s: dict[str, float] | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Merge validated section answers into the ``bench.json`` layout (module docstring)."""
    result: dict[str, Any] = {
        "benchmark": "privcap",
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": bool(quick or smoke),
        "smoke": bool(smoke),
        "machine": machine_info(),
    }
    ratio_keys: list[str] = []
    targets: dict[str, dict[str, Any]] = {}
    descriptions: dict[str, str] = {}
    notes: list[str] = []
    sections: dict[str, Any] = {}
    for name, answer in answers.items():
        for key, value in answer["ratios"].items():
            if key in result or key in ratio_keys:
                raise ValueError(f"section {name!r}: ratio {key!r} clashes with another key")
            result[key] = float(value)
            ratio_keys.append(key)
        for key, (op, threshold) in answer.get("targets", {}).items():
            targets[key] = {
                "op": op,
                "value": float(threshold),
                "met": _target_met(result[key], op, float(threshold)),
            }
        descriptions.update(answer.get("ratio_descriptions", {}))
        notes.extend(f"{name}: {note}" for note in answer.get("notes", []))
        for ref_name, reference in answer.get("references", {}).items():
            result[ref_name] = reference
        sections[name] = {
            "measurements": answer["measurements"],
            "ratios": answer["ratios"],
            "notes": answer.get("notes", []),
            "comparisons": answer.get("comparisons", []),
            "elapsed_s": (elapsed_s or {}).get(name),
        }
    for name, reason in (skipped or {}).items():
        notes.append(f"section {name} skipped: {reason}")
    result.update(
        {
            "ratio_keys": ratio_keys,
            "ratio_descriptions": descriptions,
            "targets": targets,
            "notes": notes,
            "sections": sections,
            "skipped_sections": dict(skipped or {}),
        }
    )
    return result


def run_bench(
    sections: list[str] | None = None,
    out_path: str | Path | None = None,
    quick: bool = False,
    echo: bool = True,
    smoke: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run benchmark sections and write ``bench.json`` + ``bench.md``; return the result.

    Parameters
    ----------
    sections:
        names from :data:`SECTIONS` (``"optics"``, ``"training"``, ``"metrics"``); ``None``
        runs all. When all are requested and a section's module is not installed, it is
        skipped and the skip is recorded in ``skipped_sections`` and ``notes``; a section
        named explicitly must run.
    out_path:
        JSON file to write; default ``results/bench.json`` (under
        :func:`privcap.paths.results_root`). The markdown report goes beside it with the
        suffix ``.md``.
    quick:
        fewer repeats and smaller stand-ins for the slowest baselines (marked as such in
        the result): about a minute for the optics, what the book runs.
    echo:
        print the table to standard output.
    smoke:
        tiny sizes for the test suite (implies ``quick``): every key, meaningless numbers.
    threads:
        torch threads for the run (restored afterwards); ``None`` keeps the current setting
        (on the command line: ``OMP_NUM_THREADS=1 privcap bench``). On a shared machine one
        thread gives the steadiest comparisons: OpenMP threads waiting on busy cores slow
        some operations far more than others.

    Raises ``ValueError`` naming an unknown section, ``RuntimeError`` when a section named
    explicitly is not installed.
    """
    names = _check_sections(sections)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    explicit = sections is not None
    out = Path(out_path) if out_path is not None else results_root() / "bench.json"
    if out.suffix.lower() != ".json":
        raise ValueError(f"out_path must end in .json, got {str(out)!r}")
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        answers, skipped, elapsed = _run_sections(names, explicit, quick, smoke, echo)
        # merged while the run's thread count holds: the machine record reports it
        result = merge_sections(answers, quick=quick, skipped=skipped, elapsed_s=elapsed,
                                smoke=smoke)
    finally:
        torch.set_num_threads(previous_threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    md = out.with_suffix(".md")
    tmp = md.with_name(md.name + ".tmp")
    tmp.write_text(to_markdown(result), encoding="utf-8")
    tmp.replace(md)
    if echo:
        print(to_text(result))
        print(f"\nwrote {out} and {md}")
    return result


def _run_sections(
    names: list[str], explicit: bool, quick: bool, smoke: bool, echo: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, str], dict[str, float]]:
    """Run the named sections in order: (answers, skipped sections, seconds each)."""
    answers: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    elapsed: dict[str, float] = {}
    for name in names:
        try:
            module = importlib.import_module(SECTIONS[name])
        except ModuleNotFoundError as exc:
            if exc.name != SECTIONS[name]:
                raise
            if explicit:
                raise RuntimeError(
                    f"section {name!r} is not available: module {SECTIONS[name]} is missing"
                ) from exc
            skipped[name] = f"module {SECTIONS[name]} is not available"
            if echo:
                print(f"privcap bench: skipping section {name}: {skipped[name]}")
            continue
        size = "smoke" if smoke else "quick" if quick else "full"
        if echo:
            print(f"privcap bench: running section {name} ({size})")
        start = time.perf_counter()
        answer = module.run(True, smoke=True) if smoke else module.run(quick)
        answers[name] = _check_section_result(name, answer)
        elapsed[name] = time.perf_counter() - start
    return answers, skipped, elapsed


def load_bench(path: str | Path | None = None) -> dict[str, Any]:
    """Read a ``bench.json`` written by :func:`run_bench` (default ``results/bench.json``)."""
    source = Path(path) if path is not None else results_root() / "bench.json"
    if not source.is_file():
        raise FileNotFoundError(f"benchmark result not found: {source}")
    return json.loads(source.read_text(encoding="utf-8"))


__all__ = ["SECTIONS", "load_bench", "merge_sections", "run_bench"]
