"""The lens (Zernike surface, bounds) and its RGB PSF (paper Eq. 1)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from privcap.optics import (
    FresnelPSF,
    Lens,
    LensCamera,
    OpticsConfig,
    optics_config,
    random_coefficients_um,
)
from privcap.optics.validation import simulate_best_focus_z4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick() -> OpticsConfig:
    return OpticsConfig.quick()


def test_full_profile_is_the_paper_camera():
    c = OpticsConfig.full()
    assert (c.grid_size, c.pitch_m, c.sensor_distance_m, c.object_distance_m) == (
        896, 3e-6, 25e-3, 0.5)
    assert c.wavelengths_m == (640e-9, 550e-9, 460e-9)  # R, G, B
    assert c.refractive_indices == (1.488, 1.493, 1.499)
    assert (c.num_terms, c.z4_init_um, c.psf_size, c.image_size) == (350, -22.0, 256, 256)
    assert c.coefficient_bound_um == 1.0 and c.bounded_from_noll == 5
    assert c.sensor_pitch_m == pytest.approx(10.5e-6)
    assert optics_config("full") == c
    assert optics_config("quick") == optics_config("coco-mini") == OpticsConfig.quick()
    with pytest.raises(ValueError, match="profile"):
        optics_config("huge")


def test_analytic_focus_of_the_full_camera():
    r, g, b = OpticsConfig.full().focus_z4_um()
    assert (round(b, 1), round(g, 1), round(r, 1)) == (-21.9, -22.2, -22.4)


def test_quick_profile_keeps_the_physics(quick):
    full = OpticsConfig.full()
    assert quick.f_number == pytest.approx(full.f_number)
    assert quick.pitch_m == full.pitch_m and quick.wavelengths_m == full.wavelengths_m
    # Z4 starts at the thin-lens focus of green, derived here from the quick geometry
    # (R = 128 x 3 um, z_s = 25 mm x 2/7, z_o = 0.5 m x 2/7, n = 1.493): 1/f = 1/z_o + 1/z_s;
    # the lens's optical path (n - 1) h must be -r^2 / (2 f), and the r^2 term of
    # alpha sqrt(3) (2 rho^2 - 1), rho = r / R, is 2 sqrt(3) alpha r^2 / R^2
    radius_m, z_s, z_o, n_green = 128 * 3e-6, 25e-3 * 2 / 7, 0.5 * 2 / 7, 1.493
    focal_m = 1 / (1 / z_o + 1 / z_s)
    alpha_um = -(radius_m**2) / (2 * focal_m) / (2 * math.sqrt(3) * (n_green - 1)) * 1e6
    assert alpha_um == pytest.approx(-6.346, abs=5e-4)
    assert quick.z4_init_um == round(alpha_um, 2) == -6.35
    for lam in quick.wavelengths_m:  # transfer-function sampling holds
        assert quick.fft_size * quick.pitch_m**2 >= lam * quick.sensor_distance_m


@pytest.mark.parametrize(
    "field,value",
    [("grid_size", 0), ("pitch_m", -1.0), ("sensor_distance_m", math.nan),
     ("object_distance_m", 0.0), ("num_terms", 0), ("propagation", "raytrace"),
     ("wavelengths_m", (550.0, 500.0, 400.0)), ("refractive_indices", (1.5, 1.5)),
     ("noise_sigma_range", (0.1, 0.0))],
)
def test_bad_config_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        OpticsConfig.quick().replace(**{field: value})


def test_psf_is_normalised_nonnegative_rgb(quick):
    lens = Lens(quick, init_coefficients_um=random_coefficients_um(quick, 0.3, seed=2))
    psf = FresnelPSF(quick)(lens).detach()
    assert psf.shape == (3, 128, 128)
    assert float(psf.min()) >= 0.0
    assert psf.sum(dim=(-2, -1)) == pytest.approx(torch.ones(3), abs=1e-5)


def test_focused_psf_is_centred_on_pixel_k_half(quick):
    focus = quick.focus_z4_um()
    for c in range(3):
        coeffs = torch.zeros(quick.num_terms, dtype=torch.float64)
        coeffs[3] = focus[c]
        psf = FresnelPSF(quick)(Lens(quick, init_coefficients_um=coeffs)).detach()[c]
        assert divmod(int(psf.argmax()), 128) == (64, 64)
        assert float(psf[64, 64]) > 0.25  # diffraction-limited spot of ~1 pixel
        assert torch.allclose(psf[64, 54:75], psf[64, 54:75].flip(0), atol=1e-5)


def test_tilt_moves_the_psf_by_the_prism_deviation(quick):
    """Z2 = 2 rho cos(theta): height slope 2 alpha / R, ray deviation (n - 1) times that."""
    alpha_um = 2.0
    coeffs = torch.zeros(quick.num_terms, dtype=torch.float64)
    coeffs[1], coeffs[3] = alpha_um, quick.z4_init_um
    psf = FresnelPSF(quick)(Lens(quick, init_coefficients_um=coeffs)).detach()[1]  # green
    idx = torch.arange(128, dtype=torch.float64) - 64
    col = float((psf.double().sum(0) * idx).sum())
    row = float((psf.double().sum(1) * idx).sum())
    deviation = (quick.refractive_indices[1] - 1) * 2 * alpha_um * 1e-6 / quick.aperture_radius_m
    expected_px = quick.sensor_distance_m * deviation / quick.sensor_pitch_m
    assert expected_px > 5
    assert col == pytest.approx(expected_px, rel=0.05)
    assert abs(row) < 0.05


def test_fresnel_and_angular_spectrum_psfs_agree(quick):
    lens = Lens(quick, init_coefficients_um=random_coefficients_um(quick, 0.3, seed=4))
    a = FresnelPSF(quick)(lens).detach()
    b = FresnelPSF(quick.replace(propagation="angular_spectrum"))(lens).detach()
    assert float((a - b).abs().sum(dim=(-2, -1)).max()) < 0.02  # L1 distance per channel


def test_best_focus_is_the_analytic_z4_in_the_full_geometry():
    """Scanning Z4 alone in the paper's geometry (896 grid, 25 mm, source at 0.5 m): the
    sharpest PSF of each channel (largest on-axis intensity) sits at the analytic Z4."""
    config = OpticsConfig.full().replace(num_terms=4)
    best, scan, on_axis = simulate_best_focus_z4(config)
    assert best == pytest.approx(config.focus_z4_um(), abs=1e-4)  # 3e-5 um in practice
    assert on_axis.shape == (scan.size, 3)
    assert len({round(float(v), 1) for v in best}) == 3  # chromatic: three distinct foci


def test_gradcheck_psf_wrt_every_coefficient():
    config = OpticsConfig(grid_size=16, sensor_distance_m=1e-3, object_distance_m=0.05,
                          num_terms=10, psf_size=8, image_size=8, z4_init_um=-0.2)
    camera = LensCamera(config, init_coefficients_um=random_coefficients_um(
        config, 0.2, seed=5, z4_um=-0.2)).double()

    class PSFOnly(nn.Module):
        def __init__(self, cam):
            super().__init__()
            self.cam = cam

        def forward(self):
            return self.cam.psf()

    model = PSFOnly(camera)
    start = camera.lens.coefficients_um().detach().clone().requires_grad_(True)
    assert start.numel() == 10

    def psf_of(coefficients):
        params = {"cam.lens.coefficients": torch.cat([coefficients[:3], coefficients[4:]]),
                  "cam.lens.defocus": coefficients[3:4]}
        return torch.func.functional_call(model, params, ())

    assert torch.autograd.gradcheck(psf_of, (start,), eps=1e-6, atol=1e-7, rtol=1e-4)


def test_gradients_finite_for_all_350_terms():
    config = OpticsConfig.full().replace(grid_size=128, psf_size=64, image_size=64,
                                         sensor_distance_m=25e-3 * 128 / 896,
                                         object_distance_m=0.5 * 128 / 896)
    camera = LensCamera(config, init_coefficients_um=random_coefficients_um(config, 0.1))
    psf = camera.psf()
    (psf * torch.rand_like(psf)).sum().backward()
    grad = torch.cat([camera.lens.coefficients.grad, camera.lens.defocus.grad])
    assert grad.shape == (350,) and bool(torch.isfinite(grad).all())
    assert int((grad != 0).sum()) > 300


def test_bounds_clamp_and_project(quick):
    init = torch.zeros(quick.num_terms, dtype=torch.float64)
    init[3], init[4], init[10] = -8.0, 2.5, -3.0
    lens = Lens(quick, init_coefficients_um=init)
    used = lens.coefficients_um().detach()
    assert float(used[3]) == -8.0  # Z4 unbounded
    assert (float(used[4]), float(used[10])) == (1.0, -1.0)  # Z5+ within +-1 um
    lens.project_()
    assert float(lens.coefficients.detach().abs()[3:].max()) == 1.0  # Z5.. (Z4 held apart)


def test_defocus_only_trainable(quick):
    lens = Lens(quick, trainable="z4", init_coefficients_um=random_coefficients_um(quick, 0.2))
    assert [p.numel() for p in lens.parameters() if p.numel()] == [1]
    (FresnelPSF(quick)(lens)[:, 64, 64]).sum().backward()
    assert lens.defocus.grad.shape == (1,) and float(lens.defocus.grad.abs()) > 0
    assert float(lens.coefficients_um().detach()[7]) == pytest.approx(
        float(random_coefficients_um(quick, 0.2)[7]))


def test_non_finite_coefficients_raise(quick):
    bad = torch.zeros(quick.num_terms)
    bad[6] = math.nan
    with pytest.raises(ValueError, match="finite"):
        Lens(quick, init_coefficients_um=bad)
    lens = Lens(quick)
    with pytest.raises(ValueError, match="finite"):
        lens.set_coefficients_um(bad)
    with torch.no_grad():
        lens.coefficients[4] = math.inf
    with pytest.raises(ValueError, match="coefficients must be finite"):
        FresnelPSF(quick)(lens)
    with pytest.raises(ValueError, match="trainable"):
        Lens(quick, trainable=[0])
