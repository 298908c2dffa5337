"""The four cameras of the paper's Table 1, built by name, and their JSON-able description.

=================  ====================================================================
kind               camera
=================  ====================================================================
``no-lens``        :class:`~privcap.optics.IdentityCamera`: the captioner sees the clean
                   scene ("Proposed-w" in Table 1, no privacy)
``learned-lens``   :class:`~privcap.optics.LensCamera`: Z4 and every higher Zernike
                   term learn, Z4 starting at ``config.z4_init_um``; piston and tilts
                   (Z1-Z3) stay 0 (see below)
``defocus``        :class:`~privcap.optics.DefocusCamera`: the same optics, only Z4 learns
                   (the paper's defocus baseline)
``low-res``        :class:`~privcap.optics.LowResCamera`: area integration onto a sensor
                   ``config.lowres_factor`` (16, the paper's ratio) times smaller per side,
                   upsampled back
=================  ====================================================================

Piston and tilts do not learn: piston (a constant phase) changes no PSF, so its gradient is
rounding noise that Adam would turn into full-size random steps; tilts Z2 / Z3 only shift the
image, which L_p (a pixel-wise distance to the scene) and SSIM both reward although a shifted
image hides nothing -- a lens allowed to tilt learns to look private by moving the picture.

Where the lens starts: at focus, in every profile (``config.z4_init_um``: -22 um for
``full``, the released code's value and the analytic focus; the analytic focus of green,
-6.35 um, for ``quick``). Fine-tuning then starts from the images the clean captioner was
trained on, and the lens learns how far to leave them. A focused lens is not a stationary
point: only green is exactly in focus (red and blue are 0.06-0.08 um of Z4 away), so L_p has a
gradient from the first step, and in the ``quick`` runs Z4 leaves focus within a few steps.
Starting elsewhere would hand the defocus baseline and the learned lens a blur nobody chose.

The privacy cameras add the same Gaussian read noise (``config.noise_sigma_range``) while
training. :func:`camera_spec` describes a camera as plain data (kind, optics, noise, ...),
which a checkpoint stores next to the camera's ``state_dict`` so that
:func:`camera_from_spec` can rebuild it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from privcap.optics.camera import DefocusCamera, IdentityCamera, LensCamera, LowResCamera
from privcap.optics.config import OpticsConfig

__all__ = [
    "CAMERA_KINDS",
    "PRIVACY_CAMERAS",
    "build_camera",
    "camera_from_spec",
    "camera_kind",
    "camera_snapshot",
    "camera_spec",
    "has_psf",
    "optics_from_dict",
    "optics_to_dict",
]

#: camera kinds of Table 1, in the table's order
CAMERA_KINDS: tuple[str, ...] = ("no-lens", "learned-lens", "defocus", "low-res")
#: kinds that hide the scene (the "privacy" column of Table 1)
PRIVACY_CAMERAS: frozenset[str] = frozenset({"learned-lens", "defocus", "low-res"})
SPEC_VERSION = 1


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`CAMERA_KINDS`, else ``ValueError`` naming them."""
    if kind not in CAMERA_KINDS:
        raise ValueError(f"camera must be one of {CAMERA_KINDS}, got {kind!r}")
    return kind


def optics_to_dict(config: OpticsConfig) -> dict[str, Any]:
    """Plain-data form of an :class:`OpticsConfig` (tuples as lists; an infinite object
    distance as the string ``"inf"``, so the dict is valid JSON)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, float) and math.isinf(value):
            value = "inf"
        out[field.name] = value
    return out


def optics_from_dict(data: dict[str, Any]) -> OpticsConfig:
    """Inverse of :func:`optics_to_dict` (unknown keys are an error)."""
    known = {f.name for f in dataclasses.fields(OpticsConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown optics config keys: {unknown}")
    values = {}
    for key, value in data.items():
        if value == "inf":
            value = math.inf
        if isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return OpticsConfig(**values)


def build_camera(
    kind: str,
    optics_config: OpticsConfig | None = None,
    *,
    noise_sigma_range: tuple[float, float] | None = None,
    z4_init_um: float | None = None,
    init_coefficients_um: Any = None,
    response: str = "identity",
) -> nn.Module:
    """The camera ``kind`` (one of :data:`CAMERA_KINDS`), in training mode.

    Args:
        kind: ``"no-lens"``, ``"learned-lens"``, ``"defocus"`` or ``"low-res"``.
        optics_config: geometry (default :meth:`OpticsConfig.quick`); ``lowres_factor``
            sets the low-resolution sensor, ``z4_init_um`` the starting defocus term.
        noise_sigma_range: read-noise range while training (default
            ``optics_config.noise_sigma_range``; ``(0, 0)`` turns noise off). Not used by
            ``no-lens``.
        z4_init_um: starting Z4 of ``learned-lens`` / ``defocus`` (default
            ``optics_config.z4_init_um``).
        init_coefficients_um: all starting coefficients of ``learned-lens`` (overrides
            ``z4_init_um``).
        response: camera response ``S`` of Eq. 2 (``"identity"``, ``"clip"``, ``"gamma"``).
    """
    check_kind(kind)
    config = OpticsConfig.quick() if optics_config is None else optics_config
    noise = config.noise_sigma_range if noise_sigma_range is None else tuple(noise_sigma_range)
    if kind == "no-lens":
        return IdentityCamera()
    if kind == "low-res":
        return LowResCamera(config=config, response=response, noise_sigma_range=noise)
    z4 = config.z4_init_um if z4_init_um is None else float(z4_init_um)
    if kind == "defocus":
        return DefocusCamera(config, z4_init_um=z4, response=response, noise_sigma_range=noise)
    if init_coefficients_um is None:
        init = torch.zeros(config.num_terms, dtype=torch.float64)
        init[3] = z4
        init_coefficients_um = init
    return LensCamera(config, trainable=range(4, config.num_terms + 1),
                      init_coefficients_um=init_coefficients_um, response=response,
                      noise_sigma_range=noise)


def camera_kind(camera: nn.Module) -> str:
    """The :data:`CAMERA_KINDS` name of a camera module (``ValueError`` for other modules)."""
    if isinstance(camera, IdentityCamera):
        return "no-lens"
    if isinstance(camera, LowResCamera):
        return "low-res"
    if isinstance(camera, DefocusCamera):
        return "defocus"
    if isinstance(camera, LensCamera):
        return "learned-lens"
    raise ValueError(
        f"not a camera of {CAMERA_KINDS}: {type(camera).__name__} (build one with build_camera)"
    )


def has_psf(camera: nn.Module) -> bool:
    """Whether the camera has a learnable lens with a PSF (and hence an L_H term)."""
    return isinstance(camera, LensCamera)


def camera_spec(camera: nn.Module) -> dict[str, Any]:
    """Plain-data description of a camera built by :func:`build_camera`: enough, with its
    ``state_dict``, to rebuild it with :func:`camera_from_spec`."""
    kind = camera_kind(camera)
    spec: dict[str, Any] = {"version": SPEC_VERSION, "kind": kind}
    if kind == "no-lens":
        return spec
    spec["noise_sigma_range"] = list(camera.noise_sigma_range)
    spec["response"] = camera.response.kind
    if kind == "low-res":
        spec["factor"] = camera.factor
        spec["upsample_mode"] = camera.upsample_mode
        spec["optics"] = None
        return spec
    spec["optics"] = optics_to_dict(camera.config)
    return spec


def camera_from_spec(spec: dict[str, Any]) -> nn.Module:
    """A camera from :func:`camera_spec`'s description (weights not loaded: use the stored
    ``state_dict``)."""
    if not isinstance(spec, dict) or spec.get("version") != SPEC_VERSION:
        raise ValueError(f"not a camera spec of version {SPEC_VERSION}: {spec!r}")
    kind = check_kind(spec.get("kind"))
    if kind == "no-lens":
        return IdentityCamera()
    noise = tuple(spec["noise_sigma_range"])
    if kind == "low-res":
        return LowResCamera(factor=int(spec["factor"]), upsample_mode=spec["upsample_mode"],
                            response=spec["response"], noise_sigma_range=noise)
    config = optics_from_dict(spec["optics"])
    return build_camera(kind, config, noise_sigma_range=noise, response=spec["response"])


@torch.no_grad()
def camera_snapshot(camera: nn.Module, psf_crop_px: int | None = None) -> dict[str, Any]:
    """What a training history records about a camera: the Zernike coefficients (um, Noll
    order) and, with ``psf_crop_px``, the central ``psf_crop_px`` square of the RGB PSF
    (nested lists, ``3 x s x s``). Empty for cameras without a lens."""
    if not has_psf(camera):
        return {}
    out: dict[str, Any] = {
        "coefficients_um": [float(v) for v in camera.lens.coefficients_um().detach().cpu()]
    }
    if psf_crop_px:
        psf = camera.psf().detach().float().cpu()
        k = psf.shape[-1]
        side = min(int(psf_crop_px), k)
        start = k // 2 - side // 2
        crop = psf[:, start : start + side, start : start + side]
        out["psf_crop"] = [[[float(f"{v:.4g}") for v in row] for row in ch] for ch in
                           crop.tolist()]
        out["psf_crop_start_px"] = start
    return out
