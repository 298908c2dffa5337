"""The recorded sensor image: read noise of the stated level, reproducible, finite bit depth."""

import pytest
import torch

from privcap.optics.recording import SensorRecording, quantize


def test_quantize_levels_and_clipping():
    x = torch.tensor([-0.2, 0.0, 0.3, 0.5, 1.0, 1.7])
    q = quantize(x, 2)  # levels 0, 1/3, 2/3, 1
    assert torch.allclose(q, torch.tensor([0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    q8 = quantize(torch.rand(1000), 8)
    assert torch.allclose(q8 * 255, (q8 * 255).round(), atol=1e-4)
    assert len(torch.unique(quantize(torch.linspace(0, 1, 5000), 8))) == 256


@pytest.mark.parametrize("bits", [0, 17, 2.0, True])
def test_quantize_rejects_bad_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        quantize(torch.zeros(2), bits)


def test_noise_level_and_mean():
    x = torch.full((4, 3, 64, 64), 0.5)
    rec = SensorRecording(noise_sigma=0.02, bits=None, seed=3)
    y = rec(x)
    n = y - x
    assert abs(float(n.std()) - 0.02) < 0.001
    assert abs(float(n.mean())) < 0.001


def test_noise_is_reproducible_per_stream_and_seed():
    x = torch.rand(2, 3, 16, 16)
    rec = SensorRecording(0.01, 8, seed=1)
    assert torch.equal(rec(x, 5), rec(x, 5))
    assert not torch.equal(rec(x, 5), rec(x, 6))
    assert not torch.equal(rec(x, 5), SensorRecording(0.01, 8, seed=2)(x, 5))


def test_eight_bit_recording_is_on_the_grid_and_in_range():
    x = torch.rand(2, 3, 32, 32) * 1.2 - 0.1
    y = SensorRecording(0.01, 8)(x)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)
    # quantisation to 8 bits moves a value by at most half a step (plus the noise)
    inside = (x > 0.05) & (x < 0.95)
    assert float((y - x)[inside].abs().max()) < 0.5 / 255 + 6 * 0.01


def test_ideal_recording_is_the_identity():
    x = torch.rand(1, 3, 8, 8)
    rec = SensorRecording(0.0, None)
    assert rec.is_ideal and torch.equal(rec(x), x)
    assert not SensorRecording(0.0, 8).is_ideal


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf")])
def test_rejects_bad_noise(sigma):
    with pytest.raises(ValueError, match="noise_sigma"):
        SensorRecording(sigma)
