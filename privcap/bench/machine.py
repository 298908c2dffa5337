"""Description of the machine a benchmark ran on (stored beside the numbers)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

#: distributions whose versions matter for the timings
_PACKAGES = ("torch", "numpy", "scipy", "deepinv", "prysm", "pycocoevalcap", "privcap")


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_bytes() -> int | None:
    """Physical memory (Linux ``/proc/meminfo``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that matter (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine_info() -> dict[str, Any]:
    """CPU, core count, torch thread settings (and the OpenMP environment that shapes them),
    memory, load average, Python and package versions."""
    import torch

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    try:
        load_avg = list(os.getloadavg())
    except OSError:
        load_avg = None
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "memory_total_bytes": _memory_total_bytes(),
        "load_average_1_5_15min": load_avg,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "thread_environment": {
            name: os.environ.get(name)
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
        },
        "versions": package_versions(),
    }
