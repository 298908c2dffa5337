"""Feature encoder: a CNN backbone turning an image into ``L`` region features (paper Sec. 2.2.1).

The backbone's last feature map ``C x h x w`` is read as ``L = h * w`` region vectors. Each
region is tagged with its position in the grid (coordinate channels ``x, y`` in ``[-1, 1]``
plus ``sin``/``cos`` of a few multiples of them), so that an attended feature ``v_hat_t``
still says *where* it came from and position words ("left", "top") can be learned. A linear
layer with ReLU then maps ``C + P`` to ``D`` (optional), giving ``v_i in R^D`` and their mean
``v_bar = (1/L) sum_i v_i`` (the inputs of Eqs. 3-4).

Backbones:

- ``"small_cnn"``: a few 3 x 3 convolution blocks trained from scratch (quick profile).
- ``"mobilenet_v2"``: torchvision's MobileNetV2 ``features`` (1280 channels, stride 32),
  ImageNet weights read offline (:mod:`privcap.captioning.weights`).
- ``"resnet101"``: torchvision's ResNet-101 up to ``layer4`` (2048 channels, stride 32), as in
  the paper; ImageNet weights from the torch hub cache or a download.

The encoder takes images in ``[0, 1]`` (what a camera records) and applies the ImageNet
normalisation of :func:`privcap.data.transforms.normalize_for_backbone` itself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from privcap.captioning.weights import load_mobilenet_v2_state_dict, load_resnet101_state_dict
from privcap.data.transforms import normalize_for_backbone

BACKBONES: tuple[str, ...] = ("small_cnn", "mobilenet_v2", "resnet101")


class RegionFeatures(NamedTuple):
    """Output of :class:`FeatureEncoder`.

    Attributes:
        regions: ``B x L x D`` region features ``v_i``.
        mean: ``B x D`` mean feature ``v_bar``.
        grid: ``(h, w)`` with ``h * w = L``: region ``i`` covers grid cell
            ``(i // w, i % w)`` (row-major), used to draw attention maps.
    """

    regions: Tensor
    mean: Tensor
    grid: tuple[int, int]


def coordinate_channels(height: int, width: int, n_freqs: int, like: Tensor) -> Tensor:
    """``P x h x w`` position code of a feature grid, ``P = 2 + 4 * n_freqs``.

    Channels: ``x`` and ``y`` of the cell centres in ``[-1, 1]`` (x grows to the right, y
    downwards), then ``sin(pi k x), cos(pi k x), sin(pi k y), cos(pi k y)`` for
    ``k = 1 .. n_freqs``.
    """
    if n_freqs < 0:
        raise ValueError(f"n_freqs must be >= 0, got {n_freqs}")
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) / width * 2 - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    channels = [x, y]
    for k in range(1, n_freqs + 1):
        channels += [
            torch.sin(math.pi * k * x),
            torch.cos(math.pi * k * x),
            torch.sin(math.pi * k * y),
            torch.cos(math.pi * k * y),
        ]
    return torch.stack(channels)


class SmallCNN(nn.Module):
    """Stack of blocks, each ``conv 3x3 stride 2, BatchNorm, ReLU`` (+ ``conv 3x3, BN, ReLU``).

    Each block halves the resolution: ``channels=(16, 32, 64, 128)`` turns a 128 x 128 image
    into an 8 x 8 grid of 128-channel features. ``convs_per_block`` (1 or 2 per block) puts
    the second convolution where the maps are small and it is cheap. Trained from scratch.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        convs_per_block: tuple[int, ...] = (1, 1, 2, 2),
    ) -> None:
        super().__init__()
        if not channels or any(int(c) <= 0 for c in channels):
            raise ValueError(f"channels must be positive ints, got {channels!r}")
        if len(convs_per_block) != len(channels) or any(n not in (1, 2) for n in convs_per_block):
            raise ValueError(
                f"convs_per_block must hold 1 or 2 for each of the {len(channels)} blocks, "
                f"got {convs_per_block!r}"
            )
        blocks = []
        c_in = 3
        for c_out, n_convs in zip(channels, convs_per_block, strict=True):
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if n_convs == 2:
                layers += [
                    nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = int(channels[-1])

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


def _build_backbone(
    name: str,
    pretrained: bool,
    weights_path: str | None,
    small_cnn_channels: tuple[int, ...],
    small_cnn_convs: tuple[int, ...],
) -> tuple[nn.Module, list[nn.Module], int]:
    """Backbone module, its stages (input to output, for partial fine-tuning), channels."""
    if name == "small_cnn":
        net = SmallCNN(small_cnn_channels, small_cnn_convs)
        return net, list(net.blocks), net.out_channels
    if name == "mobilenet_v2":
        state = load_mobilenet_v2_state_dict(weights_path) if pretrained else None
        model = torchvision.models.mobilenet_v2(weights=None)
        if state is not None:
            model.load_state_dict(state)
        feats = model.features
        # stages split where the resolution halves (strides 2, 4, 8, 16, 32) + last 1x1 conv
        bounds = [(0, 2), (2, 4), (4, 7), (7, 14), (14, 18), (18, 19)]
        stages = [nn.Sequential(*[feats[i] for i in range(a, b)]) for a, b in bounds]
        return feats, stages, 1280
    if name == "resnet101":
        state = load_resnet101_state_dict(weights_path) if pretrained else None
        model = torchvision.models.resnet101(weights=None)
        if state is not None:
            model.load_state_dict(state)
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        stages = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
        return nn.Sequential(*stages), stages, 2048
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


class FeatureEncoder(nn.Module):
    """Image ``B x 3 x H x W`` in ``[0, 1]`` -> :class:`RegionFeatures` (``v_i``, ``v_bar``).

    Args:
        backbone: one of :data:`BACKBONES`.
        pretrained: load ImageNet weights (``mobilenet_v2``, ``resnet101``; ignored for
            ``small_cnn``). A failure to find them is an error, never a silent fallback.
        weights_path: explicit ImageNet weights file (default: the offline package /
            the torch hub cache).
        finetune_stages: how many of the backbone's last stages are trained; ``-1`` = all,
            ``0`` = frozen backbone (its BatchNorm statistics frozen too).
        grid_size: if given, adaptive average pooling of the feature map to
            ``grid_size x grid_size`` regions (e.g. 7 or 14 as in the paper).
        pos_freqs: number of sin/cos frequencies of the coordinate channels (``-1``: none at
            all, ``0``: plain ``x, y`` only).
        feature_dim: ``D`` after the linear + ReLU projection; ``None`` keeps the backbone's
            channels plus coordinate channels without projection.
        small_cnn_channels: channels of the blocks of ``small_cnn``.
        small_cnn_convs: convolutions (1 or 2) in each block of ``small_cnn``.
    """

    def __init__(
        self,
        backbone: str = "small_cnn",
        *,
        pretrained: bool = True,
        weights_path: str | None = None,
        finetune_stages: int = -1,
        grid_size: int | None = None,
        pos_freqs: int = 2,
        feature_dim: int | None = 256,
        small_cnn_channels: tuple[int, ...] = (16, 32, 64, 128),
        small_cnn_convs: tuple[int, ...] = (1, 1, 2, 2),
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if grid_size is not None and grid_size < 1:
            raise ValueError(f"grid_size must be None or >= 1, got {grid_size!r}")
        if pos_freqs < -1:
            raise ValueError(f"pos_freqs must be >= -1, got {pos_freqs!r}")
        if feature_dim is not None and feature_dim < 1:
            raise ValueError(f"feature_dim must be None or >= 1, got {feature_dim!r}")
        self.backbone_name = backbone
        self.backbone, stages, channels = _build_backbone(
            backbone, pretrained, weights_path, tuple(small_cnn_channels), tuple(small_cnn_convs)
        )
        self._stages = stages
        if finetune_stages < -1:
            raise ValueError(f"finetune_stages must be >= -1, got {finetune_stages!r}")
        n_frozen = 0 if finetune_stages == -1 else max(0, len(stages) - finetune_stages)
        self._frozen = stages[:n_frozen]
        for stage in self._frozen:
            for p in stage.parameters():
                p.requires_grad_(False)
        self.grid_size = grid_size
        self.pos_freqs = pos_freqs
        n_pos = 0 if pos_freqs < 0 else 2 + 4 * pos_freqs
        in_dim = channels + n_pos
        if feature_dim is None:
            self.project: nn.Module = nn.Identity()
            self.feature_dim = in_dim
        else:
            self.project = nn.Sequential(nn.Linear(in_dim, feature_dim), nn.ReLU(inplace=True))
            self.feature_dim = feature_dim

    @property
    def n_stages(self) -> int:
        """Number of backbone stages (the unit of ``finetune_stages``)."""
        return len(self._stages)

    def train(self, mode: bool = True) -> FeatureEncoder:
        """Like ``nn.Module.train``, but frozen stages always stay in eval mode."""
        super().train(mode)
        for stage in self._frozen:
            stage.eval()
        return self

    def forward(self, images: Tensor) -> RegionFeatures:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got shape {tuple(images.shape)}")
        fmap = self.backbone(normalize_for_backbone(images))
        if self.grid_size is not None:
            fmap = F.adaptive_avg_pool2d(fmap, self.grid_size)
        batch, _, height, width = fmap.shape
        if self.pos_freqs >= 0:
            pos = coordinate_channels(height, width, self.pos_freqs, fmap)
            fmap = torch.cat([fmap, pos.unsqueeze(0).expand(batch, -1, -1, -1)], dim=1)
        regions = self.project(fmap.flatten(2).transpose(1, 2))  # B x L x D
        return RegionFeatures(regions, regions.mean(dim=1), (height, width))
