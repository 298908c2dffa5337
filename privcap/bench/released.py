"""The authors' released camera, by its algorithm: the baseline privcap is timed against.

The paper's authors released their camera (public repository
``carlosh93/privacy-preserving-vision``, folder ``Image_Caption/``). :class:`ReleasedCamera`
computes what it computes, step for step, in the same precision, so that both can be timed
in one run on one machine (written here from the description below, not copied):

1. **Dense Zernike basis**, built once: all ``J`` Noll terms sampled on the ``N x N`` lens grid
   (0 outside the unit disk), float32, ``J N^2`` floats (350 x 896 x 896: 1.1 GB). The
   released code builds it once with ``poppy`` and keeps it in a ``.npy`` file that later
   runs load; :func:`dense_zernike_volume` evaluates the same polynomials term by term
   (float64, stored as float32).
2. **Height**: the product of the ``J x 1 x 1`` coefficients with the basis, summed over the
   terms (a ``J x N x N`` temporary in the forward pass, and again in the backward pass),
   plus a uniform manufacturing noise of +-``height_tolerance_m`` drawn at every call.
3. **Pupil**: phase ``2 pi / lambda (n - 1) h`` in float64, its exponential stored as
   complex64, times the spherical wave ``exp(i k sqrt(r^2 + z_o^2))`` (complex64), times a
   hard-edged float64 aperture (``r < N/2 - 1`` samples), which promotes the field to
   complex128.
4. **Propagation**: zero padding by ``N/4`` on each side (``M = 3N/2``; 1344 for 896), 2-D
   FFT, product with the Fresnel transfer function ``exp(-i pi lambda z f^2)`` (complex64,
   promoted), inverse 2-D FFT -- in complex128 -- and the central ``N x N`` crop;
   ``|.|^2``, cast to float32.
5. **PSF resize** ``N -> K`` by area: nearest-neighbour upsampling by the least-common-
   multiple factor (896 -> 1792 for ``K`` = 256) and ``K``-fold average pooling (factor 7);
   each channel normalised to sum 1.
6. **Image**: zero padding of the ``B x C x H x W`` images to ``2H x 2W``, complex 2-D FFTs
   (complex64) of images and padded, ``ifftshift``-ed PSF, product, inverse FFT, ``abs``,
   crop of ``H - 1`` rows and columns and nearest-neighbour resize back to ``H x W``;
   the sensor image is divided by its maximum.

Everything is differentiable by torch autograd (the gradient reaches all ``J``
coefficients). Deliberate differences, none of which can make the baseline slower: the
constants the released code recomputes at every call (grids, spherical wave, aperture,
transfer function) are computed once here; tensors stay channels-first, without the
released code's permutations; the basis is sampled on privcap's grid (axis on sample
``N//2``, where the released ``poppy`` basis sits half a sample off the FFT grid, DESIGN
sec. 8) -- the same number of samples and terms.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from privcap.bench.workloads import bench_config, bench_images, bench_lens_coefficients_um
from privcap.optics import noll_to_nm
from privcap.optics.config import OpticsConfig
from privcap.optics.zernike_polynomials import unit_grid

__all__ = [
    "RELEASED_HEIGHT_TOLERANCE_M",
    "ReleasedCamera",
    "dense_zernike_volume",
    "memory_task",
    "released_padded_size",
    "released_resize_factor",
]

#: uniform height noise (metres) of the released camera's phase plate, drawn at every call
RELEASED_HEIGHT_TOLERANCE_M = 2e-8


def released_padded_size(grid_size: int) -> int:
    """Field size of the released propagation: ``N/4`` zeros on each side (1344 for 896)."""
    return grid_size + 2 * (grid_size // 4)


def released_resize_factor(grid_size: int, psf_size: int) -> int:
    """Upsampling factor of the released PSF resize: 1 when ``K`` divides ``N``, else
    ``lcm(N, K) / K`` capped at 10 (7 for 896 -> 256)."""
    if grid_size % psf_size == 0:
        return 1
    return min(10, math.lcm(grid_size, psf_size) // psf_size)


def _radial_coefficients(n: int, m: int) -> list[float]:
    """Coefficients of ``R_n^m(rho) = rho^m sum_i c_i (rho^2)^i``, highest power first: the
    textbook factorial sum (what the released code's basis library evaluates)."""
    half = (n - m) // 2
    return [
        (-1) ** k * math.factorial(n - k)
        / (math.factorial(k) * math.factorial((n + m) // 2 - k) * math.factorial(half - k))
        for k in range(half + 1)
    ]


def dense_zernike_volume(num_terms: int, grid_size: int) -> np.ndarray:
    """The dense basis ``Z_1 .. Z_J`` on the ``N x N`` lens grid, in metres of height per
    micrometre of coefficient (float32 numpy array, ``J x N x N``, 0 outside the unit disk).

    Each term is evaluated on the whole grid in float64 and stored as float32, as the
    released code's basis is: ``N_nm R_n^|m|(rho) cos(m theta)`` (``sin`` for ``m < 0``)
    with the radial polynomial from its factorial sum (Horner's rule in ``rho^2``) and the
    angular factor ``rho^|m| cos(m theta) = Re((x + i y)^|m|)``. The grid is privcap's
    (axis on sample ``N//2``, unit radius ``N/2`` samples).
    """
    if num_terms < 1 or grid_size < 2:
        raise ValueError(
            f"num_terms must be >= 1 and grid_size >= 2, got {num_terms} and {grid_size}"
        )
    u = unit_grid(grid_size)
    x, y = u[None, :], u[:, None]
    rho2 = x * x + y * y
    outside = rho2 > 1.0
    volume = np.empty((num_terms, grid_size, grid_size), dtype=np.float32)
    by_m: dict[int, list[int]] = {}
    for j in range(1, num_terms + 1):
        by_m.setdefault(abs(noll_to_nm(j)[1]), []).append(j)
    z = x + 1j * y
    power = np.ones((grid_size, grid_size), dtype=np.complex128)  # (x + i y)^|m|
    radial = np.empty((grid_size, grid_size))
    for am in range(max(by_m) + 1):  # terms grouped by |m|: one power alive at a time
        if am:
            power *= z
        for j in by_m.get(am, []):
            n, m = noll_to_nm(j)
            coefficients = _radial_coefficients(n, am)
            radial.fill(coefficients[0])
            for c in coefficients[1:]:  # Horner in rho^2
                radial *= rho2
                radial += c
            if m == 0:
                term = radial * math.sqrt(n + 1)
            else:
                term = radial * (power.real if m > 0 else power.imag)
                term *= math.sqrt(2 * (n + 1))
            term[outside] = 0.0
            term *= 1e-6
            volume[j - 1] = term
    return volume


class ReleasedCamera(nn.Module):
    """The released camera's algorithm (module docstring) for a privcap configuration.

    ``config`` gives the lens grid ``N``, pitch, distances, wavelengths and indices (R, G,
    B), number of terms ``J``, PSF size ``K``; ``coefficients_um`` the ``J`` Zernike
    coefficients (micrometres), all learnable; ``volume`` a basis from
    :func:`dense_zernike_volume` (built here when omitted). ``padded_size`` defaults to the
    released rule :func:`released_padded_size`; ``height_tolerance_m`` is the manufacturing
    noise (0 for a deterministic PSF).
    """

    def __init__(
        self,
        config: OpticsConfig,
        coefficients_um: torch.Tensor | np.ndarray,
        volume: torch.Tensor | np.ndarray | None = None,
        padded_size: int | None = None,
        height_tolerance_m: float = RELEASED_HEIGHT_TOLERANCE_M,
        seed: int = 0,
    ) -> None:
        super().__init__()
        n, terms, k = config.grid_size, config.num_terms, config.psf_size
        coefficients = torch.as_tensor(coefficients_um, dtype=torch.float32).detach().clone()
        if coefficients.shape != (terms,):
            raise ValueError(
                f"coefficients_um must have shape ({terms},), got {tuple(coefficients.shape)}"
            )
        if volume is None:
            volume = dense_zernike_volume(terms, n)
        volume = torch.as_tensor(volume)  # no copy of a float32 array
        if tuple(volume.shape) != (terms, n, n) or volume.dtype != torch.float32:
            raise ValueError(
                f"volume must be float32 of shape ({terms}, {n}, {n}), got "
                f"{volume.dtype} {tuple(volume.shape)}"
            )
        if height_tolerance_m < 0:
            raise ValueError(f"height_tolerance_m must be >= 0, got {height_tolerance_m}")
        m = released_padded_size(n) if padded_size is None else int(padded_size)
        if m < n:
            raise ValueError(f"padded_size must be >= grid_size ({n}), got {m}")
        self.config = config
        self.padded_size = m
        self.height_tolerance_m = float(height_tolerance_m)
        self.resize_factor = released_resize_factor(n, k)
        self.generator = torch.Generator().manual_seed(seed)
        #: the ``J x 1 x 1`` coefficients (um), as the released camera holds them
        self.coefficients = nn.Parameter(coefficients.reshape(terms, 1, 1))
        self.volume = volume  # a plain attribute: never copied by .to() / .double()

        lam = torch.tensor(config.wavelengths_m, dtype=torch.float64)
        index = torch.tensor(config.refractive_indices, dtype=torch.float64)
        self.phase_per_m = (2 * math.pi / lam * (index - 1))[:, None, None]  # float64
        x = (torch.arange(n, dtype=torch.float64) - n // 2) * config.pitch_m
        r2 = x[None, :] ** 2 + x[:, None] ** 2
        if math.isinf(config.object_distance_m):
            sphere = torch.zeros_like(r2)
        else:
            sphere = torch.sqrt(r2 + config.object_distance_m**2)
        phase = (2 * math.pi / lam)[:, None, None] * sphere
        self.spherical_wave = torch.complex(torch.cos(phase).float(), torch.sin(phase).float())
        radius = torch.sqrt(r2) / config.pitch_m
        self.aperture = (radius < n / 2 - 1).to(torch.float64)  # hard edge, float64
        f = torch.fft.fftfreq(m, d=config.pitch_m, dtype=torch.float64)
        f2 = f[None, :] ** 2 + f[:, None] ** 2
        transfer = -math.pi * lam[:, None, None] * config.sensor_distance_m * f2
        self.transfer = torch.complex(torch.cos(transfer).float(), torch.sin(transfer).float())

    def resize_text(self) -> str:
        """How the PSF is resized, in words (for the benchmark's notes)."""
        n, k = self.config.grid_size, self.config.psf_size
        if self.resize_factor > 1:
            return (f"{n} -> {k}: nearest-neighbour upsampling to {self.resize_factor * k}, "
                    f"{self.resize_factor}-fold average pooling")
        return f"{n} -> {k}: {n // k}-fold average pooling"

    def height_m(self) -> torch.Tensor:
        """``sum_j alpha_j Z_j`` (float32, metres) plus the manufacturing noise."""
        height = torch.sum(self.coefficients * self.volume, dim=0)
        if self.height_tolerance_m > 0:
            noise = torch.rand(height.shape, generator=self.generator, dtype=height.dtype)
            height = height + (noise * 2 - 1) * self.height_tolerance_m
        return height

    def psf(self) -> torch.Tensor:
        """``C x K x K`` PSF (float32, each channel summing to 1), differentiable."""
        n, m = self.config.grid_size, self.padded_size
        phase = self.phase_per_m * self.height_m()  # float64, C x N x N
        plate = torch.complex(torch.cos(phase).float(), torch.sin(phase).float())
        field = plate * self.spherical_wave * self.aperture  # complex64 x float64: complex128
        pad = (m - n) // 2
        padded = F.pad(field, (pad, m - n - pad, pad, m - n - pad))
        sensor = torch.fft.ifft2(torch.fft.fft2(padded) * self.transfer)
        intensity = sensor[:, pad : pad + n, pad : pad + n].abs().square().float()
        factor, k = self.resize_factor, self.config.psf_size
        if factor > 1:  # nearest upsampling to factor K, then factor-fold average pooling
            intensity = F.interpolate(intensity[None], size=(factor * k, factor * k),
                                      mode="nearest")[0]
        else:  # K divides N: pooling alone
            factor = n // k
        psf = F.avg_pool2d(intensity[None], factor)[0]
        return psf / psf.sum(dim=(-2, -1), keepdim=True)

    @staticmethod
    def convolve(images: torch.Tensor, psf: torch.Tensor) -> torch.Tensor:
        """The released image formation: complex-FFT convolution of ``B x C x H x W`` images
        (zero padded to ``2H x 2W``) with the ``C x K x K`` PSF, ``abs``, crop and resize."""
        h, w = images.shape[-2:]
        if h != w or psf.shape[-1] != psf.shape[-2] or psf.shape[-1] > 2 * h:
            raise ValueError(
                f"the released convolution takes square images and a square PSF of at most "
                f"twice their size, got images {tuple(images.shape)} and psf "
                f"{tuple(psf.shape)}"
            )
        top = math.ceil(h / 2)  # padding to 2H: the extra row (odd H) goes on top
        bottom = h - top
        spectrum = torch.fft.fft2(F.pad(images, (top, bottom, top, bottom)))  # complex64
        gap = 2 * h - psf.shape[-1]  # kernel padding: odd gap, extra row on top; even gap,
        before = math.ceil(gap / 2) if gap % 2 else gap // 2 + 1  # two more rows on top
        kernel = F.pad(psf, (before, gap - before, before, gap - before))
        otf = torch.fft.fft2(torch.fft.ifftshift(kernel, dim=(-2, -1)).to(torch.complex64))
        full = torch.fft.ifft2(spectrum * otf).abs()
        crop = full[..., top + 1 : 2 * h - bottom, top + 1 : 2 * h - bottom]  # H - 1 pixels
        return F.interpolate(crop, size=(h, w), mode="nearest")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Sensor image of ``B x C x H x W`` images (divided by its maximum)."""
        sensor = self.convolve(images, self.psf())
        return sensor / sensor.max()


def memory_task(
    geometry: str, workload: str, batch: int, image_size: int, volume_path: str | None = None
) -> dict[str, Any]:
    """Work of the memory probe (:func:`privcap.bench.memory.peak_rss_in_subprocess`) for
    the released camera on the named geometry (:func:`privcap.bench.workloads.bench_config`):
    load its basis from ``volume_path`` (``.npy``, as the released code does after its first
    run) or build it, then PSF forward + backward (``workload="psf"``) or the camera's
    forward + backward on ``batch x 3 x image_size^2`` images (``"camera"``, PSF
    included)."""
    if workload not in ("psf", "camera"):
        raise ValueError(f"workload must be 'psf' or 'camera', got {workload!r}")
    config = bench_config(geometry)
    if volume_path is not None:
        volume = np.load(volume_path)
    else:
        volume = dense_zernike_volume(config.num_terms, config.grid_size)
    camera = ReleasedCamera(config, bench_lens_coefficients_um(config), volume=volume)
    out = camera.psf() if workload == "psf" else camera(bench_images(batch, image_size))
    (out * torch.rand_like(out)).sum().backward()
    return {"output_shape": list(out.shape), "volume_bytes": int(volume.nbytes)}
