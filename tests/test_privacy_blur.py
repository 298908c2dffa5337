"""Gaussian blur, the calibration alteration of the privacy measurements."""

from __future__ import annotations

import pytest
import torch

from privcap.privacy.blur import gaussian_blur


def test_impulse_response_is_a_normalised_gaussian():
    impulse = torch.zeros(1, 3, 41, 41, dtype=torch.float64)
    impulse[..., 20, 20] = 1.0
    out = gaussian_blur(impulse, 2.0)
    assert out.shape == impulse.shape
    assert torch.allclose(out.sum(dim=(-2, -1)), torch.ones(1, 3, dtype=torch.float64))
    offsets = torch.arange(-20.0, 21.0, dtype=torch.float64)
    row = out[0, 0, 20] / out[0, 0, 20].sum()
    assert float((row * offsets**2).sum()) == pytest.approx(4.0, rel=1e-3)  # variance sigma^2
    # separable and symmetric: the response is the outer product of its row and column
    assert torch.allclose(out[0, 0], out[0, 0].T)
    assert torch.allclose(out[0, 0] / out[0, 0].sum(), torch.outer(row, row))
    # support truncated at 4 sigma = 8 px
    assert out[0, 0, 20, 29] == 0 and out[0, 0, 20, 28] > 0


def test_constant_image_is_unchanged_and_zero_sigma_copies():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat)
    assert torch.allclose(gaussian_blur(flat, 10.0), flat)  # kernel wider than the image
    image = torch.rand(3, 16, 16)
    same = gaussian_blur(image, 0)
    assert same.shape == (3, 16, 16) and torch.equal(same, image) and same is not image
    assert gaussian_blur(image, 1.0).shape == (3, 16, 16)


def test_bad_sigma_and_images():
    with pytest.raises(ValueError, match="sigma_px"):
        gaussian_blur(torch.rand(1, 3, 8, 8), -1.0)
    with pytest.raises(ValueError, match="sigma_px"):
        gaussian_blur(torch.rand(1, 3, 8, 8), float("inf"))
    with pytest.raises(ValueError, match="floating"):
        gaussian_blur(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 1.0)
