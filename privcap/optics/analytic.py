"""Closed-form results of scalar diffraction theory that the simulated optics must reproduce.

Used by the tests and by the first book chapter (their simulated counterparts live in
:mod:`privcap.optics.validation`). All functions work on numpy arrays or floats.

* Aberration-free circular pupil at focus (Airy pattern), f-number ``N``:
  ``I(r) / I(0) = [2 J1(v) / v]^2`` with ``v = pi r / (lambda N)``; first zero at
  ``r = 1.21967 lambda N``; encircled energy ``1 - J0(v)^2 - J1(v)^2`` (83.8 % inside the
  first zero).
* Pure defocus of ``a`` waves RMS (Noll ``Z4`` coefficient in waves): Strehl ratio
  ``sinc^2(2 sqrt(3) a)`` with ``sinc(x) = sin(pi x) / (pi x)``.
* On-axis intensity behind a circular aperture of radius ``a`` lit by a unit plane wave, at
  distance ``z`` (Fresnel number ``N_F = a^2 / (lambda z)``): ``4 sin^2(pi N_F / 2)``.
* The ``Z4`` height coefficient that focuses a point at ``z_o`` on a sensor at ``z``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "AIRY_FIRST_ZERO",
    "AIRY_ENERGY_IN_FIRST_ZERO",
    "airy_intensity",
    "airy_first_zero_m",
    "airy_encircled_energy",
    "defocus_strehl",
    "fresnel_number",
    "fresnel_on_axis_intensity",
    "focus_z4_um",
    "defocus_waves_to_z4_um",
]

#: first zero of J1 (3.8317059702...) divided by pi: the Airy radius in units of ``lambda N``
AIRY_FIRST_ZERO = 1.2196698912665045

#: energy fraction inside the first dark ring, ``1 - J0(3.8317...)^2`` (0.838)
AIRY_ENERGY_IN_FIRST_ZERO = 0.8377848691733143


def _airy_v(r_m: np.ndarray, wavelength_m: float, f_number: float) -> np.ndarray:
    return math.pi * np.asarray(r_m, dtype=np.float64) / (wavelength_m * f_number)


def airy_intensity(r_m: np.ndarray, wavelength_m: float, f_number: float) -> np.ndarray:
    """Airy pattern ``[2 J1(v) / v]^2`` (1 on axis) at radii ``r_m``."""
    from scipy import special  # imported here: scipy is heavy and rarely needed

    v = _airy_v(r_m, wavelength_m, f_number)
    safe = np.where(v == 0, 1.0, v)
    return np.where(v == 0, 1.0, (2 * special.j1(safe) / safe) ** 2)


def airy_first_zero_m(wavelength_m: float, f_number: float) -> float:
    """Radius of the first dark ring, ``1.21967 lambda N``."""
    return AIRY_FIRST_ZERO * wavelength_m * f_number


def airy_encircled_energy(r_m: np.ndarray, wavelength_m: float, f_number: float) -> np.ndarray:
    """Fraction of the Airy pattern's energy within radius ``r_m``: ``1 - J0^2 - J1^2``."""
    from scipy import special

    v = _airy_v(r_m, wavelength_m, f_number)
    return 1.0 - special.j0(v) ** 2 - special.j1(v) ** 2


def defocus_strehl(a_waves: np.ndarray) -> np.ndarray:
    """Strehl ratio of ``a`` waves RMS of pure defocus: ``sinc^2(2 sqrt(3) a)``.

    (The pupil phase is ``2 pi a sqrt(3) (2 rho^2 - 1)``; with ``u = rho^2`` uniform on
    [0, 1] the pupil average is exactly ``sinc(2 sqrt(3) a)``.)
    """
    return np.sinc(2 * math.sqrt(3) * np.asarray(a_waves, dtype=np.float64)) ** 2


def fresnel_number(radius_m: float, wavelength_m: float, distance_m: float) -> float:
    """``N_F = a^2 / (lambda z)``."""
    return radius_m**2 / (wavelength_m * distance_m)


def fresnel_on_axis_intensity(fresnel_numbers: np.ndarray) -> np.ndarray:
    """On-axis intensity behind a circular aperture (plane wave of intensity 1):
    ``4 sin^2(pi N_F / 2)``."""
    return 4 * np.sin(math.pi * np.asarray(fresnel_numbers, dtype=np.float64) / 2) ** 2


def focus_z4_um(
    radius_m: float, sensor_distance_m: float, object_distance_m: float, refractive_index: float
) -> float:
    """Noll ``Z4`` height coefficient (um) that images a point at ``object_distance_m`` on a
    sensor ``sensor_distance_m`` behind a thin lens of aperture radius ``radius_m``.

    ``Z4 = sqrt(3) (2 rho^2 - 1)``, so a coefficient ``alpha`` gives the quadratic phase
    ``(2 pi / lambda) (n - 1) 2 sqrt(3) alpha r^2 / R^2``; matching the paraxial thin lens
    ``-(pi / lambda) r^2 (1/z + 1/z_o)`` gives
    ``alpha = -R^2 (1/z + 1/z_o) / (4 sqrt(3) (n - 1))`` (independent of the wavelength
    except through ``n``; -21.9 / -22.2 / -22.4 um for B / G / R in the full profile).
    """
    vergence = 1.0 / sensor_distance_m + (0.0 if math.isinf(object_distance_m) else
                                           1.0 / object_distance_m)
    alpha_m = -(radius_m**2) * vergence / (4 * math.sqrt(3) * (refractive_index - 1.0))
    return alpha_m * 1e6


def defocus_waves_to_z4_um(a_waves: float, wavelength_m: float, refractive_index: float) -> float:
    """Height coefficient (um) of ``a`` waves RMS of defocus: ``a lambda / (n - 1)``."""
    return a_waves * wavelength_m / (refractive_index - 1.0) * 1e6
