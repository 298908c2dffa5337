"""Gaussian blur: the reference alteration against which privacy measurements are calibrated.

A re-identification network or a tag reader is only a meaningful attacker if it copes with
mild blur and fails under heavy blur; :func:`gaussian_blur` is that yardstick. The kernel is
the sampled Gaussian ``exp(-x^2 / (2 sigma^2))`` truncated at ``TRUNCATE * sigma`` pixels
(as ``scipy.ndimage.gaussian_filter`` with ``truncate=4``) and normalised to sum 1, applied
separably; the border is mirrored (``reflect`` padding, edge pixel not repeated) when the
kernel radius is smaller than the image, replicated otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from privcap.optics.camera import as_rgb_batch

__all__ = ["TRUNCATE", "gaussian_blur"]

#: Kernel radius in standard deviations.
TRUNCATE = 4.0


def gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Blur ``B x 3 x H x W`` (or ``3 x H x W``) images with a Gaussian of ``sigma_px`` pixels.

    ``sigma_px = 0`` returns a copy. The output has the input's shape (a single image stays
    ``3 x H x W``).
    """
    if not (isinstance(sigma_px, (int, float)) and math.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0, got {sigma_px!r}")
    single = isinstance(images, torch.Tensor) and images.ndim == 3
    x = as_rgb_batch(images)
    if sigma_px == 0:
        out = x.clone()
        return out[0] if single else out
    radius = max(1, int(TRUNCATE * sigma_px + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    taps = (taps / taps.sum()).to(x.dtype).to(x.device)
    channels = x.shape[1]
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    y = F.pad(x, (radius, radius, radius, radius), mode=mode)
    y = F.conv2d(y, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    y = F.conv2d(y, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return y[0] if single else y
