"""RGB point-spread function of the lens (paper Eq. 1), sampled by the sensor pixels.

    H_lambda(x', y') = | F^-1{ F{ t_phi(x, y) U_lambda(x, y) } T_lambda(fx, fy) } |^2

* ``U_lambda``: the field just before the lens -- a spherical wave from an on-axis point at
  ``object_distance_m``, phase ``k (sqrt(r^2 + z_o^2) - z_o)`` (unit amplitude; its
  ``1/r`` fall-off over the aperture is ~1e-5 and ignored), or a unit plane wave for a
  point at infinity;
* ``t_phi``: the lens (:meth:`privcap.optics.lens.Lens.transmittance`);
* ``T_lambda``: the propagation over ``sensor_distance_m``
  (:class:`privcap.optics.propagation.Propagator`, Fresnel by default).

The intensity is computed on the lens sample grid (pitch ``dx``) over a window that covers
the sensor patch, integrated over the ``K x K`` sensor pixels
(:class:`privcap.optics.sensor.AreaResampler`) and normalised to sum 1 per wavelength.
Pixel ``K//2`` is centred on the optical axis, which is where an FFT convolution expects
the centre of a kernel (:func:`privcap.optics.convolution.fft_convolve`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from privcap.optics.aperture import grid_coordinates_m
from privcap.optics.config import OpticsConfig
from privcap.optics.lens import Lens
from privcap.optics.propagation import Propagator, SeparableGeometry, phasor
from privcap.optics.sensor import AreaResampler, pixel_edges

__all__ = ["FresnelPSF", "source_path_m"]


def source_path_m(
    grid_size: int, pitch_m: float, object_distance_m: float,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor | None:
    """Extra path ``sqrt(r^2 + z_o^2) - z_o`` (``N x N``, metres) of the spherical wave
    from an on-axis point at ``object_distance_m`` across the lens plane; its phase is ``2 pi /
    lambda`` times this. ``None`` for a plane wave (``math.inf``).

    Computed in float64 (a block of rows at a time) and returned as ``dtype``."""
    if math.isinf(object_distance_m):
        return None
    x = torch.from_numpy(grid_coordinates_m(grid_size, pitch_m))
    z = object_distance_m
    out = torch.empty(grid_size, grid_size, dtype=dtype)
    for a in range(0, grid_size, 128):
        r2 = x[None, :] ** 2 + x[a : a + 128, None] ** 2
        out[a : a + 128] = r2 / (torch.sqrt(r2 + z * z) + z)  # written without cancellation
    return out


def _resample_adjoint(resampler: AreaResampler, grad_pixels: torch.Tensor) -> torch.Tensor:
    """Adjoint of ``resampler`` for one channel: ``K x K`` -> ``W x W`` (no autograd)."""
    cols = resampler._integrate_adjoint(grad_pixels.transpose(-1, -2))  # (K_x, W_y)
    return resampler._integrate_adjoint(cols.transpose(-1, -2))  # (W_y, W_x)


def _phase_rows(height, scale, path, wavenumber, c):
    """Rows ``a:b`` of the pupil phase of wavelength ``c``: lens delay ``scale[c] h`` plus
    the incoming spherical wave ``wavenumber[c] path`` (``path`` None: plane wave). The one
    definition of the pupil phase, used by the training forward and by
    :meth:`FresnelPSF.pupil_phase`."""
    s, k = float(scale[c]), float(wavenumber[c])

    def rows(a: int, b: int) -> torch.Tensor:
        phase = height[a:b] * s
        return phase if path is None else torch.add(phase, path[a:b], alpha=k)

    return rows


class _FresnelIntensity(torch.autograd.Function):
    """Lens height (N x N, um) -> sensor intensity (C x W x W) through the separable Fresnel
    propagation, one wavelength and a few rows at a time; with a ``resampler``, each
    wavelength's intensity is integrated over the sensor pixels at once (C x K x K), so no
    ``C x W x W`` array exists in the forward or the backward pass.

    This is the forward that training differentiates and that the analytic checks of
    :mod:`privcap.optics.validation` run. The pupil phase of wavelength ``c`` is
    ``scale[c] h + wavenumber[c] path`` (lens delay plus incoming spherical wave), formed row
    chunk by row chunk and never stored. Only the height (the input) and the complex sensor
    field (one ``W x W`` array per wavelength) are kept for the backward pass, which runs the
    adjoint propagation: ``dL/du = 2 gI u``, ``dL/dg = P^H dL/du``,
    ``dL/dphi = Im(dL/dg conj(g))`` with ``g = A exp(i phi)``,
    ``dL/dh = sum_c scale[c] dL/dphi_c`` (``gI`` is the pixel gradient spread back by the
    adjoint of the resampler when there is one). Work arrays are borrowed from the
    geometry's pool for the duration of each pass (safe with several cameras, threads or
    graphs sharing one geometry).
    """

    @staticmethod
    def _field_rows(height, scale, path, wavenumber, amplitude, c):
        """Rows ``a:b`` of ``g = A exp(i phase)`` (one wavelength), formed on demand so that
        no full-size phase or field is ever stored."""
        phase_rows = _phase_rows(height, scale, path, wavenumber, c)

        def rows(a: int, b: int) -> torch.Tensor:
            return phasor(amplitude[a:b], phase_rows(a, b))

        return rows

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, height, scale, path, wavenumber, amplitude, t, geometry, resampler
    ):
        channels, size = scale.shape[0], geometry.size
        fields_t, out = [], []
        intensity = None  # one W x W buffer, reused by every wavelength when resampling
        scratch = torch.empty(geometry.n, size, dtype=t.dtype, device=height.device)
        with geometry.workspace(t.dtype, height.device) as work:
            for c in range(channels):
                rows = _FresnelIntensity._field_rows(height, scale, path, wavenumber,
                                                     amplitude, c)
                u_t = torch.empty(size, size, dtype=t.dtype, device=height.device)
                geometry.forward_t(rows, t[c], u_t, work, scratch)  # [x, y] order
                fields_t.append(u_t)
                if resampler is None or intensity is None:
                    intensity = torch.empty(size, size, dtype=height.dtype,
                                            device=height.device)
                for a in range(0, size, geometry.chunk_rows):  # |u|^2, no full-size temporary
                    b = min(a + geometry.chunk_rows, size)
                    intensity[:, a:b] = torch.view_as_real(u_t[a:b]).square().sum(-1).T
                out.append(intensity if resampler is None else resampler(intensity))
        del scratch, intensity
        ctx.save_for_backward(height, path, amplitude, t, *fields_t)
        ctx.scale, ctx.wavenumber = scale, wavenumber
        ctx.geometry, ctx.resampler = geometry, resampler
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        height, path, amplitude, t, *fields_t = ctx.saved_tensors
        geo, scale, wavenumber = ctx.geometry, ctx.scale, ctx.wavenumber
        grad_height = torch.zeros_like(height)
        scratch = torch.empty(geo.size, geo.n, dtype=t.dtype, device=height.device)
        with geo.workspace(t.dtype, height.device) as work:
            for c in range(scale.shape[0]):
                rows = _FresnelIntensity._field_rows(height, scale, path, wavenumber,
                                                     amplitude, c)
                grad_intensity = (
                    grad_out[c] if ctx.resampler is None
                    else _resample_adjoint(ctx.resampler, grad_out[c])
                )
                gi_t, u_t = grad_intensity.transpose(0, 1), fields_t[c]

                def grad_field_t(a: int, b: int, gi_t=gi_t, u_t=u_t) -> torch.Tensor:
                    return (2 * gi_t[a:b]) * u_t[a:b]

                # accumulates scale[c] Im(dL/dg conj(g)) into grad_height, chunk by chunk
                geo.adjoint_t(grad_field_t, t[c], grad_height, work, rows, float(scale[c]),
                              scratch)
                del grad_intensity, gi_t
        return grad_height, None, None, None, None, None, None, None


class FresnelPSF(nn.Module):
    """Maps a :class:`~privcap.optics.lens.Lens` to its sensor-sampled PSF, ``C x K x K``.

    The geometry comes from the :class:`~privcap.optics.config.OpticsConfig`: lens grid and
    pitch, distances, wavelengths, padding, PSF size ``K`` and pixel pitch.
    """

    def __init__(self, config: OpticsConfig) -> None:
        super().__init__()
        self.config = config
        n, dx = config.grid_size, config.pitch_m
        k = config.psf_size
        ratio = config.sensor_pitch_m / dx
        edges = pixel_edges(k, ratio)  # sensor pixel edges in lens samples from the axis
        first = math.floor(float(edges[0]) + 0.5 + 1e-9)  # fine sample holding the first edge
        last = math.ceil(float(edges[-1]) - 0.5 - 1e-9)
        window = last - first + 1
        self.propagator = Propagator(
            n,
            dx,
            config.wavelengths_m,
            config.sensor_distance_m,
            padded_size=config.fft_size,
            window_start=first,
            window_size=window,
            method=config.propagation,
        )
        # fine sample r covers [r - 1/2, r + 1/2); in the window's cell units an edge e
        # (in samples from the axis) sits at e - first + 1/2
        self.resampler = AreaResampler(edges - first + 0.5, window)
        path = source_path_m(n, dx, config.object_distance_m, dtype=torch.float32)
        self.register_buffer("source_path_m", path, persistent=False)
        self.register_buffer(
            "wavenumber_per_m",
            torch.tensor([2 * math.pi / w for w in config.wavelengths_m], dtype=torch.float64),
            persistent=False,
        )
        #: geometries of the extra windows of :meth:`window_intensity`, by (start, size)
        self._windows: dict[tuple[int, int], SeparableGeometry] = {}

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"grid={c.grid_size}, padded={self.propagator.padded_size}, "
            f"window={self.propagator.window_size}, psf={c.psf_size}, "
            f"sensor_pitch_um={c.sensor_pitch_m * 1e6:.3g}"
        )

    def _check_lens(self, lens: Lens) -> None:
        c, lc = self.config, lens.config
        if (lc.grid_size, lc.wavelengths_m) != (c.grid_size, c.wavelengths_m):
            raise ValueError(
                f"lens grid/wavelengths ({lc.grid_size}, {lc.wavelengths_m}) differ from "
                f"the PSF's ({c.grid_size}, {c.wavelengths_m})"
            )

    def pupil_phase(self, lens: Lens) -> torch.Tensor:
        """Phase of ``t_phi U`` in the lens plane: lens delay plus incoming spherical wave
        (real, ``C x N x N``; the rows the training forward forms chunk by chunk)."""
        height, scale, path = self._inputs(lens)
        n = self.config.grid_size
        return torch.stack([
            _phase_rows(height, scale, path, self.wavenumber_per_m, c)(0, n)
            for c in range(scale.shape[0])
        ])

    def pupil_field(self, lens: Lens) -> torch.Tensor:
        """``t_phi U`` in the lens plane (complex, ``C x N x N``)."""
        phase = self.pupil_phase(lens)
        return phasor(lens.aperture.to(phase.dtype), phase)

    def sensor_field(self, lens: Lens) -> torch.Tensor:
        """Complex field on the fine sensor window (``C x W x W``, lens-sample pitch), by the
        linear :class:`~privcap.optics.propagation.Propagator` (its ``|.|^2`` equals
        :meth:`fine_intensity`)."""
        return self.propagator(self.pupil_field(lens))

    def fine_intensity(self, lens: Lens) -> torch.Tensor:
        """``|U|^2`` on the fine window, in units of the incident intensity (not normalised).

        Sample ``k`` of each axis sits at ``self.propagator.positions_m[k]``.
        """
        return self._intensity(lens, None)

    def window_intensity(self, lens: Lens, window_start: int, window_size: int) -> torch.Tensor:
        """``|U|^2`` (units of the incident intensity, ``C x W x W``, differentiable) on the
        ``window_size`` lens samples from ``window_start`` samples off the axis, along each
        axis: the training forward (:class:`_FresnelIntensity`) on another window, for
        the analytic checks (a single on-axis sample, or a patch around it)."""
        if not 1 <= window_size <= self.propagator.padded_size:
            raise ValueError(
                f"window_size must be in 1 .. padded_size ({self.propagator.padded_size}), "
                f"got {window_size}"
            )
        key = (int(window_start), int(window_size))
        geometry = self._windows.get(key)
        if geometry is None:
            geometry = SeparableGeometry(self.config.grid_size, self.propagator.padded_size,
                                         *key)
            self._windows[key] = geometry
        return self._intensity(lens, None, geometry)

    def _inputs(self, lens: Lens) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Height (um, N x N), phase per um per wavelength (float64) and source path (m)."""
        self._check_lens(lens)
        height = lens.height_um()
        path = None if self.source_path_m is None else self.source_path_m.to(height.dtype)
        return height, lens.phase_per_um.double(), path

    def _intensity(
        self, lens: Lens, resampler: AreaResampler | None,
        geometry: SeparableGeometry | None = None,
    ) -> torch.Tensor:
        """``|U|^2`` on the fine window (or ``geometry``'s), integrated by ``resampler`` when
        one is given."""
        if self.propagator.method != "fresnel":
            if geometry is not None:
                raise ValueError("window_intensity needs the Fresnel propagation")
            fine = torch.view_as_real(self.sensor_field(lens)).square().sum(-1)
            return fine if resampler is None else resampler(fine)
        height, scale, path = self._inputs(lens)
        dtype = height.dtype
        t = self.propagator.transfer_factors(
            torch.complex128 if dtype == torch.float64 else torch.complex64, height.device
        )
        return _FresnelIntensity.apply(
            height, scale, path, self.wavenumber_per_m, lens.aperture.to(dtype), t,
            self.propagator.geometry if geometry is None else geometry, resampler,
        )

    def forward(self, lens: Lens) -> torch.Tensor:
        """The PSF integrated over the ``K x K`` sensor pixels, each channel summing to 1."""
        pixels = self._intensity(lens, self.resampler)  # resampled wavelength by wavelength
        return pixels / pixels.sum(dim=(-2, -1), keepdim=True)
