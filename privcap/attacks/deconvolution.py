"""Non-blind deconvolution attacks on a camera's private images (paper Fig. 3).

The attacker knows the camera's PSF ``H`` (paper Eq. 1) and tries to undo the blur of
Eq. 2, ``X_hat = H * X (+ N)``, to recover the scene ``X``:

* :func:`wiener` -- Wiener (Tikhonov) deconvolution, one closed-form division of spectra;
* :func:`richardson_lucy` -- the Richardson-Lucy iteration (maximum likelihood under
  Poisson noise, non-negative estimates);
* :func:`tune_wiener` / :func:`tune_richardson_lucy` -- the attacker chooses the
  regularisation (noise-to-signal ratio, number of iterations) that maximises its mean SSIM
  on a *tuning* set of its own (pairs of private and original images disjoint from the
  evaluated ones), not a fixed value.

Forward model. privcap convolves each channel with :func:`privcap.optics.fft_convolve`:
linear convolution, the scene zero padded (no wrap-around), output of the scene's size with
the kernel centre at index ``K // 2``. Both attacks use exactly this operator and its
adjoint (a correlation with the same centre): the sensor image is zero padded to the FFT
size of :func:`privcap.optics.convolution.padded_shape` (``>= H + K - 1``), so the
deconvolution is circular only on the padded grid, where the forward model itself is.

Correspondence with scikit-image 0.26 (pinned by ``tests/test_attacks_deconvolution.py``):

* ``wiener(y, h, nsr, regulariser="identity", boundary="circular")[c]`` equals
  ``skimage.restoration.wiener(y[c], h[c], balance=nsr, reg=np.ones((1, 1)),
  clip=False)``; ``regulariser="laplacian"`` equals the same call with ``reg=None``
  (scikit-image's default: the 3 x 3 Laplacian ``[[0,-1,0],[-1,4,-1],[0,-1,0]]``).
  scikit-image deconvolves circularly on the image's own grid and places the kernel with
  its centre ``K // 2`` at the origin, as privcap does. The default ``boundary="linear"``
  is the same call on the sensor image zero padded to the FFT size (bottom and right, the
  image at the top-left corner, as :func:`fft_convolve` pads), cropped back to ``H x W``.
  The filter is ``conj(T) / (|T|^2 + nsr |R|^2)`` with ``T`` the PSF's transfer function
  and ``R`` the regulariser's; scikit-image's ``balance`` *is* ``nsr`` (its unitary
  forward and inverse FFTs cancel, so no factor of the image size enters).
* ``richardson_lucy(y, h, n)[c]`` equals ``skimage.restoration.richardson_lucy(y[c], h'[c],
  num_iter=n, clip=False)`` where ``h' = h`` for odd ``K`` and ``h`` with a zero row and
  column appended (bottom, right) for even ``K``: scipy's ``convolve(mode="same")`` that
  scikit-image calls centres a kernel at ``(K - 1) // 2``, which differs from privcap's
  ``K // 2`` by one pixel for even sizes only; the appended zeros make the size odd
  without moving the centre. Same start (0.5 everywhere), same ``1e-12`` added to the
  denominator. (For even ``K`` scikit-image's own back-projection is then the exact
  adjoint of its forward operator, which it is not with ``h`` itself.)

Reconstructions are not clipped unless ``clip=True`` (then to ``[0, 1]``, the range of the
scenes; scikit-image's ``clip=True`` clips to ``[-1, 1]``). The tuning functions and
:func:`privcap.attacks.attack_images` score clipped reconstructions (the attacker knows the
images lie in ``[0, 1]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from privcap.metrics import psnr, ssim
from privcap.optics.camera import IdentityCamera, LowResCamera
from privcap.optics.convolution import padded_shape

__all__ = [
    "BOUNDARIES",
    "REGULARISERS",
    "DEFAULT_NSR_CANDIDATES",
    "DEFAULT_RL_ITERATIONS",
    "camera_psf",
    "check_pairs",
    "check_psf",
    "transfer_function",
    "wiener",
    "richardson_lucy",
    "tune_wiener",
    "tune_richardson_lucy",
]

#: ``"linear"``: deconvolve on the zero-padded FFT grid of the forward model (default);
#: ``"circular"``: on the image's own grid, as scikit-image does.
BOUNDARIES: tuple[str, ...] = ("linear", "circular")
#: ``"identity"``: constant noise-to-signal ratio (classic Wiener filter);
#: ``"laplacian"``: ``nsr`` times the squared Laplacian response (scikit-image's default).
REGULARISERS: tuple[str, ...] = ("identity", "laplacian")
#: noise-to-signal ratios tried by :func:`tune_wiener` by default: 1e-6 ... 100, half decades.
DEFAULT_NSR_CANDIDATES: tuple[float, ...] = tuple(10.0 ** (k / 2) for k in range(-12, 5))
#: iteration counts tried by :func:`tune_richardson_lucy` by default.
DEFAULT_RL_ITERATIONS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)
#: added to the Richardson-Lucy denominator (as in scikit-image)
RL_EPS = 1e-12
#: images per FFT batch (bounds the temporary spectra)
_CHUNK_IMAGES = 16


# --------------------------------------------------------------------------- input checks
def _check_images(images: Any, name: str) -> Tensor:
    """``images`` as ``B x C x H x W`` (a ``C x H x W`` image gets a batch dimension)."""
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point (values in [0, 1]), got {images.dtype}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(
            f"{name} must be B x C x H x W (or C x H x W), got shape {tuple(images.shape)}"
        )
    if not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).sum())
        raise ValueError(f"{name} has {bad} non-finite values (nan or inf)")
    return images


def check_pairs(private: Any, originals: Any, names: tuple[str, str] = ("private", "originals")
                ) -> tuple[Tensor, Tensor]:
    """Validate pairs of private (sensor) images and the original scenes.

    Both must be finite floating tensors ``B x C x H x W`` of the same shape (the same
    number of images, channels and pixels). Returns them batched.
    """
    a = _check_images(private, names[0])
    b = _check_images(originals, names[1])
    if a.shape != b.shape:
        what = "number of images" if a.shape[0] != b.shape[0] else "image size"
        raise ValueError(
            f"{names[0]} and {names[1]} differ in {what}: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    return a, b


def check_psf(psf: Any, images: Tensor, name: str = "psf") -> Tensor:
    """Validate a PSF ``C x Kh x Kw`` for ``images`` (``B x C x H x W``).

    The PSF must be a finite real tensor with one kernel per image channel, no larger than
    the images, non-negative with a positive sum per channel (a physical PSF).
    """
    if not isinstance(psf, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(psf).__name__}")
    if psf.is_complex() or not psf.is_floating_point():
        raise ValueError(f"{name} must be a real floating tensor, got {psf.dtype}")
    if psf.dim() != 3:
        raise ValueError(f"{name} must be C x K x K, got shape {tuple(psf.shape)}")
    if psf.shape[0] != images.shape[1]:
        raise ValueError(
            f"{name} has {psf.shape[0]} channels but the images have {images.shape[1]} "
            f"(psf shape {tuple(psf.shape)}, images {tuple(images.shape)})"
        )
    if psf.shape[-2] > images.shape[-2] or psf.shape[-1] > images.shape[-1]:
        raise ValueError(
            f"{name} of {psf.shape[-2]} x {psf.shape[-1]} pixels is larger than the images "
            f"({images.shape[-2]} x {images.shape[-1]}); it cannot be the PSF of this camera"
        )
    if not bool(torch.isfinite(psf).all()):
        raise ValueError(f"{name} has non-finite values (nan or inf)")
    if bool((psf < 0).any()):
        raise ValueError(f"{name} has negative values (min {float(psf.min()):.3g}); a PSF is >= 0")
    sums = psf.sum(dim=(-2, -1))
    if bool((sums <= 0).any()):
        raise ValueError(f"{name} has a channel summing to zero: sums {sums.tolist()}")
    return psf


def camera_psf(camera: nn.Module) -> Tensor:
    """The PSF ``3 x K x K`` a non-blind attacker knows for ``camera`` (detached).

    Raises ``ValueError`` for a camera without a shift-invariant PSF (:class:`LowResCamera`,
    whose ``psf()`` returns ``None``), for :class:`IdentityCamera` (no blur to undo) and for
    anything without a ``psf()`` method or whose PSF is not ``3 x K x K``.
    """
    name = type(camera).__name__
    if isinstance(camera, IdentityCamera):
        raise ValueError(
            f"a non-blind deconvolution attack needs a camera with a PSF; {name} (no lens) "
            "records the scene itself"
        )
    if isinstance(camera, LowResCamera) or not callable(getattr(camera, "psf", None)):
        raise ValueError(
            f"a non-blind deconvolution attack needs a camera with a shift-invariant PSF; "
            f"{name} has none (use the learned attack for it)"
        )
    with torch.no_grad():
        psf = camera.psf()
    if psf is None:
        raise ValueError(f"a non-blind deconvolution attack needs a PSF; {name}.psf() is None")
    psf = psf.detach()
    if psf.dim() != 3 or psf.shape[0] != 3 or psf.shape[-1] * psf.shape[-2] <= 1:
        raise ValueError(
            f"{name}.psf() must be a 3 x K x K blur kernel, got shape {tuple(psf.shape)}"
        )
    return psf


def _check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# --------------------------------------------------------------------------- spectra
def transfer_function(kernel: Tensor, shape: tuple[int, int]) -> Tensor:
    """``rfft2`` of ``kernel`` (``C x Kh x Kw``) zero padded to ``shape`` with its centre
    ``(Kh // 2, Kw // 2)`` rolled to index ``(0, 0)``: ``C x Ph x (Pw // 2 + 1)`` complex.

    The same placement as :func:`privcap.optics.fft_convolve` and as scikit-image's
    ``uft.ir2tf``.
    """
    kh, kw = kernel.shape[-2:]
    padded = kernel.new_zeros(kernel.shape[:-2] + tuple(shape))
    padded[..., :kh, :kw] = kernel
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)


def _laplacian(dtype: torch.dtype, device: torch.device) -> Tensor:
    lap = torch.zeros(1, 3, 3, dtype=dtype, device=device)
    lap[0, 1, :] = -1.0
    lap[0, :, 1] = -1.0
    lap[0, 1, 1] = 4.0
    return lap


def _grid(images: Tensor, psf: Tensor, boundary: str) -> tuple[int, int]:
    if boundary == "circular":
        return (images.shape[-2], images.shape[-1])
    return padded_shape(tuple(images.shape[-2:]), tuple(psf.shape[-2:]))


def _work_dtype(images: Tensor) -> torch.dtype:
    return torch.promote_types(images.dtype, torch.float32)


def _check_nsr(nsr: Any) -> float:
    if isinstance(nsr, bool) or not isinstance(nsr, (int, float)) or not (
        math.isfinite(nsr) and nsr > 0
    ):
        raise ValueError(f"nsr must be a positive finite number, got {nsr!r}")
    return float(nsr)


def _check_iterations(iterations: Any, name: str = "iterations") -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"{name} must be a positive integer, got {iterations!r}")
    return iterations


# --------------------------------------------------------------------------- Wiener
def wiener(
    sensor: Tensor,
    psf: Tensor,
    nsr: float,
    *,
    regulariser: str = "identity",
    boundary: str = "linear",
    clip: bool = False,
) -> Tensor:
    """Wiener deconvolution of each channel of ``sensor`` by its PSF.

    .. math::
        \\hat X = \\mathcal{F}^{-1}\\left[\\frac{\\overline{T}\\, \\mathcal{F}[Y]}
        {|T|^2 + \\mathrm{nsr}\\, |R|^2}\\right]

    with ``T`` the transfer function of the PSF (Eq. 2's kernel, centre ``K // 2``) and
    ``R = 1`` (``regulariser="identity"``: the classic Wiener filter for white signal and
    noise with a constant noise-to-signal power ratio ``nsr``) or the Laplacian's transfer
    function (``"laplacian"``). See the module docstring for the boundary handling and the
    exact correspondence with ``skimage.restoration.wiener`` (its ``balance`` is ``nsr``).

    Args:
        sensor: private images ``B x C x H x W`` (or ``C x H x W``), finite.
        psf: ``C x K x K`` PSF (non-negative, no larger than the images).
        nsr: noise-to-signal ratio, > 0 (smaller: sharper and noisier).
        regulariser: ``"identity"`` or ``"laplacian"``.
        boundary: ``"linear"`` (zero-padded FFT grid of the forward model) or
            ``"circular"`` (the image's own grid).
        clip: clamp the result to ``[0, 1]``.

    Returns:
        Reconstructions of the same shape as ``sensor``.
    """
    single = isinstance(sensor, Tensor) and sensor.dim() == 3
    y = _check_images(sensor, "sensor")
    check_psf(psf, y)
    nsr = _check_nsr(nsr)
    _check_choice(regulariser, REGULARISERS, "regulariser")
    _check_choice(boundary, BOUNDARIES, "boundary")
    dtype = _work_dtype(y)
    h, w = y.shape[-2:]
    shape = _grid(y, psf, boundary)
    spec_h = transfer_function(psf.to(device=y.device, dtype=dtype), shape)
    if regulariser == "identity":
        penalty = nsr
    else:
        penalty = nsr * transfer_function(_laplacian(dtype, y.device), shape).abs().square()
    filt = spec_h.conj() / (spec_h.abs().square() + penalty)
    out = torch.empty(y.shape, dtype=dtype, device=y.device)
    for start in range(0, y.shape[0], _CHUNK_IMAGES):
        part = y[start : start + _CHUNK_IMAGES].to(dtype)
        spec = torch.fft.rfft2(part, s=shape) * filt
        out[start : start + _CHUNK_IMAGES] = torch.fft.irfft2(spec, s=shape)[..., :h, :w]
    if clip:
        out.clamp_(0.0, 1.0)
    out = out.to(y.dtype)
    return out[0] if single else out


# --------------------------------------------------------------------------- Richardson-Lucy
def _odd_kernel(psf: Tensor) -> Tensor:
    """``psf`` with a zero row / column appended where its size is even (centre unchanged)."""
    kh, kw = psf.shape[-2:]
    return torch.nn.functional.pad(psf, (0, 1 - kw % 2, 0, 1 - kh % 2))


def _rl_steps(sensor: Tensor, psf: Tensor, iterations: int) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(n, estimate after n iterations)`` for n = 1..iterations (estimates are
    updated in place: copy what you keep). ``sensor`` is one chunk ``b x C x H x W``."""
    dtype = _work_dtype(sensor)
    y = sensor.to(dtype)
    h, w = y.shape[-2:]
    shape = padded_shape((h, w), tuple(psf.shape[-2:]))
    spec_h = transfer_function(psf.to(device=y.device, dtype=dtype), shape)
    spec_h_conj = spec_h.conj()

    def forward(x: Tensor) -> Tensor:  # H * x, exactly privcap's fft_convolve
        return torch.fft.irfft2(torch.fft.rfft2(x, s=shape) * spec_h, s=shape)[..., :h, :w]

    def adjoint(r: Tensor) -> Tensor:  # H^T r: correlation, same centre
        return torch.fft.irfft2(torch.fft.rfft2(r, s=shape) * spec_h_conj, s=shape)[..., :h, :w]

    estimate = torch.full_like(y, 0.5)
    for n in range(1, iterations + 1):
        relative = y / (forward(estimate) + RL_EPS)
        estimate.mul_(adjoint(relative))
        yield n, estimate


def richardson_lucy(sensor: Tensor, psf: Tensor, iterations: int, *, clip: bool = False
                    ) -> Tensor:
    """Richardson-Lucy deconvolution of each channel of ``sensor`` by its PSF.

    ``x_{n+1} = x_n (H^T (y / (H x_n + 1e-12)))`` from ``x_0 = 0.5``, with ``H`` privcap's
    forward convolution (zero padding, kernel centre ``K // 2``) and ``H^T`` its exact
    adjoint. The PSF is used as given (every camera's sums to 1 per channel, which keeps the
    total intensity). See the module docstring for the exact
    correspondence with ``skimage.restoration.richardson_lucy``.

    Args:
        sensor: private images ``B x C x H x W`` (or ``C x H x W``), finite.
        psf: ``C x K x K`` non-negative PSF, no larger than the images.
        iterations: number of iterations (>= 1); more: sharper and noisier.
        clip: clamp the result to ``[0, 1]``.
    """
    single = isinstance(sensor, Tensor) and sensor.dim() == 3
    y = _check_images(sensor, "sensor")
    check_psf(psf, y)
    iterations = _check_iterations(iterations)
    out = torch.empty(y.shape, dtype=_work_dtype(y), device=y.device)
    for start in range(0, y.shape[0], _CHUNK_IMAGES):
        chunk = y[start : start + _CHUNK_IMAGES]
        for n, estimate in _rl_steps(chunk, psf, iterations):
            if n == iterations:
                out[start : start + _CHUNK_IMAGES] = estimate
    if clip:
        out.clamp_(0.0, 1.0)
    out = out.to(y.dtype)
    return out[0] if single else out


# --------------------------------------------------------------------------- tuning
def _scores(restored: Tensor, originals: Tensor) -> tuple[Tensor, Tensor]:
    restored = restored.clamp(0.0, 1.0).to(originals.dtype)
    return ssim(restored, originals), psnr(restored, originals)


def _row(name: str, value: Any, ssims: Tensor, psnrs: Tensor) -> dict[str, Any]:
    ssims, psnrs = ssims.double(), psnrs.double()
    return {
        name: value,
        "ssim_mean": float(ssims.mean()),
        "ssim_std": float(ssims.std(unbiased=False)),
        "psnr_mean": float(psnrs.mean()),
    }


def _best(table: list[dict[str, Any]], name: str) -> Any:
    """Parameter of the row with the highest mean SSIM (the first one on a tie)."""
    best = max(range(len(table)), key=lambda i: (table[i]["ssim_mean"], -i))
    return table[best][name]


def tune_wiener(
    private: Tensor,
    originals: Tensor,
    psf: Tensor,
    candidates: Sequence[float] = DEFAULT_NSR_CANDIDATES,
    *,
    regulariser: str = "identity",
    boundary: str = "linear",
) -> tuple[float, list[dict[str, Any]]]:
    """The attacker's choice of ``nsr`` for :func:`wiener`: the candidate with the highest
    mean SSIM between the (clipped) reconstructions of ``private`` and ``originals``.

    ``private`` / ``originals`` are the attacker's own tuning pairs (``B x 3 x H x W``),
    which must be disjoint from the images the attack is evaluated on.

    Returns:
        ``(best_nsr, table)``; ``table`` has one row per candidate, in the given order:
        ``{"nsr", "ssim_mean", "ssim_std", "psnr_mean"}``.
    """
    y, x = check_pairs(private, originals)
    check_psf(psf, y)
    values = [_check_nsr(c) for c in _as_candidates(candidates, "candidates")]
    table = []
    for nsr in values:
        restored = wiener(y, psf, nsr, regulariser=regulariser, boundary=boundary)
        table.append(_row("nsr", nsr, *_scores(restored, x)))
    return _best(table, "nsr"), table


def tune_richardson_lucy(
    private: Tensor,
    originals: Tensor,
    psf: Tensor,
    iterations: Sequence[int] = DEFAULT_RL_ITERATIONS,
) -> tuple[int, list[dict[str, Any]]]:
    """The attacker's choice of the number of Richardson-Lucy iterations: the count with
    the highest mean SSIM on its tuning pairs (clipped reconstructions). One run up to the
    largest count scores every requested count on the way.

    Returns:
        ``(best_iterations, table)``; rows ``{"iterations", "ssim_mean", "ssim_std",
        "psnr_mean"}`` in the given order.
    """
    y, x = check_pairs(private, originals)
    check_psf(psf, y)
    counts = [_check_iterations(n, "each entry of iterations")
              for n in _as_candidates(iterations, "iterations")]
    wanted = set(counts)
    ssims: dict[int, list[Tensor]] = {n: [] for n in wanted}
    psnrs: dict[int, list[Tensor]] = {n: [] for n in wanted}
    for start in range(0, y.shape[0], _CHUNK_IMAGES):
        chunk_x = x[start : start + _CHUNK_IMAGES]
        for n, estimate in _rl_steps(y[start : start + _CHUNK_IMAGES], psf, max(counts)):
            if n in wanted:
                s, p = _scores(estimate, chunk_x)
                ssims[n].append(s)
                psnrs[n].append(p)
    table = [_row("iterations", n, torch.cat(ssims[n]), torch.cat(psnrs[n])) for n in counts]
    return _best(table, "iterations"), table


def _as_candidates(values: Any, name: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence, got {values!r}")
    return list(values)
