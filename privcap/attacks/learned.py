"""A learned blind restorer of private images, in the spirit of DeblurGAN-v2 (paper Fig. 3).

The attacker owns the camera: it records pairs (private image, original scene) and trains
a network to map the first to the second, with no knowledge of the PSF (a *blind* attack,
which also applies to cameras without a PSF, such as the low-resolution sensor).

Architecture (Kupyn et al. 2019, "DeblurGAN-v2", scaled down for a CPU):

* **generator** (:class:`RestorerGenerator`) -- an ImageNet MobileNetV2 encoder (torchvision's
  weights, offline, :mod:`privcap.captioning.weights`) cut into its five resolution stages
  (strides 2 to 32; 16, 24, 32, 96, 320 channels). The first ``5 - trainable_stages``
  stages stay frozen; BatchNorm statistics are frozen everywhere. A U-Net-like decoder
  upsamples (bilinear) and fuses each skip, down to a full-resolution head fed by the input
  itself, and predicts a *residual*: ``restored = private + G(private)``;
* **content loss** -- L1 (or MSE) between restored and original images;
* **perceptual loss** (:class:`PerceptualLoss`) -- mean absolute difference of the features
  of a separate, frozen ImageNet MobileNetV2 at three depths (strides 2, 4, 8);
* **adversarial loss** -- a small PatchGAN discriminator (:class:`PatchDiscriminator`,
  three stride-2 convolutions, one score per patch) trained with the least-squares (LSGAN)
  objective; the generator minimises ``mean((D(restored) - 1)^2)``.

The generator minimises ``w_c L_content + w_p L_perceptual + w_a L_adv`` (the three weights
are arguments of :func:`train_restorer`). It is fully convolutional: it trains on random
aligned crops of the pairs (``crop_size``) and restores whole images of any size.

Competence control (:func:`competence_control`): the same attacker, trained the same way on
a mild Gaussian blur (``sigma = 1.5`` px) of the same kind of images, must restore held-out
images to SSIM >= 0.8 (:data:`CONTROL_SSIM_THRESHOLD`); a low score on a privacy camera then
means privacy, not a weak attacker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privcap.attacks.deconvolution import check_pairs
from privcap.captioning.weights import load_mobilenet_v2_state_dict
from privcap.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from privcap.metrics import psnr, ssim

__all__ = [
    "CONTENT_LOSSES",
    "CONTROL_SSIM_THRESHOLD",
    "MOBILENET_STAGES",
    "PatchDiscriminator",
    "PerceptualLoss",
    "RestorerGenerator",
    "augment_crops",
    "competence_control",
    "discriminator_loss",
    "gaussian_blur",
    "generator_loss_terms",
    "restore",
    "split_pairs",
    "train_restorer",
]

#: ``features[a:b]`` of torchvision's MobileNetV2 for each resolution stage (stride 2..32)
MOBILENET_STAGES: tuple[tuple[int, int], ...] = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 18))
#: output channels of those stages
STAGE_CHANNELS: tuple[int, ...] = (16, 24, 32, 96, 320)
#: ``features`` indices after which :class:`PerceptualLoss` compares (strides 2, 4, 8)
PERCEPTUAL_LAYERS: tuple[int, ...] = (1, 3, 6)
CONTENT_LOSSES: tuple[str, ...] = ("l1", "mse")
#: the SSIM a competent attacker reaches on a mild blur (held-out images)
CONTROL_SSIM_THRESHOLD = 0.8
#: Gaussian blur of the competence control, pixels
CONTROL_SIGMA_PX = 1.5


# --------------------------------------------------------------------------- networks
def _mobilenet_features(pretrained: bool, weights_path: str | None) -> nn.Sequential:
    import torchvision  # here: importing torchvision takes seconds

    model = torchvision.models.mobilenet_v2(weights=None)
    if pretrained:
        model.load_state_dict(load_mobilenet_v2_state_dict(weights_path))
    return model.features


class _ImageNetNormalise(nn.Module):
    """``[0, 1]`` RGB -> ImageNet-standardised input of the pretrained MobileNetV2."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))


class RestorerGenerator(nn.Module):
    """Encoder-decoder generator: MobileNetV2 stages + U-Net decoder + residual output.

    Args:
        trainable_stages: how many of the encoder's last stages learn (0..5); the others,
            and every BatchNorm's statistics, stay frozen.
        decoder_channels: channels of the decoder at strides 16, 8, 4, 2 and 1 (five ints).
        pretrained: load the ImageNet weights (offline); ``False`` only for tests.
        weights_path: explicit MobileNetV2 weights file.
    """

    def __init__(
        self,
        trainable_stages: int = 3,
        decoder_channels: Sequence[int] = (64, 48, 32, 24, 16),
        pretrained: bool = True,
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(trainable_stages, bool) or trainable_stages not in range(6):
            raise ValueError(f"trainable_stages must be 0..5, got {trainable_stages!r}")
        dec = [int(c) for c in decoder_channels]
        if len(dec) != 5 or any(c < 1 for c in dec):
            raise ValueError(f"decoder_channels must be 5 positive ints, got {decoder_channels!r}")
        self.trainable_stages = trainable_stages
        self.decoder_channels = tuple(dec)
        feats = _mobilenet_features(pretrained, weights_path)
        self.normalise = _ImageNetNormalise()
        self.stages = nn.ModuleList(
            nn.Sequential(*[feats[i] for i in range(a, b)]) for a, b in MOBILENET_STAGES
        )
        for k, stage in enumerate(self.stages):
            stage.requires_grad_(k >= len(self.stages) - trainable_stages)
        # decoder: from stride 32 up to stride 1; skips of strides 16, 8, 4, 2 and the head
        skips = list(STAGE_CHANNELS[3::-1])  # 96, 32, 24, 16
        self.head = _conv(3, dec[4])
        blocks = []
        c_prev = STAGE_CHANNELS[4]
        for c_skip, c_out in zip(skips, dec[:4], strict=True):
            blocks.append(nn.Sequential(_conv(c_prev + c_skip, c_out), _conv(c_out, c_out)))
            c_prev = c_out
        blocks.append(_conv(c_prev + dec[4], dec[4]))  # full resolution: one convolution
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(dec[4], 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity map: restored = private
        nn.init.zeros_(self.out.bias)

    def train(self, mode: bool = True) -> RestorerGenerator:
        super().train(mode)
        for module in self.stages.modules():  # frozen BatchNorm statistics
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """``restored = x + G(x)`` for private images ``x`` (``B x 3 x H x W`` in [0, 1])."""
        feats = []
        h = self.normalise(x)
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        skips = feats[3::-1] + [self.head(x)]
        h = feats[4]
        for block, skip in zip(self.blocks, skips, strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return x + self.out(h)


class PatchDiscriminator(nn.Module):
    """Small PatchGAN: three stride-2 4 x 4 convolutions and a 3 x 3 score map (LSGAN).

    Each output value judges one patch (receptive field 46 pixels) as real or restored.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                       nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2.0 * x - 1.0)


class PerceptualLoss(nn.Module):
    """Mean absolute difference of frozen ImageNet MobileNetV2 features (strides 2, 4, 8),
    averaged over the three depths. The network is frozen (no gradient to its weights) and
    always in evaluation mode; gradients flow to the restored image."""

    def __init__(self, pretrained: bool = True, weights_path: str | None = None) -> None:
        super().__init__()
        feats = _mobilenet_features(pretrained, weights_path)
        self.normalise = _ImageNetNormalise()
        self.features = nn.Sequential(*[feats[i] for i in range(max(PERCEPTUAL_LAYERS) + 1)])
        self.features.requires_grad_(False)
        self.features.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()
        return self

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        h = self.normalise(x)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in PERCEPTUAL_LAYERS:
                out.append(h)
        return out

    def forward(self, restored: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_feats = self._taps(target)
        terms = [
            (a - b).abs().mean()
            for a, b in zip(self._taps(restored), target_feats, strict=True)
        ]
        return torch.stack(terms).mean()


# --------------------------------------------------------------------------- losses
def _content(restored: Tensor, target: Tensor, kind: str) -> Tensor:
    if kind == "l1":
        return (restored - target).abs().mean()
    return (restored - target).square().mean()


def generator_loss_terms(
    restored: Tensor,
    originals: Tensor,
    perceptual: PerceptualLoss,
    discriminator: nn.Module,
    content_loss: str = "l1",
) -> dict[str, Tensor]:
    """The three generator loss terms of one batch of restored images, unweighted:
    ``{"content", "perceptual", "adversarial"}``; the adversarial term is the LSGAN
    generator loss ``mean((D(restored) - 1)^2)``."""
    if content_loss not in CONTENT_LOSSES:
        raise ValueError(f"content_loss must be one of {CONTENT_LOSSES}, got {content_loss!r}")
    return {
        "content": _content(restored, originals, content_loss),
        "perceptual": perceptual(restored, originals),
        "adversarial": (discriminator(restored) - 1.0).square().mean(),
    }


def discriminator_loss(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN discriminator loss ``(mean((D(real) - 1)^2) + mean(D(fake)^2)) / 2``."""
    return 0.5 * (
        (discriminator(real) - 1.0).square().mean() + discriminator(fake.detach()).square().mean()
    )


# --------------------------------------------------------------------------- data helpers
def split_pairs(n: int, ratio: float = 2 / 3, seed: int = 0) -> tuple[list[int], list[int]]:
    """Random train / test split of ``n`` pairs, ``round(ratio * n)`` for training (the
    paper: 2,103 / 1,111 images, about 2:1). Both parts are non-empty and sorted."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (one pair to train, one to test), got {n!r}")
    if not (isinstance(ratio, (int, float)) and 0 < ratio < 1):
        raise ValueError(f"ratio must be in (0, 1), got {ratio!r}")
    n_train = min(max(round(ratio * n), 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).tolist()
    return sorted(order[:n_train]), sorted(order[n_train:])


def gaussian_blur(images: Tensor, sigma_px: float = CONTROL_SIGMA_PX) -> Tensor:
    """The competence control's mild blur (``B x C x H x W``): the project's Gaussian blur
    (:func:`privcap.privacy.blur.gaussian_blur`: taps to ``4 sigma``, reflected borders),
    refused for ``sigma_px <= 0`` and for images smaller than the kernel.

    It does not darken the borders (unlike a camera, whose scene is zero outside the field
    of view).
    """
    from privcap.privacy.blur import TRUNCATE
    from privcap.privacy.blur import gaussian_blur as blur

    if not (isinstance(sigma_px, (int, float)) and math.isfinite(sigma_px) and sigma_px > 0):
        raise ValueError(f"sigma_px must be a positive number, got {sigma_px!r}")
    radius = max(1, int(TRUNCATE * sigma_px + 0.5))
    if radius >= min(images.shape[-2:]):
        raise ValueError(f"images of {tuple(images.shape[-2:])} are too small for sigma "
                         f"{sigma_px}")
    return blur(images, float(sigma_px))


def augment_crops(
    images: Sequence[Tensor], size: int, crops_per_image: int, seed: int = 0,
    max_scale: float = 1.5,
) -> Tensor:
    """Random ``size x size`` crops of ``3 x H x W`` images of any size: each image is
    resized (bilinear, antialiased) so that its shorter side is ``size * s`` with ``s``
    uniform in ``[1, max_scale]``, then cropped at a random position; ``crops_per_image``
    crops per image. Returns ``N x 3 x size x size``."""
    if not images:
        raise ValueError("augment_crops needs at least one image")
    if crops_per_image < 1 or size < 1 or not max_scale >= 1:
        raise ValueError(
            f"need size >= 1, crops_per_image >= 1, max_scale >= 1; got {size}, "
            f"{crops_per_image}, {max_scale}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for k, img in enumerate(images):
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"image {k} must be 3 x H x W, got {tuple(img.shape)}")
        for _ in range(crops_per_image):
            s = 1.0 + (max_scale - 1.0) * float(torch.rand((), generator=gen))
            scale = size * s / min(img.shape[-2:])
            hh = max(size, round(img.shape[-2] * scale))
            ww = max(size, round(img.shape[-1] * scale))
            big = F.interpolate(img[None], size=(hh, ww), mode="bilinear",
                                align_corners=False, antialias=True)[0]
            top = int(torch.randint(0, hh - size + 1, (), generator=gen))
            left = int(torch.randint(0, ww - size + 1, (), generator=gen))
            out.append(big[:, top : top + size, left : left + size].clamp(0.0, 1.0))
    return torch.stack(out)


def _random_crops(x: Tensor, y: Tensor, size: int | None, gen: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """The same random crop of each pair (aligned); ``size=None`` keeps the whole images."""
    if size is None or (size >= x.shape[-2] and size >= x.shape[-1]):
        return x, y
    b, _, h, w = x.shape
    tops = torch.randint(0, h - size + 1, (b,), generator=gen).tolist()
    lefts = torch.randint(0, w - size + 1, (b,), generator=gen).tolist()
    xs = torch.stack([x[i, :, t : t + size, s : s + size] for i, (t, s) in
                      enumerate(zip(tops, lefts, strict=True))])
    ys = torch.stack([y[i, :, t : t + size, s : s + size] for i, (t, s) in
                      enumerate(zip(tops, lefts, strict=True))])
    return xs, ys


# --------------------------------------------------------------------------- training
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def train_restorer(
    private: Tensor,
    originals: Tensor,
    *,
    epochs: int = 8,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    content_weight: float = 1.0,
    perceptual_weight: float = 0.1,
    adversarial_weight: float = 0.005,
    content_loss: str = "l1",
    crop_size: int | None = 64,
    trainable_stages: int = 3,
    encoder_lr_factor: float = 0.1,
    decoder_channels: Sequence[int] = (64, 48, 32, 24, 16),
    pretrained: bool = True,
    weights_path: str | None = None,
    progress: bool = True,
) -> tuple[RestorerGenerator, list[dict[str, float]]]:
    """Train the blind restorer on pairs ``(private, originals)`` (``B x 3 x H x W``).

    Adam (betas 0.5, 0.999) for generator and discriminator, learning rate ``lr`` (the
    encoder's trainable stages ``lr * encoder_lr_factor``) with a cosine decay to 1/10 over
    the run; each step draws a batch of aligned random ``crop_size`` crops (``None``: whole
    images), updates the discriminator (LSGAN) and then the generator on
    ``content_weight * L_content + perceptual_weight * L_perceptual + adversarial_weight *
    L_adv``. Deterministic for a given ``seed`` on one thread.

    Returns:
        ``(generator, history)``: the trained generator in evaluation mode and one dict per
        epoch with the mean ``content``, ``perceptual``, ``adversarial``, ``generator``
        (weighted total) and ``discriminator`` losses and the elapsed ``seconds``. A term
        whose weight is zero is neither computed nor logged (nor the discriminator when
        ``adversarial_weight`` is zero).
    """
    x, y = check_pairs(private, originals)
    if x.shape[1] != 3:
        raise ValueError(f"images must be RGB (3 channels), got shape {tuple(x.shape)}")
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    weights = {
        "content": _non_negative(content_weight, "content_weight"),
        "perceptual": _non_negative(perceptual_weight, "perceptual_weight"),
        "adversarial": _non_negative(adversarial_weight, "adversarial_weight"),
    }
    if not any(weights.values()):
        raise ValueError("at least one loss weight must be positive")
    if content_loss not in CONTENT_LOSSES:
        raise ValueError(f"content_loss must be one of {CONTENT_LOSSES}, got {content_loss!r}")
    if crop_size is not None:
        crop_size = _positive_int(crop_size, "crop_size")
        if crop_size < 32:
            raise ValueError(f"crop_size must be >= 32 pixels (five stride-2 stages), got "
                             f"{crop_size}")
    x, y = x.float(), y.float()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = RestorerGenerator(trainable_stages, decoder_channels, pretrained,
                                      weights_path)
        discriminator = PatchDiscriminator()
        perceptual = PerceptualLoss(pretrained, weights_path)
    encoder_params = [p for p in generator.stages.parameters() if p.requires_grad]
    encoder_ids = {id(p) for p in encoder_params}
    decoder_params = [p for p in generator.parameters()
                      if p.requires_grad and id(p) not in encoder_ids]
    groups = [{"params": decoder_params, "lr": lr}]
    if encoder_params:
        groups.append({"params": encoder_params, "lr": lr * encoder_lr_factor})
    opt_g = torch.optim.Adam(groups, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    steps_per_epoch = math.ceil(x.shape[0] / batch_size)
    total_steps = epochs * steps_per_epoch
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total_steps))
        )
        for opt in ([opt_g, opt_d] if weights["adversarial"] > 0 else [opt_g])
    ]
    logged = ["content"] + [k for k in ("perceptual", "adversarial") if weights[k] > 0]
    logged += ["generator"] + (["discriminator"] if weights["adversarial"] > 0 else [])
    gen = torch.Generator().manual_seed(int(seed) + 1)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    epoch_iter = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        epoch_iter = tqdm(epoch_iter, desc="restorer", unit="epoch")
    generator.train()
    discriminator.train()
    for epoch in epoch_iter:
        sums = dict.fromkeys(logged, 0.0)
        order = torch.randperm(x.shape[0], generator=gen)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb, yb = _random_crops(x[idx], y[idx], crop_size, gen)
            restored = generator(xb)
            # discriminator step on the restored images, then the generator against it;
            # a term whose weight is zero is not computed (nor logged)
            terms = {"content": _content(restored, yb, content_loss)}
            if weights["perceptual"] > 0:
                terms["perceptual"] = perceptual(restored, yb)
            if weights["adversarial"] > 0:
                loss_d = discriminator_loss(discriminator, yb, restored.detach())
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                sums["discriminator"] += float(loss_d.detach())
                terms["adversarial"] = (discriminator(restored) - 1.0).square().mean()
            total = sum(weights[k] * terms[k] for k in terms)
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            opt_g.step()
            for k, v in terms.items():
                sums[k] += float(v.detach())
            sums["generator"] += float(total.detach())
            for sched in schedules:
                sched.step()
        row = {"epoch": float(epoch)}
        row.update({k: v / steps_per_epoch for k, v in sums.items()})
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if progress:
            epoch_iter.set_postfix(content=f"{row['content']:.4f}")  # type: ignore[union-attr]
    generator.eval()
    discriminator.zero_grad(set_to_none=True)
    return generator, history


def restore(model: nn.Module, images: Tensor, batch_size: int = 16) -> Tensor:
    """Restored images (``B x 3 x H x W``, clipped to ``[0, 1]``) of private ``images``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a trained restorer (nn.Module), got "
                         f"{type(model).__name__}")
    x, _ = check_pairs(images, images, ("images", "images"))
    if x.shape[1] != 3:
        raise ValueError(f"images must be RGB (3 channels), got shape {tuple(x.shape)}")
    batch_size = _positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            outs.append(model(x[start : start + batch_size].to(dtype)).clamp(0.0, 1.0))
    model.train(was_training)
    out = torch.cat(outs).to(x.dtype)
    return out[0] if images.dim() == 3 else out


# --------------------------------------------------------------------------- control
def competence_control(
    images: Tensor,
    *,
    test_images: Tensor | None = None,
    sigma_px: float = CONTROL_SIGMA_PX,
    ratio: float = 2 / 3,
    seed: int = 0,
    degrade: Callable[[Tensor, str], Tensor] | None = None,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train the restorer on a mild Gaussian blur of ``images`` and score held-out images.

    ``degrade(blurred, part)`` (optional), with ``part`` ``"learned_train"`` or
    ``"control"``, turns the blurred images into what a camera records (read noise, bit
    depth: :class:`privcap.optics.recording.SensorRecording`), so that the control meets
    the same recording as the camera's images.

    The attacker is trained exactly as for a camera (:func:`train_restorer` with
    ``train_kwargs``), on pairs ``(gaussian_blur(x, sigma_px), x)``. Held out: ``test_images``
    when given (then all of ``images`` train), otherwise a :func:`split_pairs` split of
    ``images`` (``ratio`` for training).

    Returns:
        a JSON-friendly dict: ``sigma_px``, ``n_train``, ``n_test``, ``ssim_blurred_mean``
        / ``ssim_restored_mean`` (and ``_std``), ``psnr_blurred_mean`` /
        ``psnr_restored_mean``, ``train_seconds``, ``passed`` (restored SSIM >=
        :data:`CONTROL_SSIM_THRESHOLD`), ``threshold`` and the training ``history``.
    """
    x, _ = check_pairs(images, images, ("images", "images"))
    if test_images is None:
        train_idx, test_idx = split_pairs(x.shape[0], ratio, seed)
        train, test = x[train_idx], x[test_idx]
    else:
        test, _ = check_pairs(test_images, test_images, ("test_images", "test_images"))
        if test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"test_images must have the size of images: {tuple(test.shape[1:])} vs "
                f"{tuple(x.shape[1:])}"
            )
        train = x
    blurred_train = gaussian_blur(train, sigma_px)
    blurred_test = gaussian_blur(test, sigma_px)
    if degrade is not None:
        blurred_train = degrade(blurred_train, "learned_train")
        blurred_test = degrade(blurred_test, "control")
    start = time.perf_counter()
    model, history = train_restorer(blurred_train, train, seed=seed, **train_kwargs)
    seconds = time.perf_counter() - start
    restored = restore(model, blurred_test)
    s_before, s_after = ssim(blurred_test, test).double(), ssim(restored, test).double()
    p_before, p_after = psnr(blurred_test, test).double(), psnr(restored, test).double()
    return {
        "sigma_px": float(sigma_px),
        "n_train": int(train.shape[0]),
        "n_test": int(test.shape[0]),
        "ssim_blurred_mean": float(s_before.mean()),
        "ssim_blurred_std": float(s_before.std(unbiased=False)),
        "ssim_restored_mean": float(s_after.mean()),
        "ssim_restored_std": float(s_after.std(unbiased=False)),
        "psnr_blurred_mean": float(p_before.mean()),
        "psnr_restored_mean": float(p_after.mean()),
        "train_seconds": seconds,
        "threshold": CONTROL_SSIM_THRESHOLD,
        "passed": bool(s_after.mean() >= CONTROL_SSIM_THRESHOLD),
        "history": history,
    }
