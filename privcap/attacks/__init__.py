"""Privacy attacks on the camera's images.

- :mod:`privcap.attacks.tag_reader` -- a CNN that tries to read the handwritten-digit tag
  of the synthetic scenes (the sensitive detail the captions never mention).
"""

from privcap.attacks.tag_reader import (
    TagReader,
    TagReaderCNN,
    evaluate_tag_reader,
    train_tag_reader,
)

__all__ = ["TagReader", "TagReaderCNN", "evaluate_tag_reader", "train_tag_reader"]
