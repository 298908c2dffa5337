"""Fresnel propagation against diffraction theory (DESIGN sec. 9) and its sampling rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from privcap.optics import OpticsConfig, Propagator, analytic, check_fresnel_sampling
from privcap.optics import psf as psf_module
from privcap.optics.propagation import fft_friendly_size, min_padded_size
from privcap.optics.validation import (
    focused_config,
    simulate_airy,
    simulate_best_focus_z4,
    simulate_defocus_strehl,
    simulate_on_axis_intensity,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_analytic_constants():
    from scipy import special

    assert analytic.AIRY_FIRST_ZERO == pytest.approx(special.jn_zeros(1, 1)[0] / math.pi, 1e-12)
    assert analytic.AIRY_ENERGY_IN_FIRST_ZERO == pytest.approx(0.838, abs=5e-4)
    assert analytic.defocus_strehl([0.05, 0.1, 0.2]) == pytest.approx(
        [0.9051, 0.6626, 0.1427], abs=5e-4
    )
    assert analytic.fresnel_on_axis_intensity([1, 2, 3]) == pytest.approx([4, 0, 4], abs=1e-12)


def test_airy_first_zero_and_encircled_energy():
    result = simulate_airy()
    lam_n = result.wavelength_m * result.f_number
    # as accurate as the sampling allows: 1.2200 and 0.842 against 1.21967 and 0.838
    assert result.first_zero_m / lam_n == pytest.approx(1.21967, abs=1e-3)
    assert result.encircled_energy == pytest.approx(analytic.AIRY_ENERGY_IN_FIRST_ZERO, abs=0.006)
    # the whole radial profile follows [2 J1(v) / v]^2 (lens samples 1/12 of the first zero)
    theory = analytic.airy_intensity(result.radius_m, result.wavelength_m, result.f_number)
    assert np.abs(result.profile[:40] - theory[:40]).max() < 0.01


@pytest.mark.parametrize("a_waves,expected", [(0.05, 0.9051), (0.1, 0.6626), (0.2, 0.1427)])
def test_pure_defocus_strehl(a_waves, expected):
    strehl = simulate_defocus_strehl(np.array([a_waves]))[0]
    assert strehl == pytest.approx(expected, abs=0.001)
    assert strehl == pytest.approx(float(analytic.defocus_strehl(a_waves)), abs=0.001)


def test_on_axis_fresnel_intensity():
    numbers = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    simulated = simulate_on_axis_intensity(numbers, grid_size=128)
    assert simulated == pytest.approx(4 * np.sin(np.pi * numbers / 2) ** 2, abs=0.03)


def test_checks_run_the_training_forward(monkeypatch):
    """The analytic checks go through ``_FresnelIntensity`` (the pass training
    differentiates): doubling its output doubles the simulated intensities, and every
    simulated lens is one call of it."""
    numbers = np.array([1.0, 1.5])
    honest = simulate_on_axis_intensity(numbers, grid_size=64)
    airy = simulate_airy(focused_config(grid_size=64), half_width=32)
    forward = psf_module._FresnelIntensity.forward
    calls: list[tuple[int, ...]] = []

    def doubled(ctx, *args):
        out = forward(ctx, *args)
        calls.append(tuple(out.shape))
        return 2 * out

    monkeypatch.setattr(psf_module._FresnelIntensity, "forward", staticmethod(doubled))
    assert simulate_on_axis_intensity(numbers, grid_size=64) == pytest.approx(2 * honest)
    assert calls == [(1, 1, 1)] * 2  # one lens per Fresnel number, one on-axis sample
    calls.clear()
    doubled_airy = simulate_airy(focused_config(grid_size=64), half_width=32)
    assert doubled_airy.encircled_energy == pytest.approx(2 * airy.encircled_energy)
    assert calls == [(1, 65, 65)]
    calls.clear()
    strehl = simulate_defocus_strehl(np.array([0.1]), focused_config(grid_size=64))
    assert len(calls) == 2 and strehl[0] == pytest.approx(0.6626, abs=0.01)  # ratio: unscaled
    calls.clear()
    config = OpticsConfig.quick().replace(grid_size=64, num_terms=4, psf_size=16,
                                          image_size=16)
    simulate_best_focus_z4(config, steps=5)
    assert len(calls) == 3 * (5 + 9 + 9 + 5)  # each colour scanned by its own lens


def test_sampling_condition_refused_with_numbers():
    # 550 nm over 25 mm at 3 um needs lambda z / dx^2 = 1528 samples
    with pytest.raises(ValueError, match=r"pitch_m = 3e-06.*padded_size >= 1528"):
        check_fresnel_sampling(3e-6, 550e-9, 25e-3, 1024)
    assert check_fresnel_sampling(3e-6, 550e-9, 25e-3, 1536)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not check_fresnel_sampling(3e-6, 550e-9, 25e-3, 1024, on_violation="warn")
    assert any("sampling violated" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="sampling"):
        Propagator(64, 3e-6, (550e-9,), 25e-3, padded_size=128)
    with pytest.raises(ValueError, match="sampling"):
        OpticsConfig.full().replace(padded_size=1024)


def test_padding_rule_of_the_profiles():
    assert OpticsConfig.full().fft_size == 1792  # red: 640 nm * 25 mm / (3 um)^2 = 1778
    assert OpticsConfig.quick().fft_size == 512
    assert min_padded_size(100, 3e-6, (550e-9,), 1e-3) == 200
    assert fft_friendly_size(1779) == 1792 and fft_friendly_size(11) == 12


def _random_field(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.complex(
        torch.randn(1, n, n, generator=gen, dtype=torch.float64),
        torch.randn(1, n, n, generator=gen, dtype=torch.float64),
    )


@pytest.mark.parametrize("start,size", [(-16, 32), (-40, 80), (5, 40)])
def test_propagator_backward_is_the_adjoint(start, size):
    prop = Propagator(32, 3e-6, (550e-9,), 2e-3, window_start=start, window_size=size)
    x = _random_field(32, 0)
    y = torch.complex(torch.randn(1, size, size, dtype=torch.float64),
                      torch.randn(1, size, size, dtype=torch.float64))
    x.requires_grad_(True)
    out = prop(x)
    # <P x, y> = <x, P^H y>: the gradient of Re<P x, y> with respect to x is P^H y
    (out.conj() * y).real.sum().backward()
    lhs = (out.detach().conj() * y).sum()
    rhs = (x.detach().conj() * x.grad).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_propagator_gradcheck_complex():
    prop = Propagator(8, 3e-6, (550e-9, 460e-9), 3e-4, window_start=-5, window_size=10)
    x = torch.complex(torch.randn(2, 8, 8, dtype=torch.float64),
                      torch.randn(2, 8, 8, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: prop(f), (x,))


def test_energy_conserved_over_the_padded_plane():
    config = focused_config(grid_size=64)
    m = config.fft_size
    prop = Propagator(64, config.pitch_m, config.wavelengths_m, config.sensor_distance_m,
                      window_start=-(m // 2), window_size=m)
    field = _random_field(64, 3)
    out = prop(field)
    assert float(out.abs().square().sum()) == pytest.approx(float(field.abs().square().sum()),
                                                            rel=1e-10)


def test_fresnel_agrees_with_angular_spectrum_in_paraxial_case():
    n, pitch, lam, z = 64, 3e-6, 550e-9, 2e-3
    fresnel = Propagator(n, pitch, (lam,), z, window_start=-48, window_size=96)
    exact = Propagator(n, pitch, (lam,), z, window_start=-48, window_size=96,
                       method="angular_spectrum")
    radius = torch.arange(n, dtype=torch.float64) - n // 2
    aperture = (torch.hypot(radius[None], radius[:, None]) <= 20).to(torch.complex128)[None]
    a, b = fresnel(aperture), exact(aperture)
    assert float((a - b).abs().norm() / b.abs().norm()) < 0.02


def test_no_wrap_around_in_the_padded_propagation():
    """A beam steered out of the right side of the window must not re-enter on the left
    (it would without zero padding: the FFT convolution is circular)."""
    n, pitch, lam, z = 64, 3e-6, 550e-9, 2e-3
    x = (torch.arange(n, dtype=torch.float64) - n // 2) * pitch
    shift_m = 20 * pitch  # the beam moves 20 samples to the right over z
    tilt = 2 * math.pi * shift_m / (z * lam) * x
    spot = torch.exp(-(((x - 24 * pitch) / (3 * pitch)) ** 2))
    beam = (torch.exp(-((x / (3 * pitch)) ** 2))[:, None] * spot[None, :]
            * torch.exp(1j * tilt)[None, :])[None]
    padded = Propagator(n, pitch, (lam,), z, window_start=-(n // 2), window_size=n)
    assert padded.padded_size >= 2 * n
    out = padded(beam).abs().square()[0]
    assert float(out[:, : n // 2].sum()) < 1e-6 * float(beam.abs().square().sum())
    circular = Propagator(n, pitch, (lam,), z, padded_size=n, window_start=-(n // 2),
                          window_size=n, on_violation="ignore")
    wrapped = circular(beam).abs().square()[0]
    assert float(wrapped[:, : n // 2].sum()) > 0.1 * float(beam.abs().square().sum())
