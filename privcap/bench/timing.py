"""Wall-clock timing with repeats: the median is the number that benchmarks report.

Every timed call is preceded by ``warmup`` untimed calls (first calls pay for lazy
initialisation, allocator growth, FFT plan creation) and repeated ``repeats`` times; the
median is robust against the occasional slow repeat on a shared machine, the minimum is kept
beside it as the best case.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def time_call(
    fn: Callable[[], Any],
    repeats: int = 5,
    warmup: int = 1,
    what: str = "",
) -> dict[str, Any]:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    Returns a measurement dict (the format of :mod:`privcap.bench`): ``what``,
    ``median_s``, ``min_s``, ``max_s``, ``repeats``, ``warmup`` and the raw ``times_s``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    times_s: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times_s.append(time.perf_counter() - start)
    return summarize_times(times_s, what, warmup)


def summarize_times(times_s: list[float], what: str, warmup: int) -> dict[str, Any]:
    """Measurement dict of repeated timings: median, min, max and the raw times."""
    return {
        "what": what,
        "median_s": statistics.median(times_s),
        "min_s": min(times_s),
        "max_s": max(times_s),
        "repeats": len(times_s),
        "warmup": warmup,
        "times_s": times_s,
    }


def time_once(fn: Callable[[], Any], what: str = "") -> tuple[dict[str, Any], Any]:
    """Time a single call of ``fn()`` (no warm-up); returns the measurement and fn's result.

    For operations that are expensive by nature and change state (building a basis that is
    cached afterwards), where a repeat would time the cache instead.
    """
    start = time.perf_counter()
    result = fn()
    elapsed_s = time.perf_counter() - start
    measurement = {
        "what": what,
        "median_s": elapsed_s,
        "min_s": elapsed_s,
        "max_s": elapsed_s,
        "repeats": 1,
        "warmup": 0,
        "times_s": [elapsed_s],
    }
    return measurement, result


def time_forward_backward(
    forward: Callable[[], Any],
    repeats: int = 5,
    warmup: int = 1,
    what: str = "",
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time ``forward()`` and ``forward()`` + backward in the same runs.

    ``forward`` returns a tensor ``y`` (computed with autograd recording, as in training);
    the backward pass is that of ``sum(w * y)`` with a fixed random ``w`` of ``y``'s shape
    (so every output element gets a different gradient). Returns two measurement dicts:
    the forward alone and forward + backward, from the same ``repeats`` runs.
    """
    return time_forward_backward_interleaved(
        {"only": forward}, repeats=repeats, warmup=warmup, what={"only": what}, seed=seed
    )["only"]


def time_forward_backward_interleaved(
    forwards: dict[str, Callable[[], Any]],
    repeats: int = 5,
    warmup: int = 1,
    what: dict[str, str] | None = None,
    seed: int = 0,
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """:func:`time_forward_backward` for several contenders, their runs interleaved.

    Round ``r`` runs every contender once, in the order given, so a change of load on a
    shared machine hits all of them alike (their ratio is what a comparison reports).
    Returns ``{name: (forward, forward + backward)}`` measurement dicts.
    """
    import torch

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if not forwards:
        raise ValueError("forwards must name at least one contender")
    weights: dict[str, Any] = {}

    def one_run(name: str) -> tuple[float, float]:
        start = time.perf_counter()
        out = forwards[name]()
        mid = time.perf_counter()
        if name not in weights:
            gen = torch.Generator().manual_seed(seed)
            weights[name] = torch.rand(out.shape, generator=gen, dtype=out.dtype)
        (out * weights[name]).sum().backward()
        end = time.perf_counter()
        return mid - start, end - start

    for _ in range(warmup):
        for name in forwards:
            one_run(name)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in forwards}
    for _ in range(repeats):
        for name in forwards:
            runs[name].append(one_run(name))
    what = what or {}
    return {
        name: (
            summarize_times([r[0] for r in runs[name]],
                     f"{what.get(name, name)} (forward, autograd recording)", warmup),
            summarize_times([r[1] for r in runs[name]],
                     f"{what.get(name, name)} (forward + backward)", warmup),
        )
        for name in forwards
    }
