"""Zernike polynomials: Noll indexing, closed-form values, orthonormality, separable form."""

from __future__ import annotations

import math

import pytest
import torch

from privcap.optics import Lens, OpticsConfig, circular_aperture
from privcap.optics.zernike_polynomials import (
    nm_to_noll,
    noll_to_nm,
    separable_zernike,
    unit_grid,
    zernike,
    zernike_basis,
)

NOLL_TABLE = {
    1: (0, 0), 2: (1, 1), 3: (1, -1), 4: (2, 0), 5: (2, -2), 6: (2, 2), 7: (3, -1),
    8: (3, 1), 9: (3, -3), 10: (3, 3), 11: (4, 0), 12: (4, 2), 13: (4, -2), 14: (4, 4),
    15: (4, -4),
}


def closed_form(j: int, r: float, t: float) -> float:
    """Noll's Z_1 .. Z_15 written out by hand (Noll 1976, Table 1)."""
    s3, s6, s8, s5, s10 = (math.sqrt(v) for v in (3, 6, 8, 5, 10))
    return {
        1: 1.0,
        2: 2 * r * math.cos(t),
        3: 2 * r * math.sin(t),
        4: s3 * (2 * r**2 - 1),
        5: s6 * r**2 * math.sin(2 * t),
        6: s6 * r**2 * math.cos(2 * t),
        7: s8 * (3 * r**3 - 2 * r) * math.sin(t),
        8: s8 * (3 * r**3 - 2 * r) * math.cos(t),
        9: s8 * r**3 * math.sin(3 * t),
        10: s8 * r**3 * math.cos(3 * t),
        11: s5 * (6 * r**4 - 6 * r**2 + 1),
        12: s10 * (4 * r**4 - 3 * r**2) * math.cos(2 * t),
        13: s10 * (4 * r**4 - 3 * r**2) * math.sin(2 * t),
        14: s10 * r**4 * math.cos(4 * t),
        15: s10 * r**4 * math.sin(4 * t),
    }[j]


def test_package_exports_the_zernike_function():
    """``from privcap.optics import zernike`` is the polynomial of the docs, not a module."""
    from privcap.optics import zernike as from_package

    assert callable(from_package) and from_package is zernike
    rho = torch.linspace(0, 1, 11, dtype=torch.float64)
    theta = torch.linspace(-math.pi, math.pi, 11, dtype=torch.float64)
    expected = math.sqrt(3) * (2 * rho**2 - 1)
    assert torch.allclose(from_package(4, rho, theta), expected, atol=1e-14, rtol=0)


def test_noll_table_first_fifteen():
    assert {j: noll_to_nm(j) for j in range(1, 16)} == NOLL_TABLE
    for j in range(1, 120):
        assert nm_to_noll(*noll_to_nm(j)) == j


@pytest.mark.parametrize("j", range(1, 16))
def test_values_at_half_radius_thirty_degrees(j):
    r, t = 0.5, math.radians(30)
    value = zernike(j, torch.tensor(r, dtype=torch.float64), torch.tensor(t, dtype=torch.float64))
    assert float(value) == pytest.approx(closed_form(j, r, t), abs=1e-12)


def test_zero_outside_disk_and_dtype_kept():
    rho = torch.tensor([0.2, 1.0, 1.2, 3.0])
    theta = torch.zeros(4)
    out = zernike(4, rho, theta)
    assert out.dtype == torch.float32
    assert out[2] == 0 and out[3] == 0
    assert float(out[1]) == pytest.approx(math.sqrt(3), rel=1e-6)


def test_high_order_radial_matches_explicit_sum():
    # R_25^1 at rho = 0.9 from the factorial sum, evaluated in exact rational arithmetic
    from fractions import Fraction

    n, m, r = 25, 1, Fraction(9, 10)
    exact = sum(
        (-1) ** k * Fraction(math.factorial(n - k),
                             math.factorial(k) * math.factorial((n + m) // 2 - k)
                             * math.factorial((n - m) // 2 - k)) * r ** (n - 2 * k)
        for k in range((n - m) // 2 + 1)
    )
    j = nm_to_noll(25, 1)
    rho, theta = torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    value = zernike(j, rho, theta)
    assert float(value) == pytest.approx(math.sqrt(2 * 26) * float(exact), abs=1e-10)


def test_sampled_basis_orthonormal_on_256_grid():
    """Inner products over the lens grid, weighted by the anti-aliased aperture (as the lens
    sees them), are the identity within 1 % for the first 66 terms (radial order <= 10)."""
    num, n = 66, 256
    sep = separable_zernike(num)
    axis = sep.axis_matrix(unit_grid(n))
    eye = torch.eye(num, dtype=torch.float64)
    basis = torch.stack([sep.surface(eye[j], axis, axis) for j in range(num)])
    weight = circular_aperture(n)
    gram = torch.einsum("ixy,jxy,xy->ij", basis, basis, weight) / weight.sum()
    assert (gram - torch.eye(num, dtype=torch.float64)).abs().max() < 0.01


def test_dense_basis_hard_mask_orthonormal_and_cached():
    basis = zernike_basis(15, 256).double()
    u = torch.from_numpy(unit_grid(256))
    inside = (u[:, None] ** 2 + u[None, :] ** 2) <= 1
    gram = torch.einsum("ixy,jxy->ij", basis, basis) / inside.sum()
    assert (gram - torch.eye(15, dtype=torch.float64)).abs().max() < 0.01
    assert float(basis[:, ~inside].abs().max()) == 0.0
    assert zernike_basis(15, 256) is zernike_basis(15, 256)
    with pytest.raises(ValueError, match="MiB"):
        zernike_basis(350, 896)


def test_separable_form_matches_direct_formula_all_350_terms():
    sep = separable_zernike(350)
    assert sep.degree == 25 and sep.coefficients.shape == (350, 26, 26)
    gen = torch.Generator().manual_seed(0)
    rho = torch.rand(400, generator=gen, dtype=torch.float64)
    theta = torch.rand(400, generator=gen, dtype=torch.float64) * 2 * math.pi
    ax, ay = sep.axis_matrix(rho * torch.cos(theta)), sep.axis_matrix(rho * torch.sin(theta))
    values = torch.einsum("kq,jqp,kp->jk", ay, sep.coefficients, ax)
    direct = torch.stack([zernike(j, rho, theta) for j in range(1, 351)])
    # relative to the largest value of each term on the disk (about sqrt(2 (n + 1)))
    scale = direct.abs().amax(dim=1, keepdim=True)
    assert float(((values - direct).abs() / scale).max()) < 1e-6


def test_lens_height_equals_sum_of_direct_terms():
    config = OpticsConfig.quick().replace(num_terms=21, grid_size=64, psf_size=32,
                                          image_size=32)
    gen = torch.Generator().manual_seed(1)
    # the lens stores float32 coefficients: start from float32-representable values
    coeffs = (torch.randn(21, generator=gen) * 0.5).double()
    lens = Lens(config, init_coefficients_um=coeffs, bounds_um=(
        [-math.inf] * 21, [math.inf] * 21)).double()
    u = torch.from_numpy(unit_grid(64))
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    rho, theta = torch.hypot(xx, yy), torch.atan2(yy, xx)
    inside = rho <= 1
    expected = sum(float(coeffs[j - 1]) * zernike(j, rho, theta) for j in range(1, 22))
    height = lens.height_um()
    assert torch.allclose(height[inside], expected[inside], atol=1e-9)
    # theta = atan2(y, x) with y along rows: Z2 (tilt in x) varies along columns
    tilt = Lens(config, init_coefficients_um=torch.eye(21, dtype=torch.float64)[1]).double()
    h = tilt.height_um().detach()
    assert float(h[32, 40] - h[32, 24]) > 0 and float((h[40, 32] - h[24, 32]).abs()) < 1e-9


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_bad_noll_index_raises(bad):
    with pytest.raises(ValueError, match="Noll"):
        noll_to_nm(bad)
    with pytest.raises(ValueError, match="Noll"):
        zernike(bad, torch.tensor(0.5), torch.tensor(0.0))
