"""The memory-saving forms of the optics give the same values and gradients as the plain ones:
the chunked FFT convolution with its hand-written backward, and the PSF that integrates each
wavelength over the sensor pixels inside the Fresnel pass."""

from __future__ import annotations

import pytest
import torch

from privcap.optics import (
    FresnelPSF,
    Lens,
    OpticsConfig,
    direct_convolve,
    fft_convolve,
    random_coefficients_um,
)
from privcap.optics.convolution import padded_shape

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def plain_fft_convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Reference: the whole batch in one zero-padded FFT product, differentiated by autograd."""
    h, w = images.shape[-2:]
    kh, kw = psf.shape[-2:]
    shape = padded_shape((h, w), (kh, kw))
    spec = torch.fft.rfft2(images, s=shape) * torch.fft.rfft2(psf, s=shape)
    full = torch.fft.irfft2(spec, s=shape)
    return full[..., kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


def _inputs(batch, channels, h, w, kh, kw, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, h, w, generator=gen, dtype=dtype)
    psf = torch.rand(channels, kh, kw, generator=gen, dtype=dtype)
    return images.requires_grad_(True), psf.requires_grad_(True)


# chunk_elements: one channel per chunk, one image per chunk, the whole batch at once
CHUNKS = [1, 3 * 16 * 9, 10**9]


@pytest.mark.parametrize("chunk_elements", CHUNKS)
@pytest.mark.parametrize("shape", [(9, 11, 5, 5), (8, 7, 4, 3), (6, 6, 1, 6)])
def test_gradcheck_fft_convolution(shape, chunk_elements):
    h, w, kh, kw = shape
    images, psf = _inputs(3, 2, h, w, kh, kw, seed=h * kh)
    assert torch.autograd.gradcheck(
        lambda x, p: fft_convolve(x, p, chunk_elements=chunk_elements), (images, psf)
    )


@pytest.mark.parametrize("chunk_elements", CHUNKS)
def test_custom_backward_matches_autograd_of_the_plain_fft_convolution(chunk_elements):
    images, psf = _inputs(4, 3, 20, 17, 7, 6, seed=3)
    weights = torch.rand(4, 3, 20, 17, dtype=torch.float64)
    out = fft_convolve(images, psf, chunk_elements=chunk_elements)
    ref = plain_fft_convolve(images, psf)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    assert torch.allclose(out, direct_convolve(images, psf), atol=1e-12, rtol=0)
    grads = torch.autograd.grad((out * weights).sum(), (images, psf))
    ref_grads = torch.autograd.grad((ref * weights).sum(), (images, psf))
    for got, want in zip(grads, ref_grads, strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-11, rtol=0)


def test_float32_camera_sized_convolution_matches_the_plain_one():
    images, psf = _inputs(2, 3, 48, 40, 16, 16, dtype=torch.float32, seed=5)
    out = fft_convolve(images, psf, chunk_elements=1000)
    ref = plain_fft_convolve(images, psf)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-5)
    weights = torch.rand_like(out)
    got = torch.autograd.grad((out * weights).sum(), psf)[0]
    want = torch.autograd.grad((ref * weights).sum(), psf)[0]
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)


def test_gradient_only_where_asked():
    images, psf = _inputs(2, 3, 10, 10, 3, 3)
    frozen = images.detach()
    fft_convolve(frozen, psf).sum().backward()
    assert frozen.grad is None and psf.grad is not None and psf.grad.shape == psf.shape
    fft_convolve(images, psf.detach()).sum().backward()
    # the sum of a 'same' convolution: each pixel collects the kernel mass that lands inside
    ones = torch.ones_like(images)
    expected = direct_convolve(ones, torch.flip(psf.detach(), dims=(-2, -1)))
    assert torch.allclose(images.grad, expected, atol=1e-12)


def test_grey_expanded_images_are_not_a_problem():
    grey = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    psf = torch.rand(3, 5, 5, dtype=torch.float64)
    out = fft_convolve(grey.expand(-1, 3, -1, -1), psf, chunk_elements=1)
    assert torch.allclose(out, direct_convolve(grey.expand(-1, 3, -1, -1).contiguous(), psf))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_chunk_elements_raise_naming_it(bad):
    images, psf = _inputs(1, 3, 8, 8, 3, 3)
    with pytest.raises(ValueError, match="chunk_elements"):
        fft_convolve(images, psf, chunk_elements=bad)


def test_complex_inputs_are_refused():
    with pytest.raises(ValueError, match="real"):
        fft_convolve(torch.rand(1, 3, 8, 8, dtype=torch.complex64), torch.rand(3, 3, 3))


@pytest.fixture(scope="module")
def small() -> OpticsConfig:
    q = OpticsConfig.quick()
    scale = 128 / 256
    return q.replace(grid_size=128, psf_size=64, image_size=64,
                     sensor_distance_m=q.sensor_distance_m * scale,
                     object_distance_m=q.object_distance_m * scale)


def test_pixel_integration_inside_the_fresnel_pass_matches_the_two_step_psf(small):
    lens = Lens(small, init_coefficients_um=random_coefficients_um(small, 0.5, seed=2))
    optics = FresnelPSF(small)
    weights = torch.rand(3, small.psf_size, small.psf_size)

    psf = optics(lens)
    fine = optics.fine_intensity(lens)
    two_step = optics.resampler(fine)
    two_step = two_step / two_step.sum(dim=(-2, -1), keepdim=True)
    assert fine.shape == (3, optics.propagator.window_size, optics.propagator.window_size)
    assert torch.allclose(psf, two_step, rtol=1e-6, atol=1e-12)

    params = [p for p in lens.parameters()]
    grads = torch.autograd.grad((psf * weights).sum(), params)
    ref = torch.autograd.grad((two_step * weights).sum(), params)
    for got, want in zip(grads, ref, strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
