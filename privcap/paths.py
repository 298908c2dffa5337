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


#: environment variable naming another COCO-format folder for the ``coco-mini`` data
COCO_MINI_ENV = "PRIVCAP_COCO_MINI"


def shared_coco_mini_dir() -> Path:
    """The real COCO images of the ``coco-mini`` profile: ``$PRIVCAP_COCO_MINI``, else
    ``../shared/data/coco-mini`` beside the repository (never part of the project)."""
    if os.environ.get(COCO_MINI_ENV):
        return Path(os.environ[COCO_MINI_ENV])
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini"
