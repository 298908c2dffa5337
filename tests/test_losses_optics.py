"""Optics losses: L_H (Eqs. 8-9) and L_p (1 - MSE) on cases with known values."""

from __future__ import annotations

import math

import pytest
import torch

from privcap.losses import distortion_loss, psf_disk_mask, psf_energy_loss


def test_disk_mask_of_eq_9_is_centred_on_k_half():
    mask = psf_disk_mask(9, 9, 2.0)
    assert int(mask.sum()) == 13  # lattice points with i^2 + j^2 <= 4
    assert mask[4, 4] == 1 and mask[4, 6] == 1 and mask[4, 7] == 0 and mask[5, 6] == 0
    assert mask[2, 4] == 1 and mask[6, 4] == 1  # symmetric about (K//2, K//2)


def test_psf_inside_the_disk_costs_nothing():
    psf = torch.zeros(3, 16, 16)
    psf[:, 7:10, 7:10] = 1.0 / 9
    assert float(psf_energy_loss(psf, 3.0)) == pytest.approx(0.0, abs=1e-12)


def test_psf_energy_outside_the_disk():
    psf = torch.zeros(3, 16, 16)
    psf[0, 8, 8] = 0.5
    psf[0, 0, 0] = 0.3  # outside
    psf[2, 8, 15] = 0.4  # outside (7 pixels from the centre, radius 4)
    assert float(psf_energy_loss(psf, 4.0)) == pytest.approx(math.hypot(0.3, 0.4), rel=1e-6)
    uniform = torch.full((1, 8, 8), 1 / 64)
    outside = 64 - 13  # the radius-2 disk about (4, 4) holds 13 pixels, all on the grid
    assert float(psf_energy_loss(uniform, 2.0)) == pytest.approx(math.sqrt(outside) / 64,
                                                                 rel=1e-6)


@pytest.mark.parametrize("radius,inside", [(2.0, 13), (1.5, 9), (1.0, 5), (0.5, 1)])
def test_disk_mask_pixel_counts_by_hand(radius, inside):
    """Lattice points with i^2 + j^2 <= r^2: 13 for r = 2 (0, 4 at distance 1, 4 at sqrt 2,
    4 at 2), 9 for r = 1.5, 5 for r = 1, the centre alone for r = 0.5."""
    assert int(psf_disk_mask(7, 7, radius).sum()) == inside


def test_psf_energy_loss_by_hand_on_a_4x4_psf():
    """Even size: the disk is centred on (K//2, K//2) = (2, 2), not on (1.5, 1.5). With
    r = 1 the mask keeps (2, 2), (1, 2), (3, 2), (2, 1), (2, 3); L_H is the Frobenius norm of
    everything else."""
    psf = torch.arange(1.0, 17.0).reshape(1, 4, 4) / 100  # psf[0, i, j] = (4 i + j + 1) / 100
    inside = {(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)}
    squares = sum(((4 * i + j + 1) / 100) ** 2 for i in range(4) for j in range(4)
                  if (i, j) not in inside)
    assert float(psf_energy_loss(psf, 1.0)) == pytest.approx(math.sqrt(squares), rel=1e-6)
    # two channels: one norm over all elements, not a sum of per-channel norms
    two = torch.cat([psf, 2 * psf])
    assert float(psf_energy_loss(two, 1.0)) == pytest.approx(math.sqrt(5 * squares), rel=1e-6)


def test_psf_energy_gradient_finite_and_pushes_energy_inward():
    psf = torch.zeros(1, 8, 8, requires_grad=True)
    psf_energy_loss(psf, 2.0).backward()
    assert bool(torch.isfinite(psf.grad).all())
    spread = torch.full((1, 8, 8), 1 / 64, requires_grad=True)
    psf_energy_loss(spread, 2.0).backward()
    assert float(spread.grad[0, 0, 0]) > 0 and float(spread.grad[0, 4, 4]) == 0.0


@pytest.mark.parametrize("radius", [0, -1.0, math.inf, "3"])
def test_bad_radius_raises(radius):
    with pytest.raises(ValueError, match="radius_px"):
        psf_energy_loss(torch.rand(3, 8, 8), radius)


def test_distortion_loss_is_one_minus_mse():
    scene = torch.rand(2, 3, 8, 8)
    assert float(distortion_loss(scene, scene)) == pytest.approx(1.0)
    assert float(distortion_loss(scene + 0.1, scene)) == pytest.approx(0.99, abs=1e-6)
    black, white = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert float(distortion_loss(black, white)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same shape"):
        distortion_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 7))
