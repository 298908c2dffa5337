"""Image-PSF convolution ``H * X`` of Eq. 2 by real FFTs with zero padding.

Both the image (``H x W``) and the kernel (``K x K``) are zero padded to an FFT-friendly
size of at least ``H + K - 1`` by ``W + K - 1``, so the product of their spectra is the
*linear* convolution: no light wraps from one border to the opposite one. The output is
the ``H x W`` part aligned with the input (kernel centre at index ``K//2``), real by
construction (real FFTs; no ``abs()``), with no one-pixel shift.
"""

from __future__ import annotations

import torch

from privcap.optics.propagation import fft_friendly_size

__all__ = ["fft_convolve", "direct_convolve"]


def _check(images: torch.Tensor, psf: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
    if psf.dim() != 3 or psf.shape[0] != images.shape[1]:
        raise ValueError(
            f"psf must be C x K x K with C = {images.shape[1]} channels, got {tuple(psf.shape)}"
        )


def fft_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """``out[b, c] = psf[c] * images[b, c]`` (linear, 'same' size, kernel centre ``K//2``).

    ``images`` is ``B x C x H x W`` and ``psf`` is ``C x Kh x Kw`` (real). Cost
    ``O(B C P log P)`` with ``P`` the padded size, against ``O(B C H W K^2)`` spatially.
    """
    _check(images, psf)
    h, w = images.shape[-2:]
    kh, kw = psf.shape[-2:]
    ph = fft_friendly_size(h + kh - 1, even=True)
    pw = fft_friendly_size(w + kw - 1, even=True)
    spec = torch.fft.rfft2(images, s=(ph, pw))
    spec = spec * torch.fft.rfft2(psf.to(images.dtype), s=(ph, pw))
    full = torch.fft.irfft2(spec, s=(ph, pw))
    top, left = kh // 2, kw // 2
    return full[..., top : top + h, left : left + w]


def direct_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """The same result as :func:`fft_convolve` by a spatial ``conv2d`` (reference; slow for
    large kernels)."""
    _check(images, psf)
    kh, kw = psf.shape[-2:]
    weight = torch.flip(psf.to(images.dtype), dims=(-2, -1)).unsqueeze(1)  # true convolution
    pads = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)  # left, right, top, bottom
    padded = torch.nn.functional.pad(images, pads)
    return torch.nn.functional.conv2d(padded, weight, groups=images.shape[1])
