"""The image policy shared by training and evaluation.

Every image that reaches the optics or the captioner goes through the same two steps:

1. :func:`resize_and_crop` -- resize so that the *shorter* side equals ``size`` (aspect
   ratio kept), then take the centred ``size x size`` square. Resizing is bilinear with
   ``antialias=True`` chosen explicitly: torchvision >= 0.17 antialiases by default while
   older versions did not, and a silent change of that default changes every downsampled
   image (DESIGN sec. 8). Nothing is padded and nothing is stretched.
2. :func:`normalize_for_backbone` -- subtract the ImageNet channel mean and divide by the
   channel standard deviation, the statistics the ImageNet-pretrained backbones were
   trained with. Only the captioner's backbone sees normalised images; the optics, the
   sensor model and ``L_p`` (paper Eq. 6) work on images in ``[0, 1]``.

Images are float tensors ``3 x H x W`` (or batches ``B x 3 x H x W``), RGB, in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: ImageNet channel means (R, G, B) used by torchvision's pretrained backbones.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations (R, G, B).
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _check_image(img: torch.Tensor, name: str = "img") -> None:
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
    if img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(
            f"{name} must have shape 3xHxW or Bx3xHxW (RGB), got {tuple(img.shape)}"
        )
    if not img.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {img.dtype}")


def resize_and_crop(img: torch.Tensor, size: int, *, antialias: bool = True) -> torch.Tensor:
    """Resize the shorter side of ``img`` to ``size`` pixels, then centre-crop a square.

    Args:
        img: ``3 x H x W`` or ``B x 3 x H x W`` float image in ``[0, 1]``.
        size: side of the output square in pixels (> 0).
        antialias: low-pass before downsampling (default True, the project's policy).

    Returns:
        ``3 x size x size`` (or ``B x 3 x size x size``) tensor, values clamped to
        ``[0, 1]`` (bilinear interpolation with antialiasing can overshoot slightly).
        An image that already has the requested size is returned unchanged (a copy).
    """
    _check_image(img)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
    batched = img.ndim == 4
    x = img if batched else img.unsqueeze(0)
    height, width = x.shape[-2:]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        # round, but never below the target so the crop always fits
        new_h = max(size, round(height * scale))
        new_w = max(size, round(width * scale))
        if (new_h, new_w) != (height, width):
            x = F.interpolate(
                x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                antialias=antialias,
            )
        top = (new_h - size) // 2
        left = (new_w - size) // 2
        x = x[..., top : top + size, left : left + size]
    x = x.clamp(0.0, 1.0).contiguous()
    return x if batched else x.squeeze(0)


def normalize_for_backbone(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation ``(x - mean) / std`` per channel (``3xHxW`` or ``Bx3xHxW``)."""
    _check_image(x, "x")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def denormalize_from_backbone(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_for_backbone` (for display)."""
    _check_image(x, "x")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return x * std + mean
