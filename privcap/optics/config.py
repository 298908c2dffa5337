"""Geometry and sampling of the optical encoder (DESIGN sec. 2), as one frozen dataclass.

:meth:`OpticsConfig.full` holds the paper camera (the authors' released configuration);
:meth:`OpticsConfig.quick` the same camera scaled down for CPU work. Every length carries its
unit in its name; wavelengths and refractive indices are listed in the image channel order
R, G, B (the released code lists them B, G, R -- a trap, DESIGN sec. 8).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from privcap.optics.analytic import focus_z4_um
from privcap.optics.propagation import (
    PROPAGATION_METHODS,
    check_fresnel_sampling,
    min_padded_size,
)
from privcap.profiles import PROFILES, check_profile

__all__ = ["OpticsConfig", "optics_config", "PROFILES"]


@dataclass(frozen=True)
class OpticsConfig:
    """Everything the lens, the PSF (Eq. 1) and the cameras (Eq. 2) need to know.

    Lens grid and propagation
        ``grid_size`` samples across the lens at ``pitch_m``; the circular aperture fills the
        grid (diameter ``grid_size * pitch_m``). The field is zero padded to ``padded_size``
        samples before the Fresnel propagation over ``sensor_distance_m`` (``None``: the
        smallest FFT-friendly size that is at least ``pad_factor * grid_size`` and satisfies
        the transfer-function sampling ``pitch >= lambda z / (padded_size pitch)`` for every
        wavelength). ``propagation`` is ``"fresnel"`` (paper Eq. 1) or ``"angular_spectrum"``.
    Scene
        A point source ``object_distance_m`` in front of the lens (``math.inf``: plane wave).
    Colour
        ``wavelengths_m`` and ``refractive_indices`` of the lens material, in R, G, B order.
    Lens
        ``num_terms`` Noll terms (coefficients in micrometres of surface height);
        ``z4_init_um`` is the starting defocus term; Noll terms ``>= bounded_from_noll`` are
        kept within ``+-coefficient_bound_um`` (``None``: unbounded).
    Sensor
        The PSF is integrated over ``psf_size x psf_size`` square pixels of
        ``psf_pitch_m`` (``None``: the lens window ``grid_size * pitch_m`` split into
        ``psf_size`` pixels). Scenes are ``image_size`` pixels square.
    Camera
        Read-noise standard deviation drawn per batch uniformly in ``noise_sigma_range``
        (images in [0, 1]); ``psf_radius_px`` is the disk radius of L_H (Eqs. 8-9);
        ``lowres_factor`` the area-downsampling factor of the low-resolution baseline.
    """

    grid_size: int = 896
    pitch_m: float = 3e-6
    sensor_distance_m: float = 25e-3
    object_distance_m: float = 0.5
    wavelengths_m: tuple[float, ...] = (640e-9, 550e-9, 460e-9)
    refractive_indices: tuple[float, ...] = (1.488, 1.493, 1.499)
    num_terms: int = 350
    z4_init_um: float = -22.0
    coefficient_bound_um: float | None = 1.0
    bounded_from_noll: int = 5
    psf_size: int = 256
    psf_pitch_m: float | None = None
    image_size: int = 256
    propagation: str = "fresnel"
    pad_factor: float = 2.0
    padded_size: int | None = None
    noise_sigma_range: tuple[float, float] = (0.001, 0.02)
    psf_radius_px: float = 32.0
    lowres_factor: int = 16

    def __post_init__(self) -> None:
        def positive(name: str, value: float) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")

        for name in ("grid_size", "psf_size", "image_size", "num_terms", "lowres_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.grid_size < 4:
            raise ValueError(f"grid_size must be >= 4, got {self.grid_size}")
        positive("pitch_m", self.pitch_m)
        positive("sensor_distance_m", self.sensor_distance_m)
        positive("pad_factor", self.pad_factor)
        positive("psf_radius_px", self.psf_radius_px)
        if not (self.object_distance_m == math.inf or self.object_distance_m > 0):
            raise ValueError(
                f"object_distance_m must be > 0 or math.inf, got {self.object_distance_m!r}"
            )
        if self.psf_pitch_m is not None:
            positive("psf_pitch_m", self.psf_pitch_m)
        object.__setattr__(self, "wavelengths_m", tuple(float(w) for w in self.wavelengths_m))
        object.__setattr__(
            self, "refractive_indices", tuple(float(n) for n in self.refractive_indices)
        )
        if not self.wavelengths_m:
            raise ValueError("wavelengths_m must list at least one wavelength")
        for w in self.wavelengths_m:
            if not (math.isfinite(w) and 100e-9 <= w <= 20e-6):
                raise ValueError(f"wavelengths_m must be in metres (1e-7 .. 2e-5), got {w!r}")
        if len(self.refractive_indices) != len(self.wavelengths_m):
            raise ValueError(
                f"refractive_indices must have one entry per wavelength "
                f"({len(self.wavelengths_m)}), got {self.refractive_indices!r}"
            )
        for n in self.refractive_indices:
            if not (math.isfinite(n) and n > 1.0):
                raise ValueError(f"refractive_indices must be > 1, got {n!r}")
        if self.propagation not in PROPAGATION_METHODS:
            raise ValueError(
                f"propagation must be one of {PROPAGATION_METHODS}, got {self.propagation!r}"
            )
        if self.coefficient_bound_um is not None:
            positive("coefficient_bound_um", self.coefficient_bound_um)
        lo, hi = self.noise_sigma_range
        if not (0.0 <= lo <= hi and math.isfinite(hi)):
            raise ValueError(
                f"noise_sigma_range must be (low, high) with 0 <= low <= high, "
                f"got {self.noise_sigma_range!r}"
            )
        if self.padded_size is not None:
            if self.padded_size < self.grid_size:
                raise ValueError(
                    f"padded_size must be >= grid_size ({self.grid_size}), "
                    f"got {self.padded_size}"
                )
            if self.propagation == "fresnel":
                for w in self.wavelengths_m:
                    check_fresnel_sampling(
                        self.pitch_m, w, self.sensor_distance_m, self.padded_size
                    )

    # ------------------------------------------------------------------ derived values
    @property
    def aperture_radius_m(self) -> float:
        """Radius of the circular aperture, ``grid_size * pitch_m / 2``."""
        return self.grid_size * self.pitch_m / 2

    @property
    def f_number(self) -> float:
        """Working f-number ``sensor_distance / aperture diameter``."""
        return self.sensor_distance_m / (2 * self.aperture_radius_m)

    @property
    def sensor_pitch_m(self) -> float:
        """Pixel pitch of the sensor-sampled PSF."""
        if self.psf_pitch_m is not None:
            return self.psf_pitch_m
        return self.grid_size * self.pitch_m / self.psf_size

    @property
    def fft_size(self) -> int:
        """Size of the zero-padded propagation grid (see the class docstring)."""
        if self.padded_size is not None:
            return self.padded_size
        return min_padded_size(
            self.grid_size,
            self.pitch_m,
            self.wavelengths_m,
            self.sensor_distance_m,
            pad_factor=self.pad_factor,
            method=self.propagation,
        )

    def focus_z4_um(self) -> tuple[float, ...]:
        """Analytic Z4 (um) that focuses each wavelength on the sensor (R, G, B order)."""
        return tuple(
            focus_z4_um(
                self.aperture_radius_m, self.sensor_distance_m, self.object_distance_m, n
            )
            for n in self.refractive_indices
        )

    def replace(self, **changes: object) -> OpticsConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ profiles
    @classmethod
    def full(cls) -> OpticsConfig:
        """The paper's camera (DESIGN sec. 2): 896 grid at 3 um, 25 mm, source at 0.5 m,
        640/550/460 nm with n = 1.488/1.493/1.499, 350 terms, Z4 = -22 um, PSF 896 -> 256,
        256-pixel images, Z5+ within +-1 um."""
        return cls()

    @classmethod
    def quick(cls) -> OpticsConfig:
        """The full camera scaled down by 2/7 for CPU work.

        Every length except the sample pitch and the wavelengths shrinks by 2/7 (grid
        896 -> 256 samples, sensor 25 -> 7.14 mm, source 0.5 -> 0.143 m): same f-number
        (9.3, so the same diffraction-limited spot of about 6 um), same magnification, same
        pitch (the lens phase stays well sampled), same transfer-function sampling margin.
        Fewer Zernike terms (55, radial orders <= 9), a 128-pixel PSF (6 um pixels) and
        128-pixel images; Z4 starts at the analytic focus for green (about -6.35 um).
        """
        scale = 256 / 896
        base = cls(
            grid_size=256,
            sensor_distance_m=25e-3 * scale,
            object_distance_m=0.5 * scale,
            num_terms=55,
            psf_size=128,
            image_size=128,
            psf_radius_px=16.0,
        )
        return base.replace(z4_init_um=round(base.focus_z4_um()[1], 2))


def optics_config(profile: str) -> OpticsConfig:
    """Optics of a data profile: ``"quick"`` and ``"coco-mini"`` use
    :meth:`OpticsConfig.quick`, ``"full"`` uses :meth:`OpticsConfig.full`."""
    if check_profile(profile) == "full":
        return OpticsConfig.full()
    return OpticsConfig.quick()
