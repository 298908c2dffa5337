"""Zernike polynomials in Noll's indexing, and an exact separable form of their sums.

The lens surface of the paper (Sec. 2.1, below Eq. 1) is ``phi = sum_j alpha_j Z_j``, a
linear combination of Zernike polynomials in Noll's order (Noll 1976):

* ``Z_j(rho, theta) = N_nm R_n^|m|(rho) cos(m theta)`` for ``m > 0``, ``sin(|m| theta)`` for
  ``m < 0``, no angular factor for ``m = 0``; ``theta = atan2(y, x)``;
* normalisation ``N_nm = sqrt(n + 1)`` for ``m = 0`` and ``sqrt(2 (n + 1))`` otherwise, so
  every term has RMS 1 over the unit disk; values outside the disk are 0.

Two ways to evaluate them live here:

* :func:`zernike` -- the direct formula (radial part by the Jacobi-polynomial recurrence),
  used for tests, validation and small dense bases (:func:`zernike_basis`);
* :class:`SeparableZernike` -- every ``Z_j`` is a polynomial of degree ``n <= n_max`` in
  ``(x, y)``, so it is written *exactly* in the tensor-product Chebyshev basis
  ``T_p(x) T_q(y)`` (``p, q <= n_max``). A surface ``sum_j alpha_j Z_j`` on an ``N x N`` grid
  is then ``T C(alpha) T^T`` with a small ``(n_max+1) x (n_max+1)`` matrix ``C(alpha)``:
  ``O(N^2 n_max)`` time and ``O(N^2)`` memory instead of a dense ``J x N x N`` basis. The
  Chebyshev coefficients of high orders are large (the polynomials grow fast outside the
  unit disk, in the corners of the square), so this evaluation runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "noll_to_nm",
    "nm_to_noll",
    "radial_order_for_terms",
    "zernike_radial",
    "zernike",
    "zernike_basis",
    "SeparableZernike",
    "separable_zernike",
    "unit_grid",
]


def _check_noll(j: int, name: str = "j") -> int:
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)):
        raise ValueError(f"{name} (Noll index) must be an integer >= 1, got {j!r}")
    if j < 1:
        raise ValueError(f"{name} (Noll index) must be >= 1, got {j}")
    return int(j)


def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal frequency ``m`` of the Noll index ``j >= 1``.

    Within a radial order, ``|m|`` increases with ``j``; for ``m != 0`` the even ``j`` carries
    the cosine (``m > 0``) and the odd ``j`` the sine (``m < 0``). Examples: 1 -> (0, 0),
    4 -> (2, 0), 5 -> (2, -2), 6 -> (2, 2), 11 -> (4, 0).
    """
    j = _check_noll(j)
    n = 0
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    k = j - n * (n + 1) // 2  # position within the order, 1 .. n + 1
    abs_m = [m for m in range(n % 2, n + 1, 2) for _ in range(1 if m == 0 else 2)][k - 1]
    if abs_m == 0:
        return n, 0
    return n, abs_m if j % 2 == 0 else -abs_m


def nm_to_noll(n: int, m: int) -> int:
    """Noll index of the term ``(n, m)`` (inverse of :func:`noll_to_nm`)."""
    if n < 0 or abs(m) > n or (n - m) % 2:
        raise ValueError(f"(n, m) must satisfy 0 <= |m| <= n with n - m even, got ({n}, {m})")
    for j in range(n * (n + 1) // 2 + 1, (n + 1) * (n + 2) // 2 + 1):
        if noll_to_nm(j) == (n, m):
            return j
    raise AssertionError("unreachable")  # pragma: no cover


def radial_order_for_terms(num_terms: int) -> int:
    """Highest radial order ``n`` among the Noll terms ``1 .. num_terms``."""
    _check_noll(num_terms, "num_terms")
    return noll_to_nm(num_terms)[0]


def zernike_radial(n: int, m: int, rho: torch.Tensor) -> torch.Tensor:
    """Radial polynomial ``R_n^|m|(rho)`` (not normalised, no disk mask), in float64.

    Uses ``R_n^m(rho) = (-1)^k rho^m P_k^(m,0)(1 - 2 rho^2)`` with ``k = (n - m) / 2`` and the
    three-term recurrence of the Jacobi polynomials, which stays accurate at high orders
    (the explicit factorial sum loses digits by cancellation).
    """
    m = abs(int(m))
    n = int(n)
    if n < 0 or m > n or (n - m) % 2:
        raise ValueError(f"(n, m) must satisfy 0 <= |m| <= n with n - m even, got ({n}, {m})")
    rho = torch.as_tensor(rho, dtype=torch.float64)
    return rho**m * _signed_jacobi(n, m, 1.0 - 2.0 * rho * rho)


def _signed_jacobi(n: int, m: int, x):
    """``(-1)^k P_k^(m,0)(x)``, ``k = (n - m) / 2``, by the three-term recurrence; works on
    numpy arrays and torch tensors alike (plain arithmetic only)."""
    k = (n - m) // 2
    a = float(m)
    p_prev = x * 0.0 + 1.0
    p = p_prev if k == 0 else 0.5 * (a + (a + 2.0) * x)
    for i in range(2, k + 1):
        c = 2.0 * i + a
        a1 = 2.0 * i * (i + a) * (c - 2.0)
        a2 = (c - 1.0) * a * a
        a3 = (c - 2.0) * (c - 1.0) * c
        a4 = 2.0 * (i + a - 1.0) * (i - 1.0) * c
        p_prev, p = p, ((a2 + a3 * x) * p - a4 * p_prev) / a1
    return -p if k % 2 else p


def _zernike_polynomial_np(j: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``Z_j(x, y)`` as a polynomial (any ``x, y``), numpy float64, without trigonometry:
    ``rho^|m| cos(m theta) = Re((x + i y)^|m|)`` and ``sin`` is the imaginary part."""
    n, m = noll_to_nm(j)
    radial = _signed_jacobi(n, abs(m), 1.0 - 2.0 * (x * x + y * y))
    if m == 0:
        return math.sqrt(n + 1) * radial
    power = (x + 1j * y) ** abs(m)
    angular = power.real if m > 0 else power.imag
    return math.sqrt(2 * (n + 1)) * radial * angular


def _zernike_unmasked(j: int, rho: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``Z_j`` as a polynomial (valid for any ``rho``), float64."""
    n, m = noll_to_nm(j)
    radial = zernike_radial(n, m, rho)
    if m == 0:
        return math.sqrt(n + 1) * radial
    angular = torch.cos(m * theta) if m > 0 else torch.sin(-m * theta)
    return math.sqrt(2 * (n + 1)) * radial * angular


def zernike(j: int, rho: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Noll-normalised Zernike polynomial ``Z_j(rho, theta)`` (RMS 1 on the unit disk).

    ``rho`` and ``theta`` are broadcastable tensors (``theta = atan2(y, x)``); the result has
    their broadcast shape and the floating dtype of ``rho`` (float32 by default) and is 0
    where ``rho > 1``. Computed internally in float64.
    """
    j = _check_noll(j)
    rho_t = torch.as_tensor(rho)
    out_dtype = rho_t.dtype if rho_t.is_floating_point() else torch.get_default_dtype()
    rho64 = rho_t.to(torch.float64)
    theta64 = torch.as_tensor(theta).to(device=rho64.device, dtype=torch.float64)
    if bool((rho64 < 0).any()):
        raise ValueError("rho must be >= 0 (a radius on the unit disk)")
    values = _zernike_unmasked(j, rho64, theta64)
    values = torch.where(rho64 <= 1.0, values, torch.zeros_like(values))
    return values.to(out_dtype)


def unit_grid(grid_size: int) -> np.ndarray:
    """Coordinates ``u_k = (k - N//2) / (N/2)`` of an ``N``-sample axis, float64.

    The optical axis sits on sample ``N//2`` (the FFT convention), the unit disk touches
    ``u = -1`` at sample 0; the same convention is used by the aperture and the propagation.
    """
    if grid_size < 2:
        raise ValueError(f"grid_size must be >= 2, got {grid_size}")
    half = grid_size / 2.0
    return (np.arange(grid_size, dtype=np.float64) - grid_size // 2) / half


@dataclass(frozen=True)
class SeparableZernike:
    """Exact tensor-product Chebyshev representation of the Noll terms ``1 .. num_terms``.

    ``coefficients[j - 1, q, p]`` is the weight of ``T_q(y) T_p(x)`` in ``Z_j(x, y)`` (the
    polynomial, i.e. without the disk mask), on the square ``[-1, 1]^2`` that holds the unit
    disk. ``degree`` is the highest radial order ``n_max``; there are ``degree + 1`` Chebyshev
    polynomials per axis.
    """

    num_terms: int
    degree: int
    coefficients: torch.Tensor  # (num_terms, degree + 1, degree + 1), float64

    def axis_matrix(self, u: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``T[k, p] = T_p(u_k)`` (float64), for coordinates ``u`` (1D) on ``[-1, 1]``."""
        u = torch.as_tensor(u, dtype=torch.float64)
        cols = [torch.ones_like(u)]
        if self.degree >= 1:
            cols.append(u)
        for _ in range(2, self.degree + 1):
            cols.append(2.0 * u * cols[-1] - cols[-2])
        return torch.stack(cols, dim=-1)

    def surface(
        self, coefficients: torch.Tensor, axis_y: torch.Tensor, axis_x: torch.Tensor
    ) -> torch.Tensor:
        """``sum_j coefficients[j] Z_j`` on the grid ``(y_k, x_l)`` (no disk mask), float64.

        ``axis_y`` and ``axis_x`` come from :meth:`axis_matrix`. Differentiable with respect
        to ``coefficients`` (any floating dtype; computed in float64).
        """
        if coefficients.shape[-1] != self.num_terms:
            raise ValueError(
                f"coefficients must have {self.num_terms} entries, got {coefficients.shape[-1]}"
            )
        basis = self.coefficients.to(coefficients.device)
        small = torch.tensordot(coefficients.to(torch.float64), basis, dims=([-1], [0]))
        return axis_y @ small @ axis_x.transpose(-1, -2)


@lru_cache(maxsize=8)
def separable_zernike(num_terms: int) -> SeparableZernike:
    """The (cached) :class:`SeparableZernike` of the Noll terms ``1 .. num_terms``.

    Each polynomial is sampled at the ``(n_max+1)^2`` Chebyshev-Gauss nodes
    ``x_k = cos(pi (k + 1/2) / P)`` and transformed with the discrete orthogonality of the
    Chebyshev polynomials there (``sum_k T_p(x_k) T_q(x_k) = P/2 delta_pq``, ``P`` for
    ``p = q = 0``), in float64: exact, because a polynomial of degree ``<= n_max`` in each
    variable is determined by those samples.
    """
    _check_noll(num_terms, "num_terms")
    degree = radial_order_for_terms(num_terms)
    size = degree + 1
    # small arrays: numpy (no thread pool to wake up for a few hundred numbers)
    nodes = np.cos(np.pi * (np.arange(size) + 0.5) / size)
    vander = np.polynomial.chebyshev.chebvander(nodes, degree)  # vander[k, p] = T_p(node_k)
    inv = vander.T * (2.0 / size)  # inverse of vander by discrete orthogonality
    inv[0] *= 0.5
    yy, xx = np.meshgrid(nodes, nodes, indexing="ij")
    samples = np.stack(
        [_zernike_polynomial_np(j, xx, yy) for j in range(1, num_terms + 1)]
    )  # samples[j, q, p] = Z_j(x_p, y_q)
    inv_t = torch.from_numpy(inv)
    coefficients = inv_t @ torch.from_numpy(samples) @ inv_t.transpose(0, 1)
    return SeparableZernike(num_terms, degree, coefficients)


@lru_cache(maxsize=4)
def _zernike_basis_cached(num_terms: int, grid_size: int) -> torch.Tensor:
    sep = separable_zernike(num_terms)
    axis = sep.axis_matrix(unit_grid(grid_size))
    u = torch.from_numpy(unit_grid(grid_size))
    inside = (u[:, None] ** 2 + u[None, :] ** 2) <= 1.0
    eye = torch.eye(num_terms, dtype=torch.float64)
    basis = torch.stack([sep.surface(eye[j], axis, axis) for j in range(num_terms)])
    return (basis * inside).to(torch.float32)


def zernike_basis(num_terms: int, grid_size: int) -> torch.Tensor:
    """Dense basis ``Z_1 .. Z_num_terms`` on an ``N x N`` grid (cached, float32, read-only).

    Rows are ``y``, columns ``x`` (both increasing with the index), the axis on sample
    ``N//2`` and the unit disk of radius ``N/2`` samples; 0 outside the disk (hard edge).
    Meant for small grids (galleries, orthonormality checks): it holds
    ``num_terms * N^2`` floats, so it refuses more than 256 MiB; the lens itself uses the
    separable form.
    """
    _check_noll(num_terms, "num_terms")
    size_bytes = 4 * num_terms * grid_size * grid_size
    if size_bytes > 256 * 2**20:
        raise ValueError(
            f"zernike_basis(num_terms={num_terms}, grid_size={grid_size}) would hold "
            f"{size_bytes / 2**20:.0f} MiB; use SeparableZernike for large grids"
        )
    return _zernike_basis_cached(int(num_terms), int(grid_size))
