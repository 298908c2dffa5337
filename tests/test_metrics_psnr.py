"""PSNR: hand-computed values, scikit-image, and the input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from privcap.metrics import psnr


def test_hand_computed_values_per_image():
    a = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    b = a.clone()
    b[0] += 0.1  # every sample off by 0.1: MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    b[1, :, :2, :] = 0.2  # half the samples off by 0.2: MSE 0.02 -> 10 log10(50)
    out = psnr(a, b)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-9)
    assert out[1].item() == pytest.approx(10 * math.log10(50.0), abs=1e-9)
    # symmetric in its arguments
    assert torch.allclose(psnr(b, a), out)


def test_data_range_and_single_image():
    a = torch.full((3, 5, 7), 100.0)
    b = a + 25.5  # MSE 25.5^2 with L = 255: 10 log10(255^2 / 25.5^2) = 20 dB
    value = psnr(a, b, data_range=255.0)
    assert value.dim() == 0
    assert value.item() == pytest.approx(20.0, abs=1e-5)


def test_identical_images_are_infinite():
    a = torch.rand(1, 3, 8, 8)
    assert math.isinf(psnr(a, a.clone())[0].item())


def test_matches_skimage():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 16, 12, generator=gen, dtype=torch.float64)
    b = (a + 0.05 * torch.randn(a.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    expected = [
        peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=1.0) for i in range(3)
    ]
    np.testing.assert_allclose(psnr(a, b).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9), {}, "same shape"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8), {}, "same shape"),
        (torch.zeros(8, 8), torch.zeros(8, 8), {}, "B x C x H x W"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 3, 8, 8), {},
         "floating-point"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), {"data_range": 0.0}, "data_range"),
        (np.zeros((3, 8, 8)), torch.zeros(3, 8, 8), {}, "torch tensors"),
    ],
)
def test_bad_input_is_a_value_error(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        psnr(a, b, **kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(bad):
    a = torch.rand(1, 3, 8, 8)
    b = a.clone()
    b[0, 1, 2, 3] = bad
    with pytest.raises(ValueError, match="image b has 1 non-finite"):
        psnr(a, b)
    with pytest.raises(ValueError, match="image a has 1 non-finite"):
        psnr(b, a)
