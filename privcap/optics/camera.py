"""Cameras: scene ``B x 3 x H x W`` in [0, 1] -> sensor image (paper Eq. 2).

    X_hat_l = S_l(H_lambda * X_l) + N_l,   l in {R, G, B}

* :class:`LensCamera` -- the learned Zernike lens: PSF of Eq. 1 (:class:`FresnelPSF`), FFT
  convolution with zero padding (:func:`fft_convolve`), camera response ``S`` and Gaussian
  read noise ``N``;
* :class:`DefocusCamera` -- the same optics with only Z4 learnable (baseline of Table 1);
* :class:`LowResCamera` -- a small sensor (16 x 16 for 256-pixel scenes) by exact area
  integration, upsampled back to the scene size for the captioner (baseline);
* :class:`IdentityCamera` -- no lens, the clean scene ("Proposed-w" in Table 1).

Inputs: ``B x 3 x H x W`` floating tensors; a single ``3 x H x W`` image gets a batch
dimension; grey images (``B x 1 x H x W`` or ``1 x H x W``) are replicated on R, G and B
(equal energy in the three bands, each then blurred by its own PSF). Anything else raises
``ValueError``.

Noise: the standard deviation is drawn once per batch, uniformly in ``noise_sigma_range``,
while the module is training; in evaluation mode no noise is added unless
``noise_in_eval`` is set (or ``noise_sigma`` is passed to ``forward``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from privcap.optics.config import OpticsConfig
from privcap.optics.convolution import fft_convolve
from privcap.optics.lens import Lens
from privcap.optics.psf import FresnelPSF
from privcap.optics.sensor import area_matrix

__all__ = [
    "as_rgb_batch",
    "CameraResponse",
    "LensCamera",
    "DefocusCamera",
    "LowResCamera",
    "IdentityCamera",
]

RESPONSES = ("identity", "clip", "gamma")
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def as_rgb_batch(images: torch.Tensor) -> torch.Tensor:
    """``B x 3 x H x W`` view of ``images`` (see the module docstring for the conversions)."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a floating tensor with values in [0, 1], got dtype {images.dtype}"
            " (convert uint8 images with images.float() / 255)"
        )
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "images must be B x 3 x H x W (or 3 x H x W, or grey B x 1 x H x W), "
            f"got shape {tuple(images.shape)}"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


class CameraResponse(nn.Module):
    """Camera response ``S`` of Eq. 2: ``"identity"``, ``"clip"`` (to [0, 1]) or ``"gamma"``
    (clip, then ``x^(1/gamma)``; the clip floor is ``1e-6`` so the gradient stays finite)."""

    def __init__(self, kind: str = "identity", gamma: float = 2.2) -> None:
        super().__init__()
        if kind not in RESPONSES:
            raise ValueError(f"response must be one of {RESPONSES}, got {kind!r}")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.kind = kind
        self.gamma = float(gamma)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", gamma={self.gamma}" if self.kind == "gamma" else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return x
        if self.kind == "clip":
            return x.clamp(0.0, 1.0)
        return x.clamp(1e-6, 1.0).pow(1.0 / self.gamma)


class _SensorCamera(nn.Module):
    """Shared response + read-noise logic."""

    def __init__(
        self,
        response: str = "identity",
        gamma: float = 2.2,
        noise_sigma_range: tuple[float, float] = (0.0, 0.0),
        noise_in_eval: bool = False,
    ) -> None:
        super().__init__()
        lo, hi = (float(v) for v in noise_sigma_range)
        if not 0.0 <= lo <= hi:
            raise ValueError(
                f"noise_sigma_range must be (low, high) with 0 <= low <= high, "
                f"got {noise_sigma_range!r}"
            )
        self.response = CameraResponse(response, gamma)
        self.noise_sigma_range = (lo, hi)
        self.noise_in_eval = bool(noise_in_eval)

    def noise_sigma(self) -> float:
        """Standard deviation for the next batch (0 when no noise applies)."""
        if not (self.training or self.noise_in_eval):
            return 0.0
        lo, hi = self.noise_sigma_range
        return lo + (hi - lo) * float(torch.rand(()))

    def add_noise(self, x: torch.Tensor, noise_sigma: float | None = None) -> torch.Tensor:
        sigma = self.noise_sigma() if noise_sigma is None else float(noise_sigma)
        if sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {sigma}")
        if sigma == 0.0:
            return x
        return x + sigma * torch.randn_like(x)


class LensCamera(_SensorCamera):
    """Camera with a learnable Zernike lens (Eqs. 1-2).

    Parameters
    ----------
    config:
        optics geometry (default :meth:`OpticsConfig.quick`).
    trainable:
        which coefficients learn: ``"all"`` (default), ``"z4"``, ``"none"`` or Noll indices.
    init_coefficients_um:
        starting coefficients (default: Z4 = ``config.z4_init_um``, the rest 0).
    response, gamma:
        camera response ``S`` (:class:`CameraResponse`).
    noise_sigma_range:
        per-batch read-noise range while training (default ``config.noise_sigma_range``).
    noise_in_eval:
        also add noise in evaluation mode.

    The learnable coefficients live in ``camera.lens`` (see :class:`Lens`; for an optimiser,
    ``camera.lens.parameter_groups(lr, defocus_lr)``). In evaluation (no gradient), the PSF is
    computed once and reused until a coefficient changes.
    """

    def __init__(
        self,
        config: OpticsConfig | None = None,
        trainable: str | Iterable[int] = "all",
        init_coefficients_um: Sequence[float] | torch.Tensor | None = None,
        response: str = "identity",
        gamma: float = 2.2,
        noise_sigma_range: tuple[float, float] | None = None,
        noise_in_eval: bool = False,
    ) -> None:
        config = OpticsConfig.quick() if config is None else config
        if len(config.wavelengths_m) != 3:
            raise ValueError(
                f"a camera needs 3 wavelengths (R, G, B), got {config.wavelengths_m!r}"
            )
        super().__init__(
            response,
            gamma,
            config.noise_sigma_range if noise_sigma_range is None else noise_sigma_range,
            noise_in_eval,
        )
        self.config = config
        self.lens = Lens(config, trainable=trainable, init_coefficients_um=init_coefficients_um)
        self.optics = FresnelPSF(config)
        self._psf_cache: tuple[tuple, torch.Tensor] | None = None

    def psf(self) -> torch.Tensor:
        """The RGB PSF ``3 x K x K`` (each channel sums to 1), differentiable."""
        return self.optics(self.lens)

    def _psf_for_forward(self) -> torch.Tensor:
        """The PSF, reused between calls while gradients are off and the lens is unchanged."""
        if torch.is_grad_enabled():
            self._psf_cache = None
            return self.psf()
        key = self.lens.state_version()
        if self._psf_cache is None or self._psf_cache[0] != key:
            self._psf_cache = (key, self.psf())
        return self._psf_cache[1]

    def forward_with_psf(
        self, images: torch.Tensor, noise_sigma: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sensor image ``S(H * X) + N`` (``B x 3 x H x W``) and the PSF ``H`` (``3 x K x K``)
        it was made with: one PSF evaluation serves the image and a PSF loss (L_H, Eq. 8)."""
        x = as_rgb_batch(images)
        k = self.config.psf_size
        if x.shape[-2] < k or x.shape[-1] < k:
            raise ValueError(
                f"image of {x.shape[-2]} x {x.shape[-1]} pixels is smaller than the PSF support "
                f"({k} x {k}); use images of at least psf_size = {k} pixels"
            )
        psf = self._psf_for_forward()
        y = fft_convolve(x, psf.to(x.dtype))
        return self.add_noise(self.response(y), noise_sigma), psf

    def forward(self, images: torch.Tensor, noise_sigma: float | None = None) -> torch.Tensor:
        """Sensor image ``S(H * X) + N`` of ``images`` (``B x 3 x H x W``, same size)."""
        return self.forward_with_psf(images, noise_sigma)[0]


class DefocusCamera(LensCamera):
    """Defocus baseline: the :class:`LensCamera` optics with only Z4 learnable (other
    coefficients fixed at 0). ``z4_init_um`` defaults to ``config.z4_init_um``."""

    def __init__(
        self, config: OpticsConfig | None = None, z4_init_um: float | None = None, **kwargs
    ) -> None:
        config = OpticsConfig.quick() if config is None else config
        init = torch.zeros(config.num_terms, dtype=torch.float64)
        init[3] = config.z4_init_um if z4_init_um is None else float(z4_init_um)
        super().__init__(config, trainable="z4", init_coefficients_um=init, **kwargs)


class LowResCamera(_SensorCamera):
    """Low-resolution camera: exact area integration onto a small sensor, then upsampling
    back to the scene size.

    ``sensor_size`` (int or ``(h, w)``) fixes the sensor; otherwise each side is divided by
    ``factor`` (default ``config.lowres_factor`` = 16: a 16 x 16 sensor for 256-pixel scenes,
    8 x 8 for 128). Upsampling uses ``torch.nn.functional.interpolate`` with
    ``upsample_mode`` ("nearest", "bilinear" -- default -- or "bicubic"), ``align_corners``
    False and no antialiasing; downsampling never goes through an interpolating resize (a
    torchvision ``Resize`` antialiases or not depending on its version). The low-resolution
    sensor has no shift-invariant PSF: :meth:`psf` returns ``None``.
    """

    def __init__(
        self,
        factor: int | None = None,
        sensor_size: int | tuple[int, int] | None = None,
        upsample_mode: str = "bilinear",
        config: OpticsConfig | None = None,
        response: str = "identity",
        gamma: float = 2.2,
        noise_sigma_range: tuple[float, float] = (0.0, 0.0),
        noise_in_eval: bool = False,
    ) -> None:
        super().__init__(response, gamma, noise_sigma_range, noise_in_eval)
        config = OpticsConfig.quick() if config is None else config
        factor = config.lowres_factor if factor is None else factor
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if sensor_size is not None:
            size = (sensor_size, sensor_size) if isinstance(sensor_size, int) else sensor_size
            if len(size) != 2 or any(int(s) < 1 for s in size):
                raise ValueError(f"sensor_size must be positive, got {sensor_size!r}")
            sensor_size = (int(size[0]), int(size[1]))
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(
                f"upsample_mode must be one of {UPSAMPLE_MODES}, got {upsample_mode!r}"
            )
        self.factor = factor
        self.sensor_size = sensor_size
        self.upsample_mode = upsample_mode

    def extra_repr(self) -> str:
        size = self.sensor_size if self.sensor_size else f"image / {self.factor}"
        return f"sensor={size}, upsample_mode={self.upsample_mode!r}"

    def psf(self) -> None:
        """No shift-invariant PSF for a low-resolution sensor."""
        return None

    def sensor_shape(self, height: int, width: int) -> tuple[int, int]:
        """Sensor pixels for a scene of ``height x width``."""
        if self.sensor_size is not None:
            sh, sw = self.sensor_size
        else:
            sh, sw = max(height // self.factor, 1), max(width // self.factor, 1)
        if sh > height or sw > width:
            raise ValueError(f"sensor {sh} x {sw} is larger than the image {height} x {width}")
        return sh, sw

    def sensor(self, images: torch.Tensor, noise_sigma: float | None = None) -> torch.Tensor:
        """The low-resolution sensor image ``B x 3 x h x w`` (response and noise applied)."""
        x = as_rgb_batch(images)
        h, w = x.shape[-2:]
        sh, sw = self.sensor_shape(h, w)
        ah = area_matrix(h, sh, x.dtype).to(x.device)
        aw = area_matrix(w, sw, x.dtype).to(x.device)
        low = ah @ x @ aw.transpose(0, 1)
        return self.add_noise(self.response(low), noise_sigma)

    def forward(self, images: torch.Tensor, noise_sigma: float | None = None) -> torch.Tensor:
        """Sensor image upsampled back to the scene size ``B x 3 x H x W``."""
        x = as_rgb_batch(images)
        low = self.sensor(x, noise_sigma)
        kwargs = {} if self.upsample_mode == "nearest" else {"align_corners": False}
        return F.interpolate(
            low, size=tuple(x.shape[-2:]), mode=self.upsample_mode, antialias=False, **kwargs
        )


class IdentityCamera(nn.Module):
    """No lens: the sensor sees the clean scene (grey images are replicated to RGB)."""

    def psf(self) -> torch.Tensor:
        """The identity kernel, ``3 x 1 x 1`` ones."""
        return torch.ones(3, 1, 1)

    def forward(self, images: torch.Tensor, noise_sigma: float | None = None) -> torch.Tensor:
        if noise_sigma:
            raise ValueError(f"IdentityCamera adds no noise, got noise_sigma={noise_sigma}")
        return as_rgb_batch(images)
