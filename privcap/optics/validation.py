"""Simulated counterparts of the closed forms in :mod:`privcap.optics.analytic`.

Each function runs the camera's own forward -- a :class:`~privcap.optics.lens.Lens` seen
through :class:`~privcap.optics.psf.FresnelPSF`, i.e. the very ``_FresnelIntensity`` pass that
training differentiates -- on a geometry where the analytic answer is known, and returns
plain numbers (and arrays for plots). Only the output window differs from training (a
single on-axis sample, or a patch around the axis, instead of the sensor window:
:meth:`~privcap.optics.psf.FresnelPSF.window_intensity`), so a check that passes vouches
for the camera that learns. The tests assert them; the first book chapter plots them beside
the theory and stores them with :func:`run_optics_validation`.

Geometries. The Airy and defocus checks use a single wavelength, a plane wave and a lens
whose Z4 focuses it on the sensor (a quadratic phase is a perfect thin lens in the Fresnel
approximation, so the focal field is the Fraunhofer pattern of the aperture). The sensor
distance is chosen so that the first dark ring spans ``zero_samples`` lens samples, which
resolves the pattern on the lens-sample grid. The on-axis Fresnel check uses no lens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from privcap.optics import analytic
from privcap.optics.config import OpticsConfig
from privcap.optics.lens import Lens
from privcap.optics.psf import FresnelPSF

__all__ = [
    "focused_config",
    "simulate_airy",
    "simulate_defocus_strehl",
    "simulate_on_axis_intensity",
    "simulate_best_focus_z4",
    "run_optics_validation",
    "AiryResult",
]


def focused_config(
    wavelength_m: float = 550e-9,
    grid_size: int = 128,
    pitch_m: float = 3e-6,
    zero_samples: float = 12.0,
    refractive_index: float = 1.5,
) -> OpticsConfig:
    """One-wavelength geometry (plane wave) whose Airy first zero spans ``zero_samples``
    lens samples: ``z = zero_samples dx D / (1.21967 lambda)``; Z4 focuses it."""
    diameter = grid_size * pitch_m
    distance = zero_samples * pitch_m * diameter / (analytic.AIRY_FIRST_ZERO * wavelength_m)
    base = OpticsConfig(
        grid_size=grid_size,
        pitch_m=pitch_m,
        sensor_distance_m=distance,
        object_distance_m=math.inf,
        wavelengths_m=(wavelength_m,),
        refractive_indices=(refractive_index,),
        num_terms=4,
        psf_size=grid_size // 4,
        image_size=grid_size // 4,
        coefficient_bound_um=None,
    )
    return base.replace(z4_init_um=base.focus_z4_um()[0])


def _z4_camera(config: OpticsConfig) -> tuple[Lens, FresnelPSF]:
    """A frozen lens (coefficients set per evaluation) and the PSF optics of ``config``."""
    return Lens(config, trainable="none"), FresnelPSF(config)


def _z4_intensity(
    camera: tuple[Lens, FresnelPSF], z4_um, window_start: int, window_size: int
) -> torch.Tensor:
    """Fine intensity ``S x C x W x W`` (units of the incident intensity) of the lens whose
    only term is Z4 = ``z4_um[s]`` (um), one lens after the other, by the training forward
    (:meth:`FresnelPSF.window_intensity` of a :class:`Lens`)."""
    lens, optics = camera
    coefficients = torch.zeros(lens.num_terms, dtype=torch.float64)
    out = []
    with torch.no_grad():
        for value in np.atleast_1d(np.asarray(z4_um, dtype=np.float64)):
            coefficients[3] = float(value)
            lens.set_coefficients_um(coefficients)
            out.append(optics.window_intensity(lens, window_start, window_size))
    return torch.stack(out)


def _channel_config(config: OpticsConfig, channel: int) -> OpticsConfig:
    """The single-wavelength camera of one channel of ``config`` (same padded grid)."""
    return config.replace(
        wavelengths_m=(config.wavelengths_m[channel],),
        refractive_indices=(config.refractive_indices[channel],),
        padded_size=config.fft_size,
    )


@dataclass
class AiryResult:
    """Simulated in-focus pattern of an aberration-free circular pupil."""

    wavelength_m: float
    f_number: float
    first_zero_m: float  # simulated (sub-sample minimum of the profile along x)
    first_zero_analytic_m: float
    encircled_energy: float  # simulated energy fraction inside the analytic first zero
    encircled_energy_analytic: float
    radius_m: np.ndarray  # profile along x through the axis (r >= 0)
    profile: np.ndarray  # normalised to 1 on axis
    ee_radius_m: np.ndarray
    ee_curve: np.ndarray  # simulated encircled energy vs radius


def _parabola_vertex(x: np.ndarray, y: np.ndarray) -> float:
    a, b, _ = np.polyfit(x, y, 2)
    return float(-b / (2 * a))


def _local_minimum(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Sub-sample minimum near sample ``k``: stationary point of a quartic through the five
    samples around it (a parabola through three is biased by the pattern's asymmetry)."""
    xs, ys = x[k - 2 : k + 3], y[k - 2 : k + 3]
    scale = xs[1] - xs[0]
    u = (xs - xs[2]) / scale
    roots = np.roots(np.polyder(np.polyfit(u, ys, 4)))
    roots = roots[np.abs(roots.imag) < 1e-9].real
    return float(xs[2] + scale * roots[np.argmin(np.abs(roots))])


def simulate_airy(config: OpticsConfig | None = None, half_width: int = 128) -> AiryResult:
    """Focused aberration-free pupil: first zero and encircled energy, simulated."""
    config = focused_config() if config is None else config
    lam = config.wavelengths_m[0]
    pitch = config.pitch_m
    z4 = [config.focus_z4_um()[0]]
    img = _z4_intensity(_z4_camera(config), z4, -half_width, 2 * half_width + 1)[0, 0]
    img = img.double().numpy()
    c = half_width
    profile = img[c, c:] / img[c, c]
    r = np.arange(profile.size) * pitch
    expected = analytic.airy_first_zero_m(lam, config.f_number)
    k = int(np.argmin(np.where((r > 0.7 * expected) & (r < 1.3 * expected), profile, np.inf)))
    first_zero = _local_minimum(r, profile, k)
    total = float((Lens(config).aperture.double() ** 2).sum())  # input energy (Parseval)
    yy, xx = np.mgrid[-c : c + 1, -c : c + 1] * pitch
    rr = np.hypot(xx, yy)
    ee_inside = float(img[rr <= expected].sum()) / total
    ee_radius = np.linspace(0, 4 * expected, 81)
    order = np.argsort(rr, axis=None)
    csum = np.cumsum(img.ravel()[order]) / total
    ee_curve = np.interp(ee_radius, rr.ravel()[order], csum)
    return AiryResult(
        wavelength_m=lam,
        f_number=config.f_number,
        first_zero_m=first_zero,
        first_zero_analytic_m=expected,
        encircled_energy=ee_inside,
        encircled_energy_analytic=float(analytic.airy_encircled_energy(expected, lam,
                                                                       config.f_number)),
        radius_m=r,
        profile=profile,
        ee_radius_m=ee_radius,
        ee_curve=ee_curve,
    )


def simulate_defocus_strehl(
    a_waves: np.ndarray, config: OpticsConfig | None = None
) -> np.ndarray:
    """Strehl ratio (on-axis intensity relative to focus) for ``a`` waves RMS of defocus
    added to the focusing Z4 (``a lambda / (n - 1)`` um of height)."""
    config = focused_config() if config is None else config
    lam, n = config.wavelengths_m[0], config.refractive_indices[0]
    focus = config.focus_z4_um()[0]
    a = np.atleast_1d(np.asarray(a_waves, dtype=np.float64))
    z4 = [focus] + [focus + analytic.defocus_waves_to_z4_um(v, lam, n) for v in a]
    axis = _z4_intensity(_z4_camera(config), z4, 0, 1)[:, 0, 0, 0].double().numpy()
    return axis[1:] / axis[0]


def simulate_on_axis_intensity(
    fresnel_numbers: np.ndarray,
    grid_size: int = 256,
    pitch_m: float = 3e-6,
    wavelength_m: float = 550e-9,
) -> np.ndarray:
    """On-axis intensity behind a bare circular aperture (radius ``grid_size / 2`` samples)
    lit by a unit plane wave, at the distances ``z = a^2 / (lambda N_F)``. The padding
    grows as ``1 / N_F`` to keep the transfer function sampled."""
    radius = grid_size * pitch_m / 2
    out = []
    for nf in np.atleast_1d(np.asarray(fresnel_numbers, dtype=np.float64)):
        distance = radius**2 / (wavelength_m * nf)
        config = OpticsConfig(
            grid_size=grid_size, pitch_m=pitch_m, sensor_distance_m=distance,
            object_distance_m=math.inf, wavelengths_m=(wavelength_m,),
            refractive_indices=(1.5,), num_terms=4, z4_init_um=0.0, psf_size=grid_size // 4,
            image_size=grid_size // 4,
        )
        value = _z4_intensity(_z4_camera(config), [0.0], 0, 1)
        out.append(float(value[0, 0, 0, 0]))
    return np.asarray(out)


def simulate_best_focus_z4(
    config: OpticsConfig, span_um: float | None = None, steps: int = 41
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z4 (um) that maximises the on-axis intensity of each channel, found by a scan.

    The scan covers ``z4_init_um +- span_um`` (default: 20 waves of defocus at the longest
    wavelength on each side), is refined around the best value of each channel and ends
    with a parabola through the top samples. Returns ``(best_um (C,), scan_um (S,),
    on_axis (S x C))`` of the coarse scan (for plots).
    """
    lam_max = max(config.wavelengths_m)
    n_min = min(config.refractive_indices)
    wave_um = lam_max / (n_min - 1) * 1e6  # Z4 height of one wave RMS of defocus
    if span_um is None:
        span_um = 20 * wave_um / math.sqrt(3) / 4
    channels = len(config.wavelengths_m)
    scan = np.linspace(config.z4_init_um - span_um, config.z4_init_um + span_um, steps)
    best = np.empty(channels)
    coarse = np.empty((steps, channels))
    for c in range(channels):  # each colour scanned by its own single-wavelength camera
        camera = _z4_camera(_channel_config(config, c))

        def on_axis(z4_um: np.ndarray, camera: tuple = camera) -> np.ndarray:
            return _z4_intensity(camera, z4_um, 0, 1)[:, 0, 0, 0].double().numpy()

        coarse[:, c] = on_axis(scan)
        value = scan[np.argmax(coarse[:, c])]
        step = scan[1] - scan[0]
        for _ in range(2):  # refine: 9 points over +-1 step, twice
            fine = value + np.linspace(-step, step, 9)
            value = fine[np.argmax(on_axis(fine))]
            step = step / 4
        fine = value + np.linspace(-2 * step, 2 * step, 5)
        best[c] = _parabola_vertex(fine, on_axis(fine))
    return best, scan, coarse


def run_optics_validation(
    config: OpticsConfig,
    strehl_waves: tuple[float, ...] = (0.05, 0.1, 0.2),
    fresnel_numbers: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0),
    check_config: OpticsConfig | None = None,
) -> dict:
    """The checks of DESIGN sec. 9 as one JSON-ready dict (numbers only).

    ``check_config`` is the single-wavelength geometry of the Airy and defocus checks
    (default :func:`focused_config`); the best-focus scan runs on ``config`` itself.
    """
    check_config = focused_config() if check_config is None else check_config
    airy = simulate_airy(check_config)
    strehl = simulate_defocus_strehl(np.asarray(strehl_waves), check_config)
    on_axis = simulate_on_axis_intensity(
        np.asarray(fresnel_numbers), wavelength_m=check_config.wavelengths_m[0]
    )
    best, _, _ = simulate_best_focus_z4(config)
    return {
        "config": {
            "grid_size": config.grid_size,
            "pitch_m": config.pitch_m,
            "sensor_distance_m": config.sensor_distance_m,
            "object_distance_m": (None if math.isinf(config.object_distance_m)
                                  else config.object_distance_m),
            "padded_size": config.fft_size,
            "f_number": config.f_number,
        },
        "airy": {
            "wavelength_m": airy.wavelength_m,
            "f_number": airy.f_number,
            "first_zero_m": airy.first_zero_m,
            "first_zero_analytic_m": airy.first_zero_analytic_m,
            "first_zero_over_lambda_n": airy.first_zero_m / (airy.wavelength_m * airy.f_number),
            "encircled_energy": airy.encircled_energy,
            "encircled_energy_analytic": airy.encircled_energy_analytic,
        },
        "defocus_strehl": {
            "a_waves": list(strehl_waves),
            "simulated": strehl.tolist(),
            "analytic": analytic.defocus_strehl(np.asarray(strehl_waves)).tolist(),
        },
        "fresnel_on_axis": {
            "fresnel_numbers": list(fresnel_numbers),
            "simulated": on_axis.tolist(),
            "analytic": analytic.fresnel_on_axis_intensity(np.asarray(fresnel_numbers)).tolist(),
        },
        "best_focus_z4_um": {
            "channels": ["R", "G", "B"][: len(config.wavelengths_m)],
            "simulated": best.tolist(),
            "analytic": list(config.focus_z4_um()),
        },
    }
