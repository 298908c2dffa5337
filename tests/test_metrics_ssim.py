"""SSIM against scikit-image's reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import structural_similarity

from privcap.metrics import ssim


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """scikit-image SSIM of one C x H x W pair with the Wang et al. settings."""
    return float(
        structural_similarity(
            a.permute(1, 2, 0).double().numpy(),
            b.permute(1, 2, 0).double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=data_range,
            channel_axis=-1,
        )
    )


@pytest.fixture(scope="module")
def photo_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A real photo (B x 3 x H x W in [0, 1]) and degraded copies of it."""
    photo = torch.from_numpy(skdata.astronaut()[::4, ::4].astype(np.float32) / 255.0)
    photo = photo.permute(2, 0, 1).contiguous()  # 3 x 128 x 128
    gen = torch.Generator().manual_seed(0)
    noisy = (photo + 0.08 * torch.randn(photo.shape, generator=gen)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(photo[None], 5, stride=1, padding=2)[0]
    dark = 0.5 * photo
    a = torch.stack([photo, photo, photo, noisy])
    b = torch.stack([noisy, blurred, dark, blurred])
    return a, b


def test_matches_skimage_on_photo_batch(photo_pair):
    a, b = photo_pair
    ours = ssim(a, b)
    assert ours.shape == (4,)
    expected = [_skimage_ssim(a[i], b[i]) for i in range(4)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)
    # the four degradations really differ, so the comparison is not trivial
    assert max(expected) - min(expected) > 0.1


def test_matches_skimage_random_non_square_and_data_range():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 2, 23, 31, generator=gen, dtype=torch.float64) * 255
    b = (a + 30 * torch.randn(a.shape, generator=gen, dtype=torch.float64)).clamp(0, 255)
    ours = ssim(a, b, data_range=255.0)
    expected = [_skimage_ssim(a[i], b[i], data_range=255.0) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6)


def test_single_image_and_identity(photo_pair):
    a, b = photo_pair
    single = ssim(a[0], b[0])
    assert single.dim() == 0
    assert single.item() == pytest.approx(ssim(a, b)[0].item(), abs=1e-6)
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, atol=1e-6)


def test_differentiable(photo_pair):
    a, b = photo_pair
    x = b[:2].double().clone().requires_grad_(True)
    value = ssim(a[:2].double(), x).sum()
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    small = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    other = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: ssim(small, y), (other,))


def test_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 3, 16, 17\)"):
        ssim(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [((16, 16), "B x C x H x W"), ((1, 3, 8, 40), "at least 11")],
)
def test_bad_shapes(shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        ssim(torch.rand(shape), torch.rand(shape))


def test_bad_dtype_and_range():
    with pytest.raises(ValueError, match="floating-point"):
        ssim(
            torch.zeros(1, 1, 12, 12, dtype=torch.uint8),
            torch.zeros(1, 1, 12, 12, dtype=torch.uint8),
        )
    with pytest.raises(ValueError, match="data_range"):
        ssim(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12), data_range=0)
