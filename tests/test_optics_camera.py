"""Cameras of Eq. 2: FFT convolution, linearity, shift-equivariance, borders, noise, inputs."""

from __future__ import annotations

import pytest
import torch

from privcap.optics import (
    DefocusCamera,
    IdentityCamera,
    LensCamera,
    LowResCamera,
    OpticsConfig,
    direct_convolve,
    fft_convolve,
    random_coefficients_um,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small() -> OpticsConfig:
    """Quick physics on a smaller grid: 64-pixel PSF, 64-pixel images."""
    q = OpticsConfig.quick()
    scale = 128 / 256
    config = q.replace(grid_size=128, psf_size=64, image_size=64,
                       sensor_distance_m=q.sensor_distance_m * scale,
                       object_distance_m=q.object_distance_m * scale)
    return config.replace(z4_init_um=config.focus_z4_um()[1])


@pytest.fixture(scope="module")
def blurry(small) -> LensCamera:
    """A random lens with a wide PSF, in evaluation mode (no noise)."""
    cam = LensCamera(small, init_coefficients_um=random_coefficients_um(small, 0.5, seed=7))
    return cam.eval()


@pytest.mark.parametrize("k", [5, 6, 9])
def test_fft_convolution_equals_direct_convolution(k):
    gen = torch.Generator().manual_seed(k)
    images = torch.rand(2, 3, 20, 17, generator=gen, dtype=torch.float64)
    psf = torch.rand(3, k, k, generator=gen, dtype=torch.float64)
    assert torch.allclose(fft_convolve(images, psf), direct_convolve(images, psf), atol=1e-12)


def test_delta_psf_is_identity_and_output_real():
    images = torch.rand(1, 3, 16, 16)
    delta = torch.zeros(3, 8, 8)
    delta[:, 4, 4] = 1.0  # kernel centre at K // 2: no shift
    out = fft_convolve(images, delta)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert torch.allclose(out, images, atol=1e-6)


def test_camera_is_linear_in_the_image(blurry):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 3, 64, 64, generator=gen)
    with torch.no_grad():
        lhs = blurry(0.3 * x + 0.7 * y)
        rhs = 0.3 * blurry(x) + 0.7 * blurry(y)
        blurred = blurry(x)
    assert torch.allclose(lhs, rhs, atol=1e-5)
    assert float((blurred - x).abs().mean()) > 0.01  # it does blur


def test_camera_is_shift_equivariant_away_from_the_border(blurry):
    scene = torch.zeros(1, 3, 64, 64)
    scene[..., 28:32, 30:33] = 1.0
    moved = torch.roll(scene, shifts=(3, -2), dims=(-2, -1))
    with torch.no_grad():
        a = torch.roll(blurry(scene), shifts=(3, -2), dims=(-2, -1))
        b = blurry(moved)
    assert torch.allclose(a[..., 8:56, 8:56], b[..., 8:56, 8:56], atol=1e-6)


def test_point_at_the_edge_does_not_wrap_to_the_opposite_edge(blurry):
    psf = blurry.psf().detach()
    scene = torch.zeros(1, 3, 64, 64)
    scene[..., 32, 63] = 1.0  # right edge
    with torch.no_grad():
        out = blurry(scene)
    # what a circular (un-padded) convolution would have put in the left columns
    circular = torch.fft.irfft2(torch.fft.rfft2(scene) * torch.fft.rfft2(
        torch.roll(torch.nn.functional.pad(psf, (0, 0, 0, 0)), (-32, -32), (-2, -1))),
        s=(64, 64))
    assert float(circular[..., :, :8].abs().sum()) > 1e-3
    assert float(out[..., :, :8].abs().sum()) < 1e-6
    assert float(out.sum()) > 0.2  # most light is still recorded near the right edge


def test_psf_support_larger_than_image_refused(small):
    cam = LensCamera(small).eval()
    with pytest.raises(ValueError, match="smaller than the PSF support"):
        cam(torch.rand(1, 3, 32, 64))


@pytest.mark.parametrize(
    "images",
    [torch.rand(64, 64), torch.rand(2, 2, 64, 64), torch.rand(1, 1, 3, 64, 64),
     torch.zeros(1, 3, 64, 64, dtype=torch.uint8), [[0.0]]],
)
def test_bad_images_raise_naming_images(blurry, images):
    with pytest.raises(ValueError, match="images"):
        blurry(images)


def test_single_image_and_grey_conversions(blurry):
    rgb = torch.rand(3, 64, 64)
    with torch.no_grad():
        assert blurry(rgb).shape == (1, 3, 64, 64)
        grey = torch.rand(2, 1, 64, 64)
        assert torch.allclose(blurry(grey), blurry(grey.expand(-1, 3, -1, -1)))


def test_noise_only_in_training_unless_asked(small):
    cam = LensCamera(small, noise_sigma_range=(0.05, 0.05))
    x = torch.full((1, 3, 64, 64), 0.5)
    with torch.no_grad():
        cam.eval()
        clean = cam(x)
        assert torch.allclose(cam(x), clean)
        cam.train()
        torch.manual_seed(0)
        noisy = cam(x)
        assert float((noisy - clean).std()) == pytest.approx(0.05, rel=0.05)
        cam.eval()
        assert float((cam(x, noise_sigma=0.1) - clean).std()) == pytest.approx(0.1, rel=0.05)
        cam.noise_in_eval = True
        assert not torch.allclose(cam(x), clean)


def test_per_batch_noise_sigma_within_range(small):
    cam = LensCamera(small, noise_sigma_range=(0.01, 0.03)).train()
    x = torch.full((4, 3, 64, 64), 0.5)
    with torch.no_grad():
        clean = cam.eval()(x)
        cam.train()
        sigmas = [float((cam(x) - clean).std()) for _ in range(5)]
    assert all(0.009 < s < 0.031 for s in sigmas) and max(sigmas) - min(sigmas) > 1e-3


def test_camera_response_gamma_and_clip(small):
    x = torch.full((1, 3, 64, 64), 0.25)
    with torch.no_grad():
        out = LensCamera(small, response="gamma", gamma=2.0).eval()(x)
        assert float(out[..., 32, 32].mean()) == pytest.approx(0.5, abs=1e-3)
        clipped = LensCamera(small, response="clip").eval()(x * 8)
        assert float(clipped.max()) <= 1.0
    with pytest.raises(ValueError, match="response"):
        LensCamera(small, response="log")


def test_gradient_reaches_every_learnable_coefficient(small):
    cam = LensCamera(small, init_coefficients_um=random_coefficients_um(small, 0.2))
    scene = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    (cam(scene) - scene).square().mean().backward()
    grad = torch.cat([cam.lens.coefficients.grad, cam.lens.defocus.grad])
    assert grad.shape == (small.num_terms,) and bool(torch.isfinite(grad).all())
    assert int((grad != 0).sum()) >= small.num_terms - 1  # piston Z1 has no effect
    groups = cam.lens.parameter_groups(lr=1e-3, defocus_lr=1e-5)
    assert [(len(g["params"][0]), g["lr"]) for g in groups] == [(54, 1e-3), (1, 1e-5)]


def test_cached_psf_follows_coefficient_updates(small):
    cam = LensCamera(small).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = cam(x)
        cam.lens.defocus += 1.0  # in-place change, as an optimiser step does
        after = cam(x)
    assert float((after - before).abs().max()) > 1e-3


def test_defocus_camera_learns_only_z4(small):
    cam = DefocusCamera(small, z4_init_um=-3.0)
    assert [p.numel() for p in cam.parameters() if p.numel()] == [1]
    assert float(cam.lens.coefficients_um().detach()[3]) == -3.0
    assert cam.psf().shape == (3, 64, 64)


def test_lowres_camera_is_an_exact_area_average():
    scene = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    cam = LowResCamera().eval()
    sensor = cam.sensor(scene)
    assert sensor.shape == (2, 3, 16, 16)
    assert torch.allclose(sensor[..., 2, 5], scene[..., 32:48, 80:96].mean(dim=(-2, -1)),
                          atol=1e-6)
    out = cam(scene)
    assert out.shape == scene.shape and cam.psf() is None
    nearest = LowResCamera(upsample_mode="nearest").eval()(scene)
    assert torch.allclose(nearest[..., 32:48, 80:96], sensor[..., 2:3, 5:6].expand(
        -1, -1, 16, 16), atol=1e-6)
    odd = LowResCamera(sensor_size=(6, 7)).eval()
    low = odd.sensor(scene[..., :100, :90])
    assert low.shape == (2, 3, 6, 7)
    assert float(low.mean()) == pytest.approx(float(scene[..., :100, :90].mean()), abs=1e-5)
    assert LowResCamera().sensor(torch.rand(1, 3, 128, 128)).shape[-2:] == (8, 8)
    with pytest.raises(ValueError, match="upsample_mode"):
        LowResCamera(upsample_mode="area")


def test_identity_camera():
    scene = torch.rand(2, 1, 16, 16)
    out = IdentityCamera()(scene)
    assert out.shape == (2, 3, 16, 16) and torch.equal(out[:, 1], scene[:, 0])
    assert IdentityCamera().psf().shape == (3, 1, 1)
