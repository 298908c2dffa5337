"""Reading image files into RGB tensors in ``[0, 1]``.

:func:`load_image` is the single entry point used by every loader of the project. It decodes
the whole file (so a truncated file fails here, not later in a training loop), applies the
EXIF orientation, and converts every pixel format to 8- or 16-bit RGB scaled to ``[0, 1]``:

================================  ==========================================================
file pixel format (PIL mode)      conversion
================================  ==========================================================
``RGB``                           ``value / 255``
``L`` (grayscale), ``1`` (bi-     the gray value replicated on R, G and B
level)
``P`` (palette)                   palette lookup; a palette with a transparent entry is
                                  treated like ``RGBA``
``RGBA``, ``LA``, ``PA``,         alpha-composited on a **white** background:
``RGBa``, ``La``                  ``rgb * a + 1 * (1 - a)`` (pre-multiplied modes are
                                  un-premultiplied by Pillow first)
``CMYK``                          Pillow's naive conversion ``R = 255 - min(255, C + K)``
                                  etc.; embedded ICC profiles are ignored
``YCbCr``, ``LAB``, ``HSV``       Pillow's conversion to RGB
``I;16``, ``I;16B``, ``I;16L``    16-bit grayscale: ``value / 65535``, replicated on RGB
``I`` (32-bit integer)            read as 16-bit data: ``value / 65535``; values outside
                                  ``[0, 65535]`` are an error (no silent clipping)
``F`` (32-bit float)              used as is when every value lies in ``[0, 1]``, otherwise
                                  an error
16-bit-per-channel RGB(A) PNG     Pillow decodes these as 8-bit ``RGB(A)``: the precision is
                                  reduced to 8 bits (values are still correct to 1/255)
animated / multi-page files       the first frame
================================  ==========================================================

A missing path raises :class:`FileNotFoundError`; a file that cannot be decoded (unknown
format, corrupt or truncated data, absurd size) raises :class:`ImageLoadError`, a
:class:`ValueError` whose message names the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

#: PIL modes that carry an alpha channel composited on white.
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
#: 16-bit grayscale PIL modes.
_UINT16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
#: Background colour used for transparent pixels (white, in [0, 1]).
ALPHA_BACKGROUND: tuple[float, float, float] = (1.0, 1.0, 1.0)


class ImageLoadError(ValueError):
    """An image file exists but cannot be decoded into an RGB image."""


def _gray_to_rgb(gray: np.ndarray) -> torch.Tensor:
    plane = torch.from_numpy(np.array(gray, dtype=np.float32))  # a writable copy
    return plane.unsqueeze(0).expand(3, -1, -1).contiguous()


def _to_tensor(img: Image.Image, path: Path) -> torch.Tensor:
    """Convert a decoded PIL image of any mode to a ``3 x H x W`` float tensor in [0, 1]."""
    mode = img.mode
    if mode in _UINT16_MODES:
        data = np.asarray(img).astype(np.float32) / 65535.0
        return _gray_to_rgb(data)
    if mode == "I":
        data = np.asarray(img)
        lo, hi = int(data.min()), int(data.max())
        if lo < 0 or hi > 65535:
            raise ImageLoadError(
                f"{path}: 32-bit integer image with values in [{lo}, {hi}]; only 16-bit data "
                "(0..65535) is supported"
            )
        return _gray_to_rgb(data.astype(np.float32) / 65535.0)
    if mode == "F":
        data = np.asarray(img, dtype=np.float32)
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        if not (np.isfinite(data).all() and lo >= 0.0 and hi <= 1.0):
            raise ImageLoadError(
                f"{path}: floating-point image with values in [{lo}, {hi}] (or non-finite); "
                "expected values in [0, 1]"
            )
        return _gray_to_rgb(data)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        background = np.asarray(ALPHA_BACKGROUND, dtype=np.float32)
        rgb = rgba[..., :3] * alpha + background * (1.0 - alpha)
    else:
        try:
            rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except (ValueError, OSError) as exc:
            raise ImageLoadError(f"{path}: cannot convert PIL mode {mode!r} to RGB: {exc}") from exc
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def load_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file as an RGB float tensor ``3 x H x W`` in ``[0, 1]``.

    Conversions of grayscale, palette, alpha, CMYK and 16-bit files are listed in the module
    docstring. The EXIF orientation tag is applied (the tensor is what a viewer displays).

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a file.
        ImageLoadError: the file cannot be decoded (not an image, corrupt, truncated,
            too large for Pillow's decompression-bomb guard, unsupported pixel values).
    """
    file = Path(path)
    if not file.is_file():
        if file.exists():
            raise FileNotFoundError(f"image path is not a file: {file}")
        raise FileNotFoundError(f"image file not found: {file}")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on decompression bombs; make the warning an error
            # so that a huge file fails loudly with the file name instead of a warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                img.load()  # decode everything now: truncated data fails here
                img = ImageOps.exif_transpose(img)
                return _to_tensor(img, file)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"{file}: not a recognised image file") from exc
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"{file}: image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(f"{file}: corrupt or truncated image data ({exc})") from exc
