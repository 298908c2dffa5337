"""Tiny models, optics and data shared by the tests of :mod:`privcap.training`."""

from __future__ import annotations

import torch

from privcap.captioning import Captioner, captioner_config
from privcap.data.synthetic import SyntheticScenes
from privcap.optics import OpticsConfig
from privcap.training import build_vocabulary

SIZE = 32
#: the captioner overrides of every tiny run (also passed to ``privcap train --captioner-set``)
TINY_CAPTIONER = dict(small_cnn_channels=(8, 16), small_cnn_convs=(1, 1), feature_dim=16,
                      embed_dim=16, hidden_dim=24, attention_dim=8, image_size=SIZE)
#: a quick-like camera shrunk to 32-pixel images: 64-sample lens, 32-pixel PSF, 15 terms
_scale = 64 / 896
TINY_OPTICS = OpticsConfig.quick().replace(
    grid_size=64, sensor_distance_m=25e-3 * _scale, object_distance_m=0.5 * _scale,
    num_terms=15, psf_size=32, image_size=SIZE, psf_radius_px=4.0,
)
TINY_OPTICS = TINY_OPTICS.replace(z4_init_um=round(TINY_OPTICS.focus_z4_um()[1], 2) + 0.3)
#: the same overrides as ``privcap train --optics-set`` arguments
TINY_OPTICS_ARGS = [f"grid_size={TINY_OPTICS.grid_size}",
                    f"sensor_distance_m={TINY_OPTICS.sensor_distance_m!r}",
                    f"object_distance_m={TINY_OPTICS.object_distance_m!r}", "num_terms=15",
                    "psf_size=32", f"image_size={SIZE}", "psf_radius_px=4.0",
                    f"z4_init_um={TINY_OPTICS.z4_init_um!r}"]


def tiny_data(n_train: int = 12, n_val: int = 4, seed: int = 3):
    train = SyntheticScenes(n_train, image_size=SIZE, seed=seed, split="train")
    val = SyntheticScenes(n_val, image_size=SIZE, seed=seed, split="test")
    return train, val


def tiny_captioner(train, seed: int = 0, **overrides) -> Captioner:
    torch.manual_seed(seed)
    vocab = build_vocabulary(train, min_count=2, max_len=12)
    return Captioner(captioner_config("quick", **{**TINY_CAPTIONER, **overrides}), vocab)


def key_values(settings: dict) -> list[str]:
    """``KEY=VALUE`` command-line arguments of a dict."""
    return [f"{k}={v!r}" for k, v in settings.items()]
