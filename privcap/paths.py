"""Where runs write their outputs (DESIGN sec. 6): ``results/<profile>/``."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that moves the results folder (default: ``./results``).
RESULTS_ENV = "PRIVCAP_RESULTS"


def results_root() -> Path:
    """Top folder of all results: ``$PRIVCAP_RESULTS`` or ``results`` in the working dir."""
    return Path(os.environ.get(RESULTS_ENV, "results"))


def results_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """Folder ``results/<profile>/<parts...>``, created unless ``create`` is False."""
    if not profile or "/" in profile or profile.startswith("."):
        raise ValueError(f"profile must be a plain name, got {profile!r}")
    path = results_root() / profile / Path(*parts) if parts else results_root() / profile
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
