"""Eq. 2 and the baseline cameras, by hand: the order response-then-noise, the low-resolution
sensor's area average and bilinear upsampling, the set of compared cameras and the camera
defaults of the profiles.

Eq. 2: ``X_hat_l = S_l(H_lambda * X_l) + N_l`` -- the camera response ``S`` acts on the blurred
image and the read noise ``N`` is added after it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from privcap.optics import (
    DefocusCamera,
    IdentityCamera,
    LensCamera,
    LowResCamera,
    OpticsConfig,
    comparison_cameras,
    random_coefficients_um,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> OpticsConfig:
    """A 16-sample lens with an 8 x 8 PSF: enough for Eq. 2, computed in milliseconds."""
    return OpticsConfig(grid_size=16, sensor_distance_m=1e-3, object_distance_m=0.05,
                        num_terms=10, psf_size=8, image_size=8, z4_init_um=-0.2)


def tiny_camera(config: OpticsConfig, response: str, **kwargs) -> LensCamera:
    """A lens with tilt and coma: its PSF is not symmetric, so a flipped kernel shows."""
    coeffs = random_coefficients_um(config, 0.2, seed=5, z4_um=-0.2)
    coeffs[1] = 0.3
    return LensCamera(config, init_coefficients_um=coeffs, response=response, **kwargs).eval()


def convolve_by_hand(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """``out[b, c, i, j] = sum_{u, v} psf[c, u, v] images[b, c, i - (u - K//2), j - (v - K//2)]``
    with zeros outside the image (a linear, not circular, 'same'-size convolution)."""
    k = psf.shape[-1]
    height, width = images.shape[-2:]
    padded = F.pad(images, (k, k, k, k))
    out = torch.zeros_like(images)
    for u in range(k):
        for v in range(k):
            dy, dx = u - k // 2, v - k // 2
            window = padded[..., k - dy : k - dy + height, k - dx : k - dx + width]
            out += psf[:, u, v].view(1, -1, 1, 1) * window
    return out


# --------------------------------------------------------------------------- Eq. 2
@pytest.mark.parametrize("response", ["clip", "gamma"])
def test_sensor_image_is_response_of_the_blur_plus_noise(tiny, response):
    """Exact values with a seeded noise draw: S(H * X) + sigma n, n ~ N(0, 1) drawn once for
    the whole image batch (clip: S = clamp to [0, 1]; gamma 2: S = sqrt on values in (0, 1])."""
    cam = tiny_camera(tiny, response, gamma=2.0).double()
    psf = cam.psf().detach()
    assert float((psf - psf.flip(-1)).abs().max()) > 1e-3  # not mirror-symmetric
    gen = torch.Generator().manual_seed(1)
    if response == "clip":  # bright scene: much of H * X lies above 1
        scene = 0.5 + 1.5 * torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    else:  # a scene in [0.2, 1]: H * X in (0, 1], where the gamma curve needs no clamp
        scene = 0.2 + 0.8 * torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    blurred = convolve_by_hand(scene, psf)
    if response == "clip":
        assert float((blurred > 1).double().mean()) > 0.3
        response_of_blur = blurred.clamp(0.0, 1.0)
    else:
        assert 1e-3 < float(blurred.min()) and float(blurred.max()) <= 1.0
        response_of_blur = blurred.sqrt()
    sigma = 0.05
    with torch.no_grad():
        torch.manual_seed(123)
        out = cam(scene, noise_sigma=sigma)
    torch.manual_seed(123)
    noise = torch.randn(scene.shape, dtype=torch.float64)
    torch.testing.assert_close(out, response_of_blur + sigma * noise, rtol=0, atol=1e-10)


def test_noise_added_after_clipping_leaves_the_unit_interval(tiny):
    """Whatever the noise draw: with S = clip, S(H X) + N goes above 1 on a white scene and
    below 0 on a black one (S(H X + N) never could), with the noise's standard deviation."""
    cam = tiny_camera(tiny, "clip")
    white, black = torch.ones(4, 3, 16, 16), torch.zeros(4, 3, 16, 16)
    with torch.no_grad():
        centre = (..., slice(4, 12), slice(4, 12))  # H X = 1 exactly here for the white scene
        bright = cam(white, noise_sigma=0.1)[centre]
        dark = cam(black, noise_sigma=0.1)
    assert 0.3 < float((bright > 1.0).float().mean()) < 0.7
    assert 0.3 < float((dark < 0.0).float().mean()) < 0.7
    assert float((bright - 1.0).std()) == pytest.approx(0.1, rel=0.15)
    assert float(dark.std()) == pytest.approx(0.1, rel=0.1)


# --------------------------------------------------------------------------- low-res camera
def test_lowres_camera_by_hand_on_a_32_pixel_image():
    """Factor 16 (the paper camera's default): a 32 x 32 image becomes a 2 x 2 sensor, each
    pixel the plain mean of a 16 x 16 block; bilinear upsampling back with half-pixel centres
    (align_corners False): output pixel o samples s = (o + 0.5) / 16 - 0.5, clamped to
    [0, 1], between sensor pixels 0 and 1."""
    def value(c: int, i: int, j: int) -> float:
        return ((37 * i + 11 * j + 5 * c + i * j) % 17) / 17

    scene = torch.tensor([[[value(c, i, j) for j in range(32)] for i in range(32)]
                          for c in range(3)], dtype=torch.float64).unsqueeze(0)
    low = [[[sum(value(c, i, j) for i in range(16 * a, 16 * a + 16)
                 for j in range(16 * b, 16 * b + 16)) / 256 for b in range(2)]
            for a in range(2)] for c in range(3)]
    weight = [min(max((o + 0.5) / 16 - 0.5, 0.0), 1.0) for o in range(32)]
    up = [[[(1 - weight[y]) * (1 - weight[x]) * low[c][0][0]
            + (1 - weight[y]) * weight[x] * low[c][0][1]
            + weight[y] * (1 - weight[x]) * low[c][1][0]
            + weight[y] * weight[x] * low[c][1][1]
            for x in range(32)] for y in range(32)] for c in range(3)]

    cam = LowResCamera(config=OpticsConfig.full()).eval()
    assert cam.factor == 16 and cam.upsample_mode == "bilinear"
    sensor = cam.sensor(scene)
    assert sensor.shape == (1, 3, 2, 2)
    torch.testing.assert_close(sensor[0], torch.tensor(low, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(cam(scene)[0], torch.tensor(up, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    # the blocks differ, so an interpolating resize or a shifted grid would show
    assert len({round(v, 6) for c in low for row in c for v in row}) > 3


# --------------------------------------------------------------------------- compared cameras
def green_focus_z4_um(config: OpticsConfig) -> float:
    """Thin-lens focus for green, derived from the geometry: 1/f = 1/z_o + 1/z_s; the lens's
    optical path (n - 1) h must be -r^2 / (2 f), and the r^2 term of alpha sqrt(3)
    (2 rho^2 - 1), rho = r / R, is 2 sqrt(3) alpha r^2 / R^2."""
    radius = config.grid_size * config.pitch_m / 2
    focal = 1 / (1 / config.object_distance_m + 1 / config.sensor_distance_m)
    n_green = config.refractive_indices[1]
    return -(radius**2) / (2 * focal) / (2 * math.sqrt(3) * (n_green - 1)) * 1e6


def test_comparison_cameras_set_order_and_settings():
    config = OpticsConfig.quick()
    cams = comparison_cameras(config)
    assert list(cams) == ["no lens", "focused lens", "defocus lens", "random Zernike lens",
                          "low-res sensor"]
    assert all(not m.training for cam in cams.values() for m in cam.modules())  # eval mode
    assert type(cams["no lens"]) is IdentityCamera
    focus = green_focus_z4_um(config)
    assert focus == pytest.approx(-6.346, abs=5e-4)

    focused = cams["focused lens"]
    assert type(focused) is LensCamera
    expected = torch.zeros(config.num_terms)
    expected[3] = focus
    torch.testing.assert_close(focused.lens.coefficients_um().detach(), expected,
                               rtol=0, atol=1e-5)
    assert sum(p.numel() for p in focused.parameters()) == 0

    defocus = cams["defocus lens"]
    assert type(defocus) is DefocusCamera
    expected[3] = focus + 1.0  # 1 um of Z4 past the focus
    torch.testing.assert_close(defocus.lens.coefficients_um().detach(), expected,
                               rtol=0, atol=1e-5)
    assert [p.numel() for p in defocus.parameters() if p.numel()] == [1]

    random_lens = cams["random Zernike lens"]
    assert type(random_lens) is LensCamera
    coeffs = random_lens.lens.coefficients_um().detach()
    assert coeffs[:3].abs().max() == 0 and float(coeffs[3]) == pytest.approx(focus, abs=1e-5)
    assert 0.2 < float(coeffs[4:].abs().max()) <= 0.25  # scale 0.25 um
    torch.testing.assert_close(coeffs, random_coefficients_um(config, 0.25, seed=0,
                                                              z4_um=focus), rtol=0, atol=1e-6)

    for name in ("focused lens", "defocus lens", "random Zernike lens"):
        cam = cams[name]
        assert cam.config == config and cam.response.kind == "identity", name
        assert cam.noise_in_eval is False, name

    lowres = cams["low-res sensor"]
    assert type(lowres) is LowResCamera
    assert (lowres.factor, lowres.sensor_size, lowres.upsample_mode) == (16, None, "bilinear")
    assert lowres.sensor_shape(256, 256) == (16, 16) and lowres.sensor_shape(128, 128) == (8, 8)
    assert lowres.response.kind == "identity" and lowres.noise_sigma_range == (0.0, 0.0)


# --------------------------------------------------------------------------- profile defaults
def test_camera_defaults_of_the_full_profile():
    full = OpticsConfig.full()
    assert full.psf_radius_px == 32.0
    assert full.noise_sigma_range == (0.001, 0.02)
    assert full.lowres_factor == 16  # a 16 x 16 sensor for 256-pixel images (Table 1)
    assert full.image_size // full.lowres_factor == 16
    assert (full.propagation, full.pad_factor, full.padded_size, full.psf_pitch_m) == (
        "fresnel", 2.0, None, None)


def test_camera_defaults_of_the_quick_profile():
    quick = OpticsConfig.quick()
    assert (quick.grid_size, quick.pitch_m, quick.num_terms, quick.psf_size,
            quick.image_size) == (256, 3e-6, 55, 128, 128)
    assert quick.sensor_distance_m == pytest.approx(25e-3 * 2 / 7, rel=1e-12)
    assert quick.object_distance_m == pytest.approx(0.5 * 2 / 7, rel=1e-12)
    assert quick.psf_radius_px == 16.0  # the full camera's 32 px, at half the PSF size
    assert quick.noise_sigma_range == (0.001, 0.02)
    assert quick.lowres_factor == 16
    assert quick.z4_init_um == -6.35
    assert (quick.coefficient_bound_um, quick.bounded_from_noll) == (1.0, 5)
    assert quick.propagation == "fresnel"
    camera = LensCamera(quick)  # the camera takes its noise range from the profile
    assert camera.noise_sigma_range == (0.001, 0.02)
