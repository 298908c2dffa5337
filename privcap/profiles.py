"""The data/model profiles of the project (DESIGN sec. 5), listed once for every module.

- ``quick``: synthetic scenes, small models, any laptop, minutes;
- ``coco-mini``: a small COCO-format folder, ImageNet backbone, CPU;
- ``full``: COCO 2014 with the Karpathy split, the paper's models, GPU(s).
"""

from __future__ import annotations

#: every profile a function of :mod:`privcap` accepts
PROFILES: tuple[str, ...] = ("quick", "coco-mini", "full")


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else ``ValueError`` naming them."""
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile
