"""Peak resident memory of one task, measured in a fresh Python process.

The peak resident set size of a process only ever grows, so measuring it in
the benchmark's own process would report the largest thing done so far, not the task. Each
task therefore runs in a new interpreter (``python -c ...``) that

1. sets the number of torch threads and imports the task's module (torch, the optics, ...);
2. records its peak resident set size (Linux ``VmHWM``) as the *baseline* (interpreter +
   libraries);
3. runs the task once and records the peak again;
4. prints one JSON line, prefixed by a marker, that the parent reads back.

A task is named ``"package.module:function"``; it is called with JSON-serialisable keyword
arguments and may return a JSON-serialisable dict that is passed back as ``result``.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
import time
from typing import Any

#: prefix of the line that carries the child's JSON answer on its standard output
_MARKER = "PRIVCAP_BENCH_RSS_RESULT "


def _maxrss_bytes() -> int:
    """Peak resident set size of this process's own address space so far.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: unlike ``ru_maxrss``, which a
    child process inherits from its parent across ``fork`` and keeps across ``exec`` (so a
    fresh interpreter started by a big process would report the parent's peak), the high
    water mark belongs to the new address space. Elsewhere ``ru_maxrss`` is used.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kilobytes) * (1 if sys.platform == "darwin" else 1024)


def _resolve(task: str) -> Any:
    """The function named ``"package.module:function"``."""
    module_name, sep, func_name = task.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"task must look like 'package.module:function', got {task!r}")
    return getattr(importlib.import_module(module_name), func_name)


def child_main(spec_json: str) -> None:
    """Entry point of the measuring process (see the module docstring)."""
    import torch

    spec = json.loads(spec_json)
    torch.set_num_threads(int(spec["threads"]))
    fn = _resolve(spec["task"])
    baseline_bytes = _maxrss_bytes()
    start = time.perf_counter()
    result = fn(**spec["kwargs"])
    elapsed_s = time.perf_counter() - start
    answer = {
        "baseline_rss_bytes": baseline_bytes,
        "peak_rss_bytes": _maxrss_bytes(),
        "elapsed_s": elapsed_s,
        "result": result,
    }
    print(_MARKER + json.dumps(answer), flush=True)


def _start(task: str, kwargs: dict[str, Any] | None, threads: int) -> subprocess.Popen:
    """Start the measuring interpreter for ``task(**kwargs)`` (see the module docstring)."""
    _resolve(task)  # fail early, in this process, on a bad name
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    spec = json.dumps({"task": task, "kwargs": kwargs or {}, "threads": threads})
    code = "import sys; from privcap.bench.memory import child_main; child_main(sys.argv[1])"
    return subprocess.Popen(
        [sys.executable, "-c", code, spec],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(
    proc: subprocess.Popen, task: str, threads: int, timeout_s: float, what: str
) -> dict[str, Any]:
    """Wait for a probe started by :func:`_start` and read its answer."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"memory probe {task} exceeded timeout_s={timeout_s}") from exc
    lines = [line for line in stdout.splitlines() if line.startswith(_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout)[-2000:]
        raise RuntimeError(
            f"memory probe {task} failed with exit status {proc.returncode}:\n{tail}"
        )
    answer = json.loads(lines[-1][len(_MARKER) :])
    return {
        "what": what,
        "peak_rss_bytes": answer["peak_rss_bytes"],
        "baseline_rss_bytes": answer["baseline_rss_bytes"],
        "task_rss_bytes": answer["peak_rss_bytes"] - answer["baseline_rss_bytes"],
        "elapsed_s": answer["elapsed_s"],
        "threads": threads,
        "result": answer["result"],
    }


def peak_rss_in_subprocess(
    task: str,
    kwargs: dict[str, Any] | None = None,
    threads: int = 1,
    timeout_s: float = 600.0,
    what: str = "",
) -> dict[str, Any]:
    """Run ``task(**kwargs)`` in a fresh interpreter and measure its peak resident memory.

    Returns a measurement dict: ``what``, ``peak_rss_bytes`` (whole process, as ``top`` or
    ``/usr/bin/time`` would report it), ``baseline_rss_bytes`` (after imports, before the
    task), ``task_rss_bytes`` (their difference), ``elapsed_s`` (the task alone, including
    first-call overheads) and the task's own ``result``.

    Raises ``RuntimeError`` when the process fails or exceeds ``timeout_s`` seconds.
    """
    proc = _start(task, kwargs, threads)
    return _finish(proc, task, threads, timeout_s, what)


def peak_rss_in_subprocesses(
    probes: list[dict[str, Any]], max_parallel: int = 2, timeout_s: float = 600.0
) -> list[dict[str, Any]]:
    """Several :func:`peak_rss_in_subprocess` probes, ``max_parallel`` at a time.

    Each probe is a dict of that function's arguments (``task``, optional ``kwargs``,
    ``threads``, ``what``). The peak resident memory of a process is its own, so probes
    that run side by side do not disturb each other's measurement (only their
    ``elapsed_s``). Returns the measurements in the order of ``probes``.
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    results: list[dict[str, Any] | None] = [None] * len(probes)
    running: list[tuple[int, subprocess.Popen]] = []
    pending = list(enumerate(probes))
    try:
        while pending or running:
            while pending and len(running) < max_parallel:
                i, probe = pending.pop(0)
                running.append((i, _start(probe["task"], probe.get("kwargs"),
                                          int(probe.get("threads", 1)))))
            i, proc = running.pop(0)
            probe = probes[i]
            results[i] = _finish(proc, probe["task"], int(probe.get("threads", 1)),
                                 timeout_s, probe.get("what", ""))
    finally:
        for _, proc in running:  # a failed probe: do not leave the others behind
            proc.kill()
            proc.communicate()
    return [r for r in results if r is not None]


def touch_bytes(n_bytes: int) -> dict[str, int]:
    """Calibration task: allocate and touch ``n_bytes`` bytes (the probe must see them)."""
    import numpy as np

    block = np.ones(int(n_bytes) // 8, dtype=np.float64)
    return {"touched_bytes": int(block.nbytes)}
