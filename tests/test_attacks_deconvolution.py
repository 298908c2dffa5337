"""Non-blind deconvolution attacks: scikit-image agreement, inversion, tuning, bad input.

Correspondence with scikit-image 0.26 (see :mod:`privcap.attacks.deconvolution`):

* ``wiener(y, h, nsr, regulariser="identity", boundary="circular")`` is
  ``skimage.restoration.wiener(y, h, balance=nsr, reg=np.ones((1, 1)), clip=False)`` per
  channel; ``regulariser="laplacian"`` is the same with ``reg=None``; ``boundary="linear"``
  (default) is the same call on ``y`` zero padded (bottom / right) to
  ``padded_shape((H, W), (K, K))``, cropped back to ``H x W``. Tolerance 1e-10 in float64
  (observed ~3e-15), 1e-5 for float32 input.
* ``richardson_lucy(y, h, n)`` is ``skimage.restoration.richardson_lucy(y, h', num_iter=n,
  clip=False)`` per channel, ``h' = h`` for odd sizes and ``h`` with a zero row and column
  appended for even sizes. Tolerance 1e-9 relative in float64 (observed ~1e-15).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.restoration import richardson_lucy as sk_richardson_lucy
from skimage.restoration import wiener as sk_wiener

from privcap.attacks.deconvolution import (
    camera_psf,
    richardson_lucy,
    tune_richardson_lucy,
    tune_wiener,
    wiener,
)
from privcap.metrics import ssim
from privcap.optics import IdentityCamera, LowResCamera, comparison_cameras, fft_convolve
from privcap.optics.config import OpticsConfig
from privcap.optics.convolution import padded_shape


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A real photo, 1 x 3 x 64 x 64, float64 in [0, 1]."""
    img = skdata.astronaut()[::8, ::8].astype(np.float64) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()[None]


def _random_psf(k: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    psf = torch.rand(3, k, k, generator=gen, dtype=dtype)
    return psf / psf.sum(dim=(-2, -1), keepdim=True)


def _well_conditioned_psf(k: int, seed: int) -> torch.Tensor:
    """0.7 delta at the centre K//2 + 0.3 spread: |transfer function| >= 0.4 everywhere."""
    psf = 0.3 * _random_psf(k, seed)
    psf[:, k // 2, k // 2] += 0.7
    return psf


def _margined_scenes(n: int, size: int, margin: int, seed: int) -> torch.Tensor:
    """Scenes that are black within ``margin`` pixels of the border: a blur by a kernel of
    at most ``margin`` pixels loses no light outside the field of view."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 3, size, size, dtype=torch.float64)
    inner = size - 2 * margin
    coarse = torch.rand(n, 3, inner // 4, inner // 4, generator=gen, dtype=torch.float64)
    x[..., margin : size - margin, margin : size - margin] = torch.nn.functional.interpolate(
        coarse, size=(inner, inner), mode="bilinear", align_corners=False
    )
    return x


# --------------------------------------------------------------------------- scikit-image
@pytest.mark.parametrize("k", [5, 6])
@pytest.mark.parametrize("regulariser,sk_reg", [("identity", np.ones((1, 1))),
                                                ("laplacian", None)])
def test_wiener_matches_skimage(photo, k, regulariser, sk_reg):
    psf = _random_psf(k, seed=k)
    gen = torch.Generator().manual_seed(1)
    y = fft_convolve(photo, psf) + 0.01 * torch.randn(photo.shape, generator=gen,
                                                      dtype=torch.float64)
    nsr = 0.02
    # circular: scikit-image on the image itself
    ours = wiener(y, psf, nsr, regulariser=regulariser, boundary="circular")[0].numpy()
    ref = np.stack([sk_wiener(y[0, c].numpy(), psf[c].numpy(), nsr, reg=sk_reg, clip=False)
                    for c in range(3)])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)
    # linear (default): scikit-image on the sensor zero padded to the forward model's grid
    shape = padded_shape((64, 64), (k, k))
    ours = wiener(y, psf, nsr, regulariser=regulariser)[0].numpy()
    ref = []
    for c in range(3):
        padded = np.zeros(shape)
        padded[:64, :64] = y[0, c].numpy()
        ref.append(sk_wiener(padded, psf[c].numpy(), nsr, reg=sk_reg, clip=False)[:64, :64])
    np.testing.assert_allclose(ours, np.stack(ref), rtol=0, atol=1e-10)
    # the two boundaries really differ (so each comparison pins its own convention)
    circular = wiener(y, psf, nsr, regulariser=regulariser, boundary="circular")[0].numpy()
    assert np.abs(ours - circular).max() > 1e-3


def test_wiener_float32_matches_skimage(photo):
    psf = _random_psf(7, seed=3, dtype=torch.float32)
    y = fft_convolve(photo.float(), psf)
    ours = wiener(y, psf, 0.01, boundary="circular")
    assert ours.dtype == torch.float32
    ref = np.stack([sk_wiener(y[0, c].double().numpy(), psf[c].double().numpy(), 0.01,
                              reg=np.ones((1, 1)), clip=False) for c in range(3)])
    np.testing.assert_allclose(ours[0].numpy(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k", [5, 6])
def test_richardson_lucy_matches_skimage(photo, k):
    psf = _random_psf(k, seed=10 + k)
    y = fft_convolve(photo, psf)
    ours = richardson_lucy(y, psf, 25)[0].numpy()
    grow = 1 - k % 2  # even kernels: a zero row / column appended keeps the centre K//2
    padded_psf = np.pad(psf.numpy(), ((0, 0), (0, grow), (0, grow)))
    ref = np.stack([sk_richardson_lucy(y[0, c].numpy(), padded_psf[c], num_iter=25, clip=False)
                    for c in range(3)])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    if k % 2 == 0:
        # the centre convention matters: scikit-image with the even kernel itself centres it
        # at (K-1)//2 and drifts far from privcap's K//2
        naive = np.stack([sk_richardson_lucy(y[0, c].numpy(), psf[c].numpy(), num_iter=25,
                                             clip=False) for c in range(3)])
        assert np.abs(naive - ours).max() > 1e-2


@pytest.mark.parametrize("attack", [lambda y, h, **kw: wiener(y, h, 1e-4, **kw),
                                    lambda y, h, **kw: richardson_lucy(y, h, 10, **kw)])
def test_clip_and_single_image(photo, attack):
    psf = _random_psf(5, seed=2)
    y = fft_convolve(photo, psf)[0]
    raw = attack(y, psf)
    assert raw.shape == y.shape
    assert float(raw.min()) < 0.0 or float(raw.max()) > 1.0  # something to clip
    out = attack(y, psf, clip=True)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, raw.clamp(0, 1))


# --------------------------------------------------------------------------- inversion
def test_wiener_with_vanishing_nsr_inverts_the_forward_model():
    k = 6  # even: a kernel centred one pixel off would leave a shifted image
    x = _margined_scenes(2, 48, margin=k, seed=0)
    psf = _well_conditioned_psf(k, seed=4)
    y = fft_convolve(x, psf)
    assert (y - x).abs().max() > 0.05  # the blur is not negligible
    restored = wiener(y, psf, 1e-12)
    torch.testing.assert_close(restored, x, rtol=0, atol=1e-8)
    # a larger nsr leaves a visible error: the parameter is used
    assert (wiener(y, psf, 1.0) - x).abs().max() > 0.05


def test_richardson_lucy_approaches_the_scene_on_noise_free_data():
    x = _margined_scenes(1, 48, margin=6, seed=1)  # no light leaves the field of view
    psf = _random_psf(5, seed=5)
    y = fft_convolve(x, psf)
    err = [float((richardson_lucy(y, psf, n) - x).abs().mean()) for n in (1, 10, 100)]
    assert err[0] > err[1] > err[2]


# --------------------------------------------------------------------------- tuning
def test_tune_wiener_picks_the_ssim_best_candidate():
    x = _margined_scenes(3, 48, margin=5, seed=2)
    psf = _well_conditioned_psf(5, seed=6)
    y = fft_convolve(x, psf)
    candidates = [10.0, 1e-10, 1e-3]  # noise-free: the smallest nsr inverts exactly
    best, table = tune_wiener(y, x, psf, candidates)
    assert best == 1e-10
    assert [row["nsr"] for row in table] == candidates
    assert table[1]["ssim_mean"] == pytest.approx(1.0, abs=1e-6)
    assert table[0]["ssim_mean"] < table[2]["ssim_mean"] < table[1]["ssim_mean"]
    # the table scores the clipped reconstructions
    expected = ssim(wiener(y, psf, 1e-3).clamp(0, 1), x).mean()
    assert table[2]["ssim_mean"] == pytest.approx(float(expected), abs=1e-9)
    # strong noise: a vanishing nsr amplifies it, regularisation wins
    gen = torch.Generator().manual_seed(0)
    noisy = y + 0.2 * torch.randn(y.shape, generator=gen, dtype=y.dtype)
    best_noisy, _ = tune_wiener(noisy, x, psf, candidates)
    assert best_noisy != 1e-10


def test_tune_richardson_lucy_records_every_count_in_one_run():
    x = _margined_scenes(2, 48, margin=6, seed=3)
    psf = _random_psf(5, seed=7)
    y = fft_convolve(x, psf)
    counts = [5, 60, 1]
    best, table = tune_richardson_lucy(y, x, psf, counts)
    assert best == 60  # noise-free: more iterations sharpen
    assert [row["iterations"] for row in table] == counts
    for row in table:  # same numbers as separate runs of that length
        expected = ssim(richardson_lucy(y, psf, row["iterations"], clip=True), x).mean()
        assert row["ssim_mean"] == pytest.approx(float(expected), abs=1e-9)


# --------------------------------------------------------------------------- bad input
def test_pairs_of_different_sizes_are_rejected():
    psf = _random_psf(3, seed=0)
    with pytest.raises(ValueError, match="image size"):
        tune_wiener(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 30), psf, [0.1])
    with pytest.raises(ValueError, match="number of images"):
        tune_richardson_lucy(torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32), psf, [1])


@pytest.mark.parametrize(
    ("psf", "match"),
    [
        (torch.ones(1, 3, 3) / 9, "1 channels but the images have 3"),
        (torch.ones(3, 40, 40) / 1600, "larger than the images"),
        (torch.ones(3, 3), "C x K x K"),
        (torch.full((3, 3, 3), math.nan), "non-finite"),
        (torch.ones(3, 3, 3) - 0.5 * torch.eye(3).expand(3, 3, 3) * 3, "negative"),
        (torch.zeros(3, 3, 3), "summing to zero"),
        ("gaussian", "torch.Tensor"),
    ],
)
def test_bad_psf_is_rejected(psf, match):
    y = torch.rand(1, 3, 32, 32)
    for call in (lambda: wiener(y, psf, 0.1), lambda: richardson_lucy(y, psf, 2),
                 lambda: tune_wiener(y, y, psf, [0.1])):
        with pytest.raises(ValueError, match=match):
            call()


def test_bad_sensor_and_parameters_are_rejected():
    psf = _random_psf(3, seed=0).float()
    y = torch.rand(1, 3, 16, 16)
    bad = y.clone()
    bad[0, 0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="sensor has 1 non-finite"):
        wiener(bad, psf, 0.1)
    with pytest.raises(ValueError, match="sensor has 1 non-finite"):
        richardson_lucy(bad, psf, 3)
    with pytest.raises(ValueError, match="originals has 1 non-finite"):
        tune_wiener(y, bad, psf, [0.1])
    for nsr in (0.0, -1.0, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="nsr"):
            wiener(y, psf, nsr)
    for n in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="iterations"):
            richardson_lucy(y, psf, n)
    with pytest.raises(ValueError, match="regulariser"):
        wiener(y, psf, 0.1, regulariser="tv")
    with pytest.raises(ValueError, match="boundary"):
        wiener(y, psf, 0.1, boundary="reflect")
    with pytest.raises(ValueError, match="candidates"):
        tune_wiener(y, y, psf, [])
    with pytest.raises(ValueError, match="iterations"):
        tune_richardson_lucy(y, y, psf, [3, 0])
    with pytest.raises(ValueError, match="floating"):
        wiener(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), psf, 0.1)


def test_cameras_without_a_psf_are_rejected():
    with pytest.raises(ValueError, match="LowResCamera has none"):
        camera_psf(LowResCamera())
    with pytest.raises(ValueError, match="IdentityCamera"):
        camera_psf(IdentityCamera())
    with pytest.raises(ValueError, match="shift-invariant PSF"):
        camera_psf(torch.nn.Identity())


def test_camera_psf_of_a_lens():
    cams = comparison_cameras(OpticsConfig.quick())
    psf = camera_psf(cams["random Zernike lens"])
    assert psf.shape == (3, 128, 128) and not psf.requires_grad
    torch.testing.assert_close(psf.sum(dim=(-2, -1)), torch.ones(3), rtol=0, atol=1e-5)
