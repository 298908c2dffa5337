"""Free-space propagation from the lens to the sensor (the transfer function ``T`` of Eq. 1).

Fresnel transfer function (paper Eq. 1, Goodman sec. 4.2):
``T(fx, fy) = exp(-i pi lambda z (fx^2 + fy^2))`` (the constant ``exp(i k z)`` dropped), so
``U_z = F^-1{ F{U_0} T }``. Two facts make it cheap and safe here:

* **Zero padding and sampling.** The discrete transfer function is adequate only when the
  sample pitch satisfies ``dx >= lambda z / L``, with ``L = M dx`` the width of the padded
  field (Voelz & Roggemann 2009); otherwise the chirp of ``T`` aliases. The field is zero
  padded from ``N`` to ``M >= max(pad_factor N, lambda z / dx^2)`` samples, which also
  keeps the circular convolution of the FFT from wrapping light back into the window.
  :func:`check_fresnel_sampling` refuses (or warns about) a violation with the numbers.
* **Separability.** ``T`` factorises into ``exp(-i pi lambda z fx^2) exp(-i pi lambda z
  fy^2)``: the 2-D propagation is a 1-D propagation along the rows followed by one along the
  columns. Cropping to the output window between the two passes is exact (the second pass
  never mixes columns), so the cost is ``4 N`` FFTs of length ``M`` per wavelength instead
  of ``4 M`` for a padded 2-D FFT pair, and the largest array is ``N x M``. The operator is
  linear; its adjoint (used for the gradient) is the same computation with ``conj(T)``.

The angular spectrum ``H = exp(i 2 pi z (sqrt(1/lambda^2 - f^2) - 1/lambda))`` (exact scalar
diffraction, band limited as in Matsushima & Shimobaba 2009) is the alternative; it is not
separable and uses 2-D FFTs.

Grid convention (shared with the aperture and the Zernike grid): sample ``k`` of an
``N``-sample axis sits at ``(k - N//2) dx``; the padded grid keeps the field in its middle
and output windows are read at the same positions (modulo ``M``).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

__all__ = [
    "PROPAGATION_METHODS",
    "fft_friendly_size",
    "min_padded_size",
    "fresnel_sampling_margin",
    "check_fresnel_sampling",
    "fresnel_transfer_phase",
    "fresnel_transfer_function",
    "angular_spectrum_transfer_function",
    "Propagator",
    "SeparableGeometry",
    "WorkspacePool",
    "RowSource",
    "phasor",
]

#: propagation methods known to :class:`Propagator`
PROPAGATION_METHODS = ("fresnel", "angular_spectrum")


def fft_friendly_size(n: int, even: bool = True) -> int:
    """Smallest integer ``>= n`` whose prime factors are 2, 3, 5 and 7 (even if asked)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    m = int(n)
    while True:
        if not (even and m % 2):
            r = m
            for p in (2, 3, 5, 7):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1


def min_padded_size(
    grid_size: int,
    pitch_m: float,
    wavelengths_m: Sequence[float],
    distance_m: float,
    pad_factor: float = 2.0,
    method: str = "fresnel",
) -> int:
    """Smallest FFT-friendly padded size ``M >= pad_factor N`` that satisfies the Fresnel
    transfer-function sampling ``M >= lambda z / dx^2`` for every wavelength."""
    if method not in PROPAGATION_METHODS:
        raise ValueError(f"method must be one of {PROPAGATION_METHODS}, got {method!r}")
    need = math.ceil(pad_factor * grid_size - 1e-9)
    for w in wavelengths_m:
        need = max(need, math.ceil(w * distance_m / pitch_m**2 - 1e-9))
    return fft_friendly_size(need)


def fresnel_sampling_margin(
    pitch_m: float, wavelength_m: float, distance_m: float, padded_size: int
) -> float:
    """``dx / (lambda z / L)`` with ``L = padded_size dx``: the transfer function is
    adequately sampled when this is ``>= 1``."""
    return pitch_m / (wavelength_m * distance_m / (padded_size * pitch_m))


def check_fresnel_sampling(
    pitch_m: float,
    wavelength_m: float,
    distance_m: float,
    padded_size: int,
    on_violation: str = "raise",
) -> bool:
    """Check ``pitch >= lambda z / L`` (``L = padded_size * pitch``); return True when it holds.

    A violation raises ``ValueError`` (``on_violation="raise"``), warns (``"warn"``) or is
    only reported by the return value (``"ignore"``); the message gives the numbers.
    """
    if on_violation not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_violation must be raise/warn/ignore, got {on_violation!r}")
    limit_m = wavelength_m * distance_m / (padded_size * pitch_m)
    if pitch_m >= limit_m * (1 - 1e-9):
        return True
    message = (
        f"Fresnel transfer-function sampling violated: pitch_m = {pitch_m:.4g} m is smaller "
        f"than lambda z / L = {wavelength_m:.4g} m * {distance_m:.4g} m / "
        f"({padded_size} * {pitch_m:.4g} m) = {limit_m:.4g} m; use padded_size >= "
        f"{math.ceil(wavelength_m * distance_m / pitch_m**2)} (or a coarser pitch / a shorter "
        f"distance)"
    )
    if on_violation == "raise":
        raise ValueError(message)
    if on_violation == "warn":
        warnings.warn(message, stacklevel=2)
    return False


def _frequencies(padded_size: int, pitch_m: float) -> torch.Tensor:
    return torch.fft.fftfreq(padded_size, d=pitch_m, dtype=torch.float64)


def fresnel_transfer_phase(
    padded_size: int, pitch_m: float, wavelength_m: float, distance_m: float
) -> torch.Tensor:
    """Phase ``-pi lambda z f^2`` (float64, FFT frequency order) of the 1-D factor of ``T``."""
    f = _frequencies(padded_size, pitch_m)
    return -math.pi * wavelength_m * distance_m * f * f


def fresnel_transfer_function(
    padded_size: int, pitch_m: float, wavelength_m: float, distance_m: float
) -> torch.Tensor:
    """The 2-D Fresnel transfer function ``T(fx, fy)`` (complex128, FFT frequency order)."""
    phase = fresnel_transfer_phase(padded_size, pitch_m, wavelength_m, distance_m)
    return torch.polar(torch.ones(()), phase[:, None] + phase[None, :])


def angular_spectrum_transfer_function(
    padded_size: int, pitch_m: float, wavelength_m: float, distance_m: float,
    band_limit: bool = True,
) -> torch.Tensor:
    """Angular-spectrum transfer function (complex128, FFT order), ``exp(i k z)`` removed.

    Evanescent frequencies are set to 0; with ``band_limit`` the frequencies whose transfer
    phase is under-sampled by the padded grid are cut (Matsushima & Shimobaba 2009):
    ``|f| <= 1 / (lambda sqrt((2 df z)^2 + 1))`` per axis, ``df = 1 / (M dx)``.
    """
    f = _frequencies(padded_size, pitch_m)
    fx2 = (f * f)[None, :]
    fy2 = (f * f)[:, None]
    inv_l2 = 1.0 / wavelength_m**2
    arg = inv_l2 - fx2 - fy2
    propagating = arg > 0
    # sqrt(1/l^2 - f^2) - 1/l, written to avoid cancellation
    kz_minus_k = -(fx2 + fy2) / (torch.sqrt(arg.clamp(min=0)) + 1.0 / wavelength_m)
    phase = 2 * math.pi * distance_m * kz_minus_k
    keep = propagating
    if band_limit:
        df = 1.0 / (padded_size * pitch_m)
        f_lim = 1.0 / (wavelength_m * math.sqrt((2 * df * distance_m) ** 2 + 1))
        keep = keep & (fx2 <= f_lim**2) & (fy2 <= f_lim**2)
    return torch.polar(keep.to(torch.float64), torch.where(keep, phase, 0.0))


# ----------------------------------------------------------------------------- Fresnel
def phasor(amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``amplitude * exp(i phase)`` (like ``torch.polar``, several times faster on CPU)."""
    return torch.complex(amplitude * torch.cos(phase), amplitude * torch.sin(phase))


RowSource = Callable[[int, int], torch.Tensor]


class WorkspacePool:
    """Work arrays lent to one call at a time, kept for reuse afterwards.

    Each :meth:`borrow` hands out a set of ``count`` complex ``rows x M`` arrays (the
    zero-padded input rows of the FFTs) that no other call holds until it is given back, so
    concurrent users (two threads, two cameras whose passes interleave, the autograd
    engine's device threads) never write into each other's arrays. Returned sets are kept
    (at most ``max_free`` per dtype and device) and lent again, so steady-state training
    allocates no padded rows, and the memory stays one set per concurrent call. The lock
    guards only the free lists, never the FFTs.
    """

    def __init__(
        self, rows_cpu: int, rows_device: int, width: int, count: int = 1, max_free: int = 4
    ):
        self.rows_cpu = int(rows_cpu)
        self.rows_device = int(rows_device)
        self.width = int(width)
        self.count = int(count)
        self.max_free = int(max_free)
        self._lock = threading.Lock()
        self._free: dict[tuple[torch.dtype, torch.device], list[list[torch.Tensor]]] = {}
        self.allocated = 0  # sets allocated so far (for tests and curiosity)

    def _new(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        rows = self.rows_cpu if device.type == "cpu" else self.rows_device
        with self._lock:
            self.allocated += 1
        return [torch.empty(rows, self.width, dtype=dtype, device=device)
                for _ in range(self.count)]

    @contextmanager
    def borrow(self, dtype: torch.dtype, device: torch.device) -> Iterator[list[torch.Tensor]]:
        """The work arrays for the duration of the ``with`` block, held by this call alone."""
        key = (dtype, torch.device(device))
        with self._lock:
            free = self._free.get(key)
            work = free.pop() if free else None
        if work is None:
            work = self._new(dtype, key[1])
        try:
            yield work
        finally:
            with self._lock:
                free = self._free.setdefault(key, [])
                if len(free) < self.max_free:
                    free.append(work)

    def clear(self) -> None:
        """Drop the kept arrays (memory is returned when no call holds them any more)."""
        with self._lock:
            self._free.clear()

    # a lock can be neither pickled nor deep-copied: copies start with an empty pool
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"], state["_free"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._free = {}


class SeparableGeometry:
    """Index bookkeeping and row passes of the separable Fresnel propagation of ``N x N``
    fields onto a ``W x W`` window.

    The field sits at column ``offset`` of the zero-padded rows (length ``M``); the output
    window starts at padded index ``start`` (``index`` lists the padded indices of the
    window, used when the window wraps around the padded grid). On the CPU, rows are
    processed in chunks of ``chunk_rows`` through a zero-padded work array, so the padded
    arrays stay a few megabytes whatever ``N``; on an accelerator all rows go at once (fewer,
    larger kernels). The work arrays come from :attr:`pool` (:class:`WorkspacePool`): each
    call holds its own set while it runs and gives it back for reuse, so one geometry may
    serve several cameras, threads or autograd graphs at once.
    """

    def __init__(
        self,
        grid_size: int,
        padded_size: int,
        window_start: int,
        window_size: int,
        chunk_rows: int = 128,
    ):
        self.n = grid_size
        self.m = padded_size
        self.size = window_size
        self.chunk_rows = int(chunk_rows)
        self.offset = (padded_size - grid_size) // 2
        self.start = (self.offset + grid_size // 2 + window_start) % padded_size
        self.wraps = self.start + window_size > padded_size
        self.index = (self.start + torch.arange(window_size)) % padded_size
        self.pool = WorkspacePool(self.chunk_rows, max(self.n, self.size), self.m)

    def workspace(
        self, dtype: torch.dtype, device: torch.device
    ) -> AbstractContextManager[list[torch.Tensor]]:
        """``with geometry.workspace(dtype, device) as work:`` the ``rows x M`` complex work
        array (``work[0]``: zero-padded FFT input rows) of :meth:`rows_forward` /
        :meth:`rows_adjoint`, held by the caller alone until the block ends (see
        :class:`WorkspacePool`)."""
        return self.pool.borrow(dtype, device)

    def _take(self, x: torch.Tensor) -> torch.Tensor:
        if self.wraps:
            return x.index_select(-1, self.index.to(x.device))
        return x[..., self.start : self.start + self.size]

    def _put(self, buf: torch.Tensor, y: torch.Tensor) -> None:
        if self.wraps:
            buf.index_copy_(-1, self.index.to(y.device), y)
        else:
            buf[..., self.start : self.start + self.size] = y

    @staticmethod
    def _chunks(rows: int, chunk: int):
        for a in range(0, rows, chunk):
            yield a, min(a + chunk, rows)

    def rows_forward(
        self, source: RowSource, rows: int, t: torch.Tensor, out: torch.Tensor,
        work: list[torch.Tensor],
    ) -> torch.Tensor:
        """``out[r] = window(ifft(t fft(pad(source(r)))))`` for ``r < rows``; ``source(a, b)``
        returns rows ``a:b`` (``(b - a) x N`` complex), ``out`` is ``rows x W``."""
        inp = work[0]
        inp[:, : self.offset].zero_()
        inp[:, self.offset + self.n :].zero_()
        for a, b in self._chunks(rows, inp.shape[0]):
            k = b - a
            inp[:k, self.offset : self.offset + self.n] = source(a, b)
            # (an ``out=`` FFT on the CPU computes into a new array and copies it over)
            spec = torch.fft.fft(inp[:k], dim=-1).mul_(t)
            out[a:b] = self._take(torch.fft.ifft(spec, dim=-1))
        return out

    def rows_adjoint(
        self, source: RowSource, rows: int, t: torch.Tensor, out: torch.Tensor,
        work: list[torch.Tensor], field: RowSource | None = None, scale: float = 1.0,
    ) -> torch.Tensor:
        """Adjoint of :meth:`rows_forward` (``rows x W`` -> ``rows x N``, written to ``out``).

        With ``field`` (rows of ``g = A exp(i phi)``), accumulate instead the gradient with
        respect to the phase times ``scale``: ``out += scale Im(grad conj(g))``.
        """
        inp = work[0]
        inp.zero_()
        t_conj = t.conj()
        for a, b in self._chunks(rows, inp.shape[0]):
            k = b - a
            self._put(inp[:k], source(a, b))
            spec = torch.fft.fft(inp[:k], dim=-1).mul_(t_conj)
            grad = torch.fft.ifft(spec, dim=-1)[:, self.offset : self.offset + self.n]
            if field is None:
                out[a:b] = grad
            else:  # Im(grad conj(g)) = grad.imag g.real - grad.real g.imag
                out[a:b].add_((grad * field(a, b).conj()).imag, alpha=scale)
        return out

    def forward_t(
        self, source: RowSource, t: torch.Tensor, out: torch.Tensor,
        work: list[torch.Tensor], scratch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One ``N x N`` field (rows from ``source``) -> its ``W x W`` window, written
        *transposed* (``[x, y]`` order) into ``out``. ``scratch`` (``N x W`` complex, optional)
        holds the intermediate result, so that repeated calls allocate nothing large."""
        rows = scratch if scratch is not None else torch.empty(
            self.n, self.size, dtype=t.dtype, device=t.device
        )
        self.rows_forward(source, self.n, t, rows, work)  # (N_y, W_x)
        # the second pass reads the columns straight into its work array (no transposed copy)
        return self.rows_forward(
            lambda a, b: rows[:, a:b].transpose(0, 1), self.size, t, out, work
        )  # (W_x, W_y)

    def adjoint_t(
        self, grad_t: RowSource, t: torch.Tensor, out: torch.Tensor,
        work: list[torch.Tensor], field: RowSource | None = None, scale: float = 1.0,
        scratch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Adjoint of :meth:`forward_t`: transposed ``W x W`` gradient (rows from ``grad_t``)
        -> ``N x N`` in ``out`` (field gradient, or accumulated phase gradient when ``field``
        is given). ``scratch`` (``W x N`` complex, optional) holds the intermediate result."""
        cols = scratch if scratch is not None else torch.empty(
            self.size, self.n, dtype=t.dtype, device=t.device
        )
        self.rows_adjoint(grad_t, self.size, t, cols, work)  # (W_x, N_y)
        return self.rows_adjoint(
            lambda a, b: cols[:, a:b].transpose(0, 1), self.n, t, out, work, field, scale
        )


class _SeparableFresnel(torch.autograd.Function):
    """Linear map field (C x N x N) -> window (C x W x W); backward is its adjoint."""

    @staticmethod
    def forward(ctx, field, t, geometry):  # type: ignore[override]
        ctx.save_for_backward(t)
        ctx.geometry = geometry
        # one wavelength at a time keeps the peak memory low
        out = torch.empty(field.shape[0], geometry.size, geometry.size, dtype=t.dtype,
                          device=field.device)
        with geometry.workspace(t.dtype, field.device) as work:
            for c in range(field.shape[0]):
                geometry.forward_t(lambda a, b, c=c: field[c, a:b], t[c], out[c], work)
        return out.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (t,) = ctx.saved_tensors
        geo = ctx.geometry
        out = torch.empty(grad.shape[0], geo.n, geo.n, dtype=t.dtype, device=grad.device)
        with geo.workspace(t.dtype, grad.device) as work:
            for c in range(grad.shape[0]):
                grad_t = grad[c].transpose(0, 1)
                geo.adjoint_t(lambda a, b, g=grad_t: g[a:b], t[c], out[c], work)
        return out, None, None


class Propagator(nn.Module):
    """Propagate ``C x N x N`` complex fields over ``distance_m`` (one wavelength per channel).

    The output is the ``W x W`` window of samples at ``(window_start + k) * pitch_m`` from the
    optical axis, ``k = 0 .. W-1`` (default: the ``N x N`` window of the input grid). The
    padded size defaults to :func:`min_padded_size`; a given ``padded_size`` is checked
    with :func:`check_fresnel_sampling` (``on_violation``). ``method`` is ``"fresnel"``
    (separable transfer function, Eq. 1) or ``"angular_spectrum"``.
    """

    def __init__(
        self,
        grid_size: int,
        pitch_m: float,
        wavelengths_m: Sequence[float],
        distance_m: float,
        padded_size: int | None = None,
        window_start: int | None = None,
        window_size: int | None = None,
        method: str = "fresnel",
        pad_factor: float = 2.0,
        on_violation: str = "raise",
    ) -> None:
        super().__init__()
        if method not in PROPAGATION_METHODS:
            raise ValueError(f"method must be one of {PROPAGATION_METHODS}, got {method!r}")
        if not distance_m > 0:
            raise ValueError(f"distance_m must be > 0, got {distance_m!r}")
        if not pitch_m > 0:
            raise ValueError(f"pitch_m must be > 0, got {pitch_m!r}")
        self.grid_size = int(grid_size)
        self.pitch_m = float(pitch_m)
        self.wavelengths_m = tuple(float(w) for w in wavelengths_m)
        self.distance_m = float(distance_m)
        self.method = method
        if padded_size is None:
            padded_size = min_padded_size(
                grid_size, pitch_m, self.wavelengths_m, distance_m, pad_factor, method
            )
        elif padded_size < grid_size:
            raise ValueError(f"padded_size must be >= grid_size ({grid_size}), got {padded_size}")
        if method == "fresnel":
            for w in self.wavelengths_m:
                check_fresnel_sampling(pitch_m, w, distance_m, padded_size, on_violation)
        self.padded_size = int(padded_size)
        if window_size is None:
            window_size = self.grid_size
        if window_start is None:
            window_start = -(self.grid_size // 2)
        if not 1 <= window_size <= self.padded_size:
            raise ValueError(
                f"window_size must be in 1 .. padded_size ({self.padded_size}), got {window_size}"
            )
        self.window_start = int(window_start)
        self.window_size = int(window_size)
        self.geometry = SeparableGeometry(
            self.grid_size, self.padded_size, self.window_start, self.window_size
        )
        phases = torch.stack(
            [fresnel_transfer_phase(self.padded_size, pitch_m, w, distance_m)
             for w in self.wavelengths_m]
        )
        # float64 (C, M), kept out of the module's buffers so that .float() cannot round it
        self.transfer_phase = phases

    @property
    def positions_m(self) -> torch.Tensor:
        """Positions (float64, metres from the axis) of the output samples along each axis."""
        return (self.window_start + torch.arange(self.window_size, dtype=torch.float64)) * (
            self.pitch_m
        )

    def extra_repr(self) -> str:
        return (
            f"method={self.method!r}, grid_size={self.grid_size}, "
            f"padded_size={self.padded_size}, distance_m={self.distance_m:g}, "
            f"window=({self.window_start}, {self.window_size})"
        )

    def transfer_factors(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The 1-D factors ``exp(-i pi lambda z f^2)``, ``C x M`` complex."""
        phase = self.transfer_phase.to(device)
        return phasor(torch.ones((), dtype=phase.dtype, device=device), phase).to(dtype)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """``C x N x N`` complex field in the lens plane -> ``C x W x W`` at the sensor."""
        if field.dim() != 3 or field.shape[0] != len(self.wavelengths_m) or tuple(
            field.shape[-2:]
        ) != (self.grid_size, self.grid_size):
            raise ValueError(
                f"field must be {len(self.wavelengths_m)} x {self.grid_size} x "
                f"{self.grid_size} (one channel per wavelength), got {tuple(field.shape)}"
            )
        if not field.is_complex():
            field = field.to(torch.complex128 if field.dtype == torch.float64
                             else torch.complex64)
        if self.method == "fresnel":
            t = self.transfer_factors(field.dtype, field.device)
            return _SeparableFresnel.apply(field, t, self.geometry)
        return self._angular_spectrum(field)

    def _angular_spectrum(self, field: torch.Tensor) -> torch.Tensor:
        m, geo = self.padded_size, self.geometry
        index = (geo.index - geo.offset).to(field.device) % m  # field placed at column 0
        out = []
        for c, w in enumerate(self.wavelengths_m):
            h = angular_spectrum_transfer_function(m, self.pitch_m, w, self.distance_m)
            spec = torch.fft.fft2(field[c], s=(m, m))
            u = torch.fft.ifft2(spec * h.to(device=field.device, dtype=field.dtype))
            out.append(u.index_select(0, index).index_select(1, index))
            del spec
        return torch.stack(out)
