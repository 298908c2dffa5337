"""Shared fixtures.

Tests that need the real data in ``../shared`` skip when it is absent on a developer's
machine, but fail when the ``CI`` environment variable is set (CI always has it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def require_shared(path: Path) -> Path:
    """Return ``path`` if it exists; skip outside CI, fail in CI, when it does not."""
    if path.exists():
        return path
    message = f"shared test data missing: {path}"
    if os.environ.get("CI"):
        pytest.fail(message + " (required when CI is set)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Top folder of the repository."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def coco_mini_dir() -> Path:
    """``../shared/data/coco-mini``: 159 COCO val2017 images with the official captions."""
    return require_shared(SHARED_DATA / "coco-mini")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread, then restore the previous setting.

    Tests check values, not speed; one thread avoids oversubscribing a shared machine,
    where spinning OpenMP workers can make small operations many times slower.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
