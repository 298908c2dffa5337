"""The captioner: feature encoder + Up-Down decoder, its configuration and profile presets.

:class:`Captioner` maps images in ``[0, 1]`` (clean, or what a privacy camera records) to
captions. It never sees a lens: an optical front end is composed in front of it by the
training code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor, nn

from privcap.captioning.decoder import Generation, UpDownDecoder
from privcap.captioning.encoder import BACKBONES, FeatureEncoder, RegionFeatures
from privcap.captioning.vocab import Vocabulary
from privcap.profiles import PROFILES, check_profile

__all__ = ["PROFILES", "Captioner", "CaptionerConfig", "CaptionOutput", "captioner_config"]


@dataclass
class CaptionerConfig:
    """Everything that defines a captioner's architecture and its default decoding.

    Attributes:
        backbone: ``"small_cnn"``, ``"mobilenet_v2"`` or ``"resnet101"``.
        pretrained: load the backbone's ImageNet weights (not used by ``small_cnn``).
        weights_path: explicit ImageNet weights file (default: offline package / hub cache).
        finetune_stages: number of last backbone stages trained (``-1`` all, ``0`` none).
        small_cnn_channels: channels of the blocks of ``small_cnn``.
        small_cnn_convs: convolutions (1 or 2) per block of ``small_cnn``.
        image_size: side in pixels of the square images the captioner is trained on.
        grid_size: adaptive pooling of the feature map to ``grid_size^2`` regions (None: keep).
        pos_freqs: sin/cos frequencies of the region coordinate channels (-1: none).
        feature_dim: ``D`` of the projected region features (None: no projection).
        embed_dim: word embedding size ``m``.
        hidden_dim: LSTM hidden size.
        attention_dim: attention space size (Eq. 4).
        dropout: dropout probability of the decoder.
        max_len: maximum caption length in words.
        min_count: minimum word count for the vocabulary.
        beam_size: default beam size at inference (1 = greedy).
        length_penalty: default length normalisation exponent of beam search.
        allow_unk: whether inference may emit ``<unk>``.
    """

    backbone: str = "small_cnn"
    pretrained: bool = True
    weights_path: str | None = None
    finetune_stages: int = -1
    small_cnn_channels: tuple[int, ...] = (16, 32, 64, 128)
    small_cnn_convs: tuple[int, ...] = (1, 1, 2, 2)
    image_size: int = 128
    grid_size: int | None = None
    pos_freqs: int = 2
    feature_dim: int | None = 128
    embed_dim: int = 64
    hidden_dim: int = 128
    attention_dim: int = 64
    dropout: float = 0.2
    max_len: int = 16
    min_count: int = 5
    beam_size: int = 3
    length_penalty: float = 0.0
    allow_unk: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        self.small_cnn_channels = tuple(int(c) for c in self.small_cnn_channels)
        self.small_cnn_convs = tuple(int(c) for c in self.small_cnn_convs)
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {self.image_size!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size!r}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        data = asdict(self)
        data["small_cnn_channels"] = list(self.small_cnn_channels)
        data["small_cnn_convs"] = list(self.small_cnn_convs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CaptionerConfig:
        """Config from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown captioner config keys: {unknown}")
        return cls(**data)


def captioner_config(profile: str = "quick", **overrides: object) -> CaptionerConfig:
    """Preset configuration of a data profile (DESIGN sec. 5), with optional overrides.

    - ``quick``: small CNN from scratch on 128 x 128 synthetic scenes, 8 x 8 regions of
      128 features, decoder with hidden size 128, embedding 64, attention 64 (CPU, minutes).
    - ``coco-mini``: ImageNet MobileNetV2 (offline weights), last two stages fine-tuned,
      224 x 224 images, 7 x 7 regions, medium decoder (CPU).
    - ``full``: ResNet-101 as in the paper, 256 x 256 images, 14 x 14 regions (2048-d
      features), hidden 1000, embedding 1000, attention 512, dropout 0.5, beam 3 (GPU).
    """
    check_profile(profile)
    if profile == "quick":
        base = CaptionerConfig()
    elif profile == "coco-mini":
        base = CaptionerConfig(
            backbone="mobilenet_v2",
            finetune_stages=2,
            image_size=224,
            grid_size=7,
            feature_dim=512,
            embed_dim=256,
            hidden_dim=512,
            attention_dim=256,
            dropout=0.5,
            min_count=2,
        )
    else:  # full
        base = CaptionerConfig(
            backbone="resnet101",
            finetune_stages=2,
            image_size=256,
            grid_size=14,
            feature_dim=None,
            embed_dim=1000,
            hidden_dim=1000,
            attention_dim=512,
            dropout=0.5,
            max_len=16,
            min_count=5,
            beam_size=3,
        )
    data = base.to_dict()
    unknown = sorted(set(overrides) - set(data))
    if unknown:
        raise ValueError(f"unknown captioner config keys: {unknown}")
    data.update(overrides)
    return CaptionerConfig.from_dict(data)


class CaptionOutput(NamedTuple):
    """Captions of a batch of images with what is needed to draw attention maps.

    Attributes:
        captions: one caption string per image.
        words: the words of each caption (as decoded, ``<unk>`` possible if allowed).
        generation: raw :class:`~privcap.captioning.decoder.Generation` (ids, scores, alphas).
        grid: ``(h, w)`` region grid: ``generation.alphas[b, t].view(h, w)`` is the attention
            map of word ``t`` of image ``b``.
    """

    captions: list[str]
    words: list[list[str]]
    generation: Generation
    grid: tuple[int, int]


class Captioner(nn.Module):
    """Feature encoder (Sec. 2.2.1) + Up-Down decoder (Eqs. 3-5) with its vocabulary.

    Args:
        config: architecture (see :class:`CaptionerConfig`).
        vocab: the word vocabulary; its size fixes the decoder's output layer.
        load_pretrained: load the backbone's ImageNet weights when ``config.pretrained``
            (switched off when a checkpoint restores all weights anyway).
    """

    def __init__(
        self, config: CaptionerConfig, vocab: Vocabulary, *, load_pretrained: bool = True
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.encoder = FeatureEncoder(
            config.backbone,
            pretrained=config.pretrained and load_pretrained,
            weights_path=config.weights_path,
            finetune_stages=config.finetune_stages,
            grid_size=config.grid_size,
            pos_freqs=config.pos_freqs,
            feature_dim=config.feature_dim,
            small_cnn_channels=config.small_cnn_channels,
            small_cnn_convs=config.small_cnn_convs,
        )
        self.decoder = UpDownDecoder(
            vocab_size=len(vocab),
            feature_dim=self.encoder.feature_dim,
            embed_dim=config.embed_dim,
            hidden_dim=config.hidden_dim,
            attention_dim=config.attention_dim,
            dropout=config.dropout,
        )

    def encode(self, images: Tensor) -> RegionFeatures:
        """Region features ``v_i`` and ``v_bar`` of images ``B x 3 x H x W`` in ``[0, 1]``."""
        return self.encoder(images)

    def forward(self, images: Tensor, words_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced logits ``B x T x K`` and attention ``B x T x L``."""
        feats = self.encode(images)
        return self.decoder(feats.regions, feats.mean, words_in)

    def banned_ids(self) -> tuple[int, ...]:
        """Tokens never emitted at inference: ``<pad>``, ``<start>`` (and ``<unk>``)."""
        banned = [self.vocab.pad_id, self.vocab.start_id]
        if not self.config.allow_unk:
            banned.append(self.vocab.unk_id)
        return tuple(banned)

    def decode_features(
        self,
        feats: RegionFeatures,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
    ) -> Generation:
        """Greedy (``beam_size == 1``) or beam decoding of precomputed region features."""
        beam_size = self.config.beam_size if beam_size is None else beam_size
        max_len = self.vocab.max_len if max_len is None else max_len
        length_penalty = self.config.length_penalty if length_penalty is None else length_penalty
        common = dict(
            start_id=self.vocab.start_id,
            end_id=self.vocab.end_id,
            pad_id=self.vocab.pad_id,
            max_len=max_len,
            banned_ids=self.banned_ids(),
        )
        if beam_size == 1:
            return self.decoder.greedy(feats.regions, feats.mean, **common)
        return self.decoder.beam_search(
            feats.regions,
            feats.mean,
            beam_size=beam_size,
            length_penalty=length_penalty,
            **common,
        )

    def generate(
        self,
        images: Tensor,
        *,
        beam_size: int | None = None,
        max_len: int | None = None,
        length_penalty: float | None = None,
    ) -> CaptionOutput:
        """Captions of images ``B x 3 x H x W`` in ``[0, 1]`` (eval mode, no gradients).

        Defaults come from the config (``beam_size``, ``length_penalty``) and the vocabulary
        (``max_len``). The module's train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                feats = self.encode(images)
            gen = self.decode_features(
                feats, beam_size=beam_size, max_len=max_len, length_penalty=length_penalty
            )
        finally:
            self.train(was_training)
        words = [
            [self.vocab.words[int(i)] for i in gen.tokens[b, : int(gen.lengths[b])]]
            for b in range(gen.tokens.shape[0])
        ]
        return CaptionOutput([" ".join(w) for w in words], words, gen, feats.grid)
