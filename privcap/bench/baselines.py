"""Reference implementations that privcap's optics are timed against.

Each baseline computes what privcap computes (an RGB point-spread function from Zernike
coefficients, paper Eq. 1, or the sensor image of Eq. 2) with another published library
or the textbook operation, on a geometry described by :class:`PSFGeometry`:

- :class:`DeepinvPSF` -- ``deepinv.physics.generator.DiffractionBlurGenerator``
  (differentiable, torch): pupil ``exp(-2 pi i sum_k a_k Z_k)`` on a disk, one FFT
  (Fraunhofer), ``|.|^2``, central crop. It re-evaluates its Zernike basis at every call.
- :class:`PrysmPSF` -- prysm (numpy, not differentiable), with its basis built once,
  mirroring privcap's physics step by step: phase of the refractive lens and of the
  spherical wave (``Wavefront.from_amp_and_phase``), zero padding (``pad2d``), the Fresnel
  transfer function of prysm (2-D FFTs), integration over the sensor pixels.
- :func:`direct_conv2d` -- the sensor image by a spatial ``torch.nn.functional.conv2d``
  with zero padding, one kernel per colour channel.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PSFGeometry:
    """Sampling and physics of one RGB PSF computation (what every contender must match).

    Lengths in metres; ``refractive_indices`` and ``wavelengths_m`` in R, G, B order.
    """

    name: str
    grid_n: int  # lens samples across the square lens grid (the aperture fills it)
    pitch_m: float  # lens sample spacing
    fft_n: int  # field size after zero padding, for the propagation FFTs
    psf_n: int  # PSF kernel side K (sensor pixels)
    psf_pitch_m: float  # sensor pixel pitch of the PSF
    n_terms: int  # Zernike terms, Noll j = 1 .. n_terms
    wavelengths_m: tuple[float, ...]
    refractive_indices: tuple[float, ...]
    sensor_distance_m: float
    object_distance_m: float | None  # None: object at infinity (plane wave)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def aperture_radius_m(self) -> float:
        return self.grid_n * self.pitch_m / 2

    def describe(self) -> str:
        """One line with the sizes that set the cost."""
        return (
            f"{self.name}: {self.grid_n}x{self.grid_n} lens grid at "
            f"{self.pitch_m * 1e6:g} um, FFT {self.fft_n}x{self.fft_n}, {self.n_terms} Zernike "
            f"terms, {len(self.wavelengths_m)} wavelengths, PSF {self.psf_n}x{self.psf_n} at "
            f"{self.psf_pitch_m * 1e6:.3g} um"
        )


def _quiet_import(name: str) -> ModuleType:
    """Import a baseline library without its import-time notices (prysm warns that
    ``pkg_resources`` is deprecated; deepinv's tqdm warns in notebooks without widgets)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        return importlib.import_module(name)


# --------------------------------------------------------------------------- deepinv


class DeepinvPSF:
    """RGB PSF by deepinv's ``DiffractionBlurGenerator`` on a matching grid.

    The pupil grid is ``fft_n`` samples; the cut-off ``fc`` is chosen so that the disk of the
    shortest wavelength spans ``grid_n`` samples (as privcap's lens spans its unpadded grid)
    and shrinks as ``lambda_min / lambda`` for longer wavelengths (a fixed physical aperture
    on a fixed sensor grid). The PSF is the central ``psf_n x psf_n`` crop. ``n_terms`` may
    be lowered (``n_terms`` argument) where the full basis does not fit in memory: deepinv
    holds a ``channels x fft_n^2 x n_terms`` float tensor per call.
    """

    def __init__(self, geometry: PSFGeometry, n_terms: int | None = None, seed: int = 0):
        generators = _quiet_import("deepinv.physics.generator")
        DiffractionBlurGenerator = generators.DiffractionBlurGenerator  # noqa: N806

        self.geometry = geometry
        self.n_terms = int(n_terms or geometry.n_terms)
        lam = torch.tensor(geometry.wavelengths_m, dtype=torch.float64)
        fc_max = geometry.grid_n / (2 * geometry.fft_n)
        self.fc = (fc_max * lam.min() / lam).to(torch.float32)
        self.generator = DiffractionBlurGenerator(
            (geometry.psf_n, geometry.psf_n),
            zernike_index=tuple(range(1, self.n_terms + 1)),
            fc=self.fc,
            pupil_size=(geometry.fft_n, geometry.fft_n),
            index_convention="noll",
        )
        rng = torch.Generator().manual_seed(seed)
        channels = len(geometry.wavelengths_m)
        coeff = 0.05 * torch.randn(1, channels, self.n_terms, generator=rng)
        self.coeff = coeff.requires_grad_(True)

    def psf(self) -> torch.Tensor:
        """``C x K x K`` PSF (sums to one per channel)."""
        return self.generator.step(coeff=self.coeff)["filter"][0]


# --------------------------------------------------------------------------- prysm


def _box_resample_matrix(n_in: int, n_out: int, ratio: float) -> np.ndarray:
    """``n_out x n_in`` matrix integrating input samples over sensor pixels.

    Input sample ``k`` covers the cell ``[k - 1/2, k + 1/2)`` around its position; the
    optical axis is sample ``n_in // 2``. Output pixel ``i`` is ``ratio`` samples wide and
    pixel ``n_out // 2`` is centred on the axis (privcap's convention). Rows sum to
    ``ratio`` (area integration, energy kept).
    """
    axis = n_in // 2
    edges = axis + (np.arange(n_out + 1) - n_out // 2 - 0.5) * ratio  # in sample positions
    cell_lo = np.arange(n_in) - 0.5
    lo = np.clip(edges[:-1, None], cell_lo[None, :], cell_lo[None, :] + 1)
    hi = np.clip(edges[1:, None], cell_lo[None, :], cell_lo[None, :] + 1)
    return (hi - lo).astype(np.float32)


class PrysmPSF:
    """RGB PSF by prysm for the same lens (numpy, float32/complex64, not differentiable).

    ``coefficients_um`` are the Noll coefficients of the surface height (micrometres), as in
    privcap's lens. Construction evaluates the Zernike basis once (``zernike_nm_sequence``),
    the transfer functions (``angular_spectrum_transfer_function``, which is prysm's
    Fresnel transfer function ``exp(-i pi lambda z f^2)``) and the pixel-integration
    matrix; :meth:`psf` then does per wavelength what privcap does: surface height, complex
    pupil, zero padding, propagation, ``|.|^2``, sensor pixels, normalisation.
    """

    def __init__(self, geometry: PSFGeometry, coefficients_um: np.ndarray | torch.Tensor):
        coefficients = np.asarray(coefficients_um, dtype=np.float32)
        if coefficients.shape != (geometry.n_terms,):
            raise ValueError(
                f"coefficients_um must have shape ({geometry.n_terms},), got {coefficients.shape}"
            )
        _quiet_import("prysm")  # first import, without its deprecation notice
        from prysm.conf import config

        config.precision = 32
        self.geometry = geometry
        self.coefficients_um = coefficients
        self._setup()

    def _setup(self) -> None:
        from prysm.coordinates import cart_to_polar, make_xy_grid
        from prysm.geometry import circle
        from prysm.polynomials import noll_to_nm, zernike_nm_sequence
        from prysm.propagation import angular_spectrum_transfer_function

        g = self.geometry
        dx_mm = g.pitch_m * 1e3
        x, y = make_xy_grid(g.grid_n, dx=dx_mm)  # sample grid_n // 2 on the axis
        r, t = cart_to_polar(x, y)
        radius_mm = g.aperture_radius_m * 1e3
        self.aperture = circle(radius_mm, r).astype(np.float32)
        nms = [noll_to_nm(j) for j in range(1, g.n_terms + 1)]
        basis = np.asarray(list(zernike_nm_sequence(nms, r / radius_mm, t)), dtype=np.float32)
        self.basis = basis.reshape(g.n_terms, -1)
        r2_m2 = (r * 1e-3).astype(np.float64) ** 2
        if g.object_distance_m is None:
            sphere_m = np.zeros_like(r2_m2)
        else:
            sphere_m = np.sqrt(r2_m2 + g.object_distance_m**2) - g.object_distance_m
        self.sphere_nm = (sphere_m * 1e9).astype(np.float32)
        self.transfer = [
            angular_spectrum_transfer_function(
                g.fft_n, lam * 1e6, dx_mm, g.sensor_distance_m * 1e3
            ).astype(np.complex64)
            for lam in g.wavelengths_m
        ]
        self.resample = _box_resample_matrix(g.fft_n, g.psf_n, g.psf_pitch_m / g.pitch_m)

    def psf(self) -> np.ndarray:
        """``C x K x K`` PSF (sums to one per channel)."""
        from prysm.fttools import pad2d
        from prysm.propagation import Wavefront

        g = self.geometry
        height_nm = (self.coefficients_um @ self.basis).reshape(g.grid_n, g.grid_n) * 1e3
        out = np.empty((len(g.wavelengths_m), g.psf_n, g.psf_n), dtype=np.float32)
        for c, (lam, n_index) in enumerate(zip(g.wavelengths_m, g.refractive_indices, strict=True)):
            opd_nm = (n_index - 1) * height_nm + self.sphere_nm
            wf = Wavefront.from_amp_and_phase(self.aperture, opd_nm, lam * 1e6, g.pitch_m * 1e3)
            padded = Wavefront(  # the axis stays on sample fft_n // 2
                pad2d(wf.data, out_shape=(g.fft_n, g.fft_n)), wf.wavelength, wf.dx
            )
            sensor = padded.free_space(tf=self.transfer[c])  # ifft2(fft2(u) T)
            intensity = self.resample @ sensor.intensity.data @ self.resample.T
            out[c] = intensity / intensity.sum()
        return out


# --------------------------------------------------------------------------- direct conv


def direct_conv2d(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
    """Sensor image by spatial convolution: each channel of ``B x C x H x W`` images with
    the matching ``C x K x K`` PSF, zero padding, output ``H x W`` (the kernel's centre at
    index ``K // 2``), i.e. ``torch.nn.functional.conv2d`` with ``groups=C`` and the kernel
    flipped (conv2d correlates).
    """
    if images.ndim != 4 or psf.ndim != 3 or images.shape[1] != psf.shape[0]:
        raise ValueError(
            f"images must be B x C x H x W and psf C x K x K with equal C; got "
            f"{tuple(images.shape)} and {tuple(psf.shape)}"
        )
    k_h, k_w = psf.shape[-2:]
    weight = torch.flip(psf, dims=(-2, -1)).unsqueeze(1)
    # rows above the centre: K - 1 - K // 2 after flipping
    pad = (k_w - 1 - k_w // 2, k_w // 2, k_h - 1 - k_h // 2, k_h // 2)
    return F.conv2d(F.pad(images, pad), weight, groups=images.shape[1])


def conv_cost_macs(batch: int, channels: int, height: int, width: int, kernel: int) -> int:
    """Multiply-accumulates of one direct convolution (for the notes)."""
    return batch * channels * height * width * kernel * kernel


__all__ = [
    "DeepinvPSF",
    "PSFGeometry",
    "PrysmPSF",
    "conv_cost_macs",
    "direct_conv2d",
]
