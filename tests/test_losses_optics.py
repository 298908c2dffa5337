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
    outside = 64 - int(psf_disk_mask(8, 8, 2.0).sum())
    assert float(psf_energy_loss(uniform, 2.0)) == pytest.approx(math.sqrt(outside) / 64,
                                                                 rel=1e-6)


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
