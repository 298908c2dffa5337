"""What a camera hands over: its sensor image with read noise, stored with a finite bit depth.

The forward model of Eq. 2 ends with read noise ``N``; a real camera then stores the image
with a finite number of levels (8 bits per channel for the usual formats). Training draws
the noise per batch (:class:`~privcap.optics.camera.LensCamera` in training mode); the
caption metrics use the noise-free image (evaluation mode). An attacker, however, never sees
the noise-free image: :class:`SensorRecording` turns a camera's evaluation-mode output into
the file it would write, with a fixed noise level and reproducible noise, so that privacy
is measured on what actually leaves the camera.

Noise floor and privacy: a non-blind deconvolution divides by the lens's transfer function.
Without noise every frequency the lens passes at all, however weakly, comes back; with a
read noise of standard deviation ``sigma`` and quantisation steps of ``2**-bits``, the
frequencies where the transfer function falls below the noise are lost for good. That is
the mechanism the paper's privacy rests on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SensorRecording", "quantize"]


def quantize(images: Tensor, bits: int) -> Tensor:
    """Images in ``[0, 1]`` clipped and rounded to ``2**bits`` levels (``0, 1/(2**bits-1),
    ..., 1``), as an image file of that bit depth stores them."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}")
    levels = float(2**bits - 1)
    return (images.clamp(0.0, 1.0) * levels).round() / levels


@dataclass(frozen=True)
class SensorRecording:
    """Read noise and bit depth of a recorded sensor image.

    Attributes:
        noise_sigma: standard deviation of the additive Gaussian read noise, in units of the
            full scale ``[0, 1]`` (0: none).
        bits: stored bit depth per channel (``None``: floating point, nothing rounded).
        seed: seed of the noise; :meth:`__call__` draws from a generator seeded with
            ``seed`` and its ``stream`` argument, so that the same images recorded for the
            same stream always get the same noise.
    """

    noise_sigma: float = 0.01
    bits: int | None = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.noise_sigma, (int, float)) and math.isfinite(self.noise_sigma)
                and self.noise_sigma >= 0):
            raise ValueError(f"noise_sigma must be a finite number >= 0, got "
                             f"{self.noise_sigma!r}")
        if self.bits is not None:
            quantize(torch.zeros(1), self.bits)  # validates bits

    @property
    def is_ideal(self) -> bool:
        """True when nothing is added or rounded (the noise-free float image)."""
        return self.noise_sigma == 0 and self.bits is None

    def __call__(self, images: Tensor, stream: int = 0) -> Tensor:
        """The recorded version of noise-free sensor images ``images`` (any shape; values
        nominally in ``[0, 1]``): ``quantize(images + noise_sigma * n)`` with ``n`` standard
        normal from the generator of ``(seed, stream)``. The result is clipped to ``[0, 1]``
        when ``bits`` is set."""
        out = images
        if self.noise_sigma > 0:
            generator = torch.Generator().manual_seed(
                (int(self.seed) * 1_000_003 + int(stream)) % (2**63))
            noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
            out = out + self.noise_sigma * noise.to(device=images.device, dtype=images.dtype)
        if self.bits is not None:
            out = quantize(out, self.bits)
        return out

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly form."""
        return {"noise_sigma": float(self.noise_sigma), "bits": self.bits,
                "seed": int(self.seed)}
