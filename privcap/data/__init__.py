"""Data of the three profiles (DESIGN sec. 5) and the image policy shared by all of them.

- :mod:`privcap.data.synthetic` -- generated captioned scenes with a sensitive
  handwritten-digit tag (``quick`` profile);
- :mod:`privcap.data.coco` -- COCO captions files and Karpathy's split (``coco-mini``,
  ``full``), with reports of everything skipped;
- :mod:`privcap.data.photos` -- real photos bundled with installed packages (faces
  included);
- :mod:`privcap.data.images` -- reading any image file into an RGB tensor in [0, 1];
- :mod:`privcap.data.transforms` -- resize / crop policy and backbone normalisation;
- :mod:`privcap.data.captions` -- caption whitespace / control-character normalisation;
- :mod:`privcap.data.batching` -- DataLoader collate function;
- :mod:`privcap.data.download` -- resumable, verified COCO download (``privcap data coco``).
"""

from privcap.data.batching import collate_items
from privcap.data.captions import clean_captions, normalize_caption
from privcap.data.coco import (
    CaptionReport,
    CocoCaptions,
    load_coco_captions,
    load_karpathy_split,
)
from privcap.data.images import ImageLoadError, load_image
from privcap.data.photos import PHOTO_SOURCES, sample_photos
from privcap.data.synthetic import SyntheticScenes
from privcap.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    normalize_for_backbone,
    resize_and_crop,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PHOTO_SOURCES",
    "CaptionReport",
    "CocoCaptions",
    "ImageLoadError",
    "SyntheticScenes",
    "clean_captions",
    "collate_items",
    "load_coco_captions",
    "load_image",
    "load_karpathy_split",
    "normalize_caption",
    "normalize_for_backbone",
    "resize_and_crop",
    "sample_photos",
]
