"""Image-PSF convolution ``H * X`` of Eq. 2 by real FFTs with zero padding.

Both the image (``H x W``) and the kernel (``Kh x Kw``) are zero padded to an FFT-friendly
size ``Ph x Pw`` of at least ``H + Kh - 1`` by ``W + Kw - 1``, so the product of their
spectra is the *linear* convolution: no light wraps from one border to the opposite one.
The output is the ``H x W`` part aligned with the input (kernel centre at index ``K//2``),
real by construction (real FFTs; no ``abs()``), with no one-pixel shift.

The kernel is placed in the padded array circularly shifted so that its centre sits at
index ``(0, 0)`` (an exact rearrangement of its values); the aligned output is then simply
the first ``H x W`` samples of the inverse transform.

Memory. :class:`_FFTConvolution` is a hand-written autograd function that processes the
batch a few images (or channels) at a time, so only one small chunk of padded spectra exists
at once, in
the forward *and* the backward pass. It keeps for the backward pass only the input images
(already alive in the caller) and the ``C x Ph x (Pw/2+1)`` spectrum of the kernel; the
image spectra are recomputed chunk by chunk when the kernel gradient is needed. The
gradients are the exact adjoints (circular correlations):

* ``dL/dX_b = crop(irfft2(rfft2(pad(dL/dY_b)) conj(P)))``,
* ``dL/dp = crop(unshift(irfft2(sum_b conj(rfft2(pad(X_b))) rfft2(pad(dL/dY_b)))))``.
"""

from __future__ import annotations

import torch

from privcap.optics.propagation import fft_friendly_size

__all__ = ["fft_convolve", "direct_convolve", "padded_shape", "DEFAULT_CHUNK_ELEMENTS"]

#: complex spectrum samples per chunk (1 MiB of complex64: one 512 x 257 channel spectrum
#: of the full camera, a few whole images for small ones)
DEFAULT_CHUNK_ELEMENTS = 2**17 + 2**15


def _check(images: torch.Tensor, psf: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
    if psf.dim() != 3 or psf.shape[0] != images.shape[1]:
        raise ValueError(
            f"psf must be C x K x K with C = {images.shape[1]} channels, got {tuple(psf.shape)}"
        )


def padded_shape(image_hw: tuple[int, int], kernel_hw: tuple[int, int]) -> tuple[int, int]:
    """FFT size ``(Ph, Pw)``: the smallest even 2-3-5-7-smooth sizes ``>= H + Kh - 1`` and
    ``>= W + Kw - 1`` (linear, not circular, convolution)."""
    (h, w), (kh, kw) = image_hw, kernel_hw
    return (fft_friendly_size(h + kh - 1, even=True), fft_friendly_size(w + kw - 1, even=True))


def _kernel_spectrum(psf: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``rfft2`` of the kernel zero padded to ``shape`` with its centre ``(Kh//2, Kw//2)``
    moved to index ``(0, 0)`` (``C x Ph x (Pw/2+1)``, complex)."""
    kh, kw = psf.shape[-2:]
    top, left = kh // 2, kw // 2
    out = None
    for c in range(psf.shape[0]):  # one channel at a time: small temporaries
        padded = psf.new_zeros(shape)
        # circular shift by (-top, -left): four quadrants of the kernel, values unchanged
        padded[: kh - top, : kw - left] = psf[c, top:, left:]
        padded[: kh - top, shape[1] - left :] = psf[c, top:, :left]
        padded[shape[0] - top :, : kw - left] = psf[c, :top, left:]
        padded[shape[0] - top :, shape[1] - left :] = psf[c, :top, :left]
        spec = torch.fft.rfft2(padded)
        if out is None:
            out = spec.new_empty((psf.shape[0],) + spec.shape)
        out[c] = spec
        del padded, spec
    return out


def _blocks(batch: int, channels: int, per_channel: int, chunk_elements: int):
    """``(images, channels)`` slices covering the batch, each holding about
    ``chunk_elements`` spectrum samples: several whole images, or one image's channels a few
    at a time (at least one channel)."""
    per_image = channels * per_channel
    if chunk_elements >= per_image:
        step = min(batch, chunk_elements // per_image)
        return [(slice(a, a + step), slice(None)) for a in range(0, batch, step)]
    step = max(1, chunk_elements // per_channel)
    return [
        (slice(a, a + 1), slice(c, c + step))
        for a in range(batch) for c in range(0, channels, step)
    ]


class _FFTConvolution(torch.autograd.Function):
    """``images`` (B x C x H x W), ``psf`` (C x Kh x Kw) -> ``psf * images`` ('same' size),
    batch chunk by batch chunk; see the module docstring for what is saved."""

    @staticmethod
    def forward(ctx, images, psf, chunk_elements):  # type: ignore[override]
        b, c, h, w = images.shape
        shape = padded_shape((h, w), tuple(psf.shape[-2:]))
        kernel = _kernel_spectrum(psf, shape)
        blocks = _blocks(b, c, kernel[0].numel(), chunk_elements)
        out = images.new_empty(b, c, h, w)
        for bs, cs in blocks:
            spec = torch.fft.rfft2(images[bs, cs], s=shape).mul_(kernel[cs])
            out[bs, cs] = torch.fft.irfft2(spec, s=shape)[..., :h, :w]
            del spec
        ctx.save_for_backward(images if ctx.needs_input_grad[1] else None, kernel)
        ctx.shape, ctx.blocks, ctx.kernel_hw = shape, blocks, tuple(psf.shape[-2:])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        images, kernel = ctx.saved_tensors
        need_images, need_psf = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        shape = ctx.shape
        b, c, h, w = grad_out.shape
        grad_images = grad_out.new_empty(b, c, h, w) if need_images else None
        acc = kernel.new_zeros(kernel.shape) if need_psf else None
        kernel_conj = kernel.conj()
        for bs, cs in ctx.blocks:
            spec = torch.fft.rfft2(grad_out[bs, cs], s=shape)
            if need_psf:
                image_spec = torch.fft.rfft2(images[bs, cs], s=shape).conj_physical_()
                acc[cs] += image_spec.mul_(spec).sum(0)
                del image_spec
            if need_images:
                spec.mul_(kernel_conj[cs])
                grad_images[bs, cs] = torch.fft.irfft2(spec, s=shape)[..., :h, :w]
            del spec
        grad_psf = None
        if need_psf:
            kh, kw = ctx.kernel_hw
            top, left = kh // 2, kw // 2
            grad_psf = grad_out.new_empty(c, kh, kw)
            for ch in range(c):  # undo the circular shift of the kernel, channel by channel
                full = torch.fft.irfft2(acc[ch], s=shape)
                grad_psf[ch, top:, left:] = full[: kh - top, : kw - left]
                grad_psf[ch, top:, :left] = full[: kh - top, shape[1] - left :]
                grad_psf[ch, :top, left:] = full[shape[0] - top :, : kw - left]
                grad_psf[ch, :top, :left] = full[shape[0] - top :, shape[1] - left :]
                del full
        return grad_images, grad_psf, None


def fft_convolve(
    images: torch.Tensor, psf: torch.Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> torch.Tensor:
    """``out[b, c] = psf[c] * images[b, c]`` (linear, 'same' size, kernel centre ``K//2``).

    ``images`` is ``B x C x H x W`` and ``psf`` is ``C x Kh x Kw`` (real). Cost
    ``O(B C P log P)`` with ``P`` the padded size, against ``O(B C H W K^2)`` spatially.
    Differentiable with respect to both arguments; the batch goes through the FFTs in
    chunks of about ``chunk_elements`` complex spectrum samples (at least one image), which
    bounds the temporary memory without changing the result.
    """
    _check(images, psf)
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int) or (
        chunk_elements < 1
    ):
        raise ValueError(f"chunk_elements must be a positive integer, got {chunk_elements!r}")
    if images.is_complex() or psf.is_complex():
        raise ValueError(
            f"images and psf must be real, got dtypes {images.dtype} and {psf.dtype}"
        )
    return _FFTConvolution.apply(images, psf.to(images.dtype), chunk_elements)


def direct_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """The same result as :func:`fft_convolve` by a spatial ``conv2d`` (reference; slow for
    large kernels)."""
    _check(images, psf)
    kh, kw = psf.shape[-2:]
    weight = torch.flip(psf.to(images.dtype), dims=(-2, -1)).unsqueeze(1)  # true convolution
    pads = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)  # left, right, top, bottom
    padded = torch.nn.functional.pad(images, pads)
    return torch.nn.functional.conv2d(padded, weight, groups=images.shape[1])
