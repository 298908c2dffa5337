"""Captioning: vocabulary, CNN feature encoder, Up-Down decoder (paper Sec. 2.2, Eqs. 3-5).

- :mod:`~privcap.captioning.vocab` -- tokenisation and the word vocabulary;
- :mod:`~privcap.captioning.weights` -- offline / cached ImageNet weights, sha256-checked;
- :mod:`~privcap.captioning.encoder` -- backbone -> region features ``v_i`` and ``v_bar``;
- :mod:`~privcap.captioning.decoder` -- the two-LSTM Up-Down decoder, greedy and beam search;
- :mod:`~privcap.captioning.model` -- :class:`Captioner`, its config and profile presets;
- :mod:`~privcap.captioning.checkpoint` -- save / load with the vocabulary;
- :mod:`~privcap.captioning.visualize` -- attention maps word by word, example grids.
"""

from privcap.captioning.checkpoint import load_captioner, save_captioner
from privcap.captioning.decoder import Generation, UpDownDecoder
from privcap.captioning.encoder import FeatureEncoder, RegionFeatures
from privcap.captioning.model import (
    Captioner,
    CaptionerConfig,
    CaptionOutput,
    captioner_config,
)
from privcap.captioning.vocab import Vocabulary, tokenize

__all__ = [
    "Captioner",
    "CaptionerConfig",
    "CaptionOutput",
    "FeatureEncoder",
    "Generation",
    "RegionFeatures",
    "UpDownDecoder",
    "Vocabulary",
    "captioner_config",
    "load_captioner",
    "save_captioner",
    "tokenize",
]
