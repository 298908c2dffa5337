"""The authors' released camera, by its algorithm (``privcap.bench.released``): the baseline of
the benchmark must compute the camera it stands for -- the same basis, the same PSF physics,
the released padding, resize and convolution -- and be differentiable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from privcap.bench.released import (
    ReleasedCamera,
    dense_zernike_volume,
    released_padded_size,
    released_resize_factor,
)
from privcap.bench.workloads import GEOMETRIES, bench_config
from privcap.optics import LensCamera, random_coefficients_um, zernike_basis

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def config():
    """A 64-sample lens imaged on 64 PSF pixels (one lens sample per pixel: no binning)."""
    return bench_config("smoke-full").replace(psf_size=64, image_size=64)


def test_released_sizes_of_the_paper_camera():
    full = bench_config("full")
    assert released_padded_size(full.grid_size) == 1344  # N/4 zeros on each side
    assert released_resize_factor(full.grid_size, full.psf_size) == 7  # 896 -> 1792 -> 256
    assert released_resize_factor(64, 32) == 1
    assert set(GEOMETRIES) == {"quick", "full", "smoke-quick", "smoke-full"}
    with pytest.raises(ValueError, match="geometry"):
        bench_config("huge")


def test_dense_basis_is_the_zernike_basis_in_metres_per_micrometre():
    volume = dense_zernike_volume(66, 64)  # radial orders up to 10, both parities of m
    assert volume.dtype == np.float32 and volume.shape == (66, 64, 64)
    reference = zernike_basis(66, 64).numpy()
    assert np.abs(volume * 1e6 - reference).max() < 2e-5
    with pytest.raises(ValueError, match="num_terms"):
        dense_zernike_volume(0, 64)


def test_psf_matches_privcap_for_the_same_lens(config):
    coefficients = random_coefficients_um(config, 0.3, seed=1)
    ours = LensCamera(config, init_coefficients_um=coefficients)
    theirs = ReleasedCamera(config, coefficients, padded_size=config.fft_size,
                            height_tolerance_m=0.0)
    with torch.no_grad():
        a, b = ours.psf(), theirs.psf()
    assert b.shape == a.shape == (3, 64, 64)
    assert b.sum(dim=(-2, -1)) == pytest.approx(torch.ones(3), abs=1e-5)
    l1 = (a[:, None] - b[None]).abs().sum(dim=(-2, -1))  # [privcap channel, released channel]
    # the same PSF up to the released hard-edged aperture one sample inside privcap's
    assert float(l1.diagonal().max()) < 0.2
    # channel for channel (R, G, B on both sides): each matches its own colour best
    assert torch.equal(l1.argmin(dim=1), torch.arange(3))


def test_released_convolution_crops_one_pixel_and_resizes_back():
    """A centred delta kernel: the released FFT convolution shifts by one pixel, keeps
    ``H - 1`` rows and columns and resizes them back by nearest neighbour."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16, generator=gen)
    delta = torch.zeros(3, 8, 8)
    delta[:, 4, 4] = 1.0
    out = ReleasedCamera.convolve(images, delta)
    keep = (torch.arange(16) * 15) // 16  # nearest source row of the 15 kept rows
    assert torch.allclose(out, images[..., keep, :][..., keep], atol=1e-5)
    with pytest.raises(ValueError, match="square"):
        ReleasedCamera.convolve(torch.rand(1, 3, 16, 12), delta)


def test_gradient_reaches_every_coefficient(config):
    small = config.replace(num_terms=10, psf_size=32, image_size=32)
    coefficients = random_coefficients_um(small, 0.3, seed=2)
    camera = ReleasedCamera(small, coefficients, height_tolerance_m=0.0)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    weights = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))

    def loss() -> torch.Tensor:
        return (camera(images) * weights).sum()

    loss().backward()
    grad = camera.coefficients.grad.flatten()
    assert grad.shape == (10,) and bool(torch.isfinite(grad).all())
    assert int((grad != 0).sum()) == 10
    for j in (3, 6):  # central differences (float32 camera: 1e-3 um steps, loose tolerance)
        with torch.no_grad():
            camera.coefficients[j] += 1e-3
            up = float(loss())
            camera.coefficients[j] -= 2e-3
            down = float(loss())
            camera.coefficients[j] += 1e-3
        assert (up - down) / 2e-3 == pytest.approx(float(grad[j]), rel=0.05)


def test_height_noise_is_drawn_at_every_call(config):
    coefficients = random_coefficients_um(config, 0.3, seed=1)
    camera = ReleasedCamera(config, coefficients)  # the released +-20 nm by default
    with torch.no_grad():
        first, second = camera.height_m(), camera.height_m()
    noise = (first - second).abs().max()
    assert 0 < float(noise) <= 2 * 2e-8 * (1 + 1e-3)
    assert math.isfinite(float(first.abs().max()))
    with pytest.raises(ValueError, match="coefficients_um"):
        ReleasedCamera(config, torch.zeros(3))
