"""Real photographs shipped inside installed packages, for demonstrations (faces included).

No download is needed: the files are part of the scikit-image and matplotlib wheels.

=================  ======================================  ===============================
name               content                                 source and licence
=================  ======================================  ===============================
``astronaut``      portrait of astronaut Eileen Collins    NASA, public domain
                   (**face**)                              (``skimage.data.astronaut``)
``grace_hopper``   portrait of Rear Admiral Grace Hopper   U.S. Navy photograph, public
                   (**face**)                              domain (matplotlib sample data
                                                           ``grace_hopper.jpg``)
``camera``         a photographer with a camera on a       CC0, Lav Varshney
                   tripod (person; grayscale file)         (``skimage.data.camera``)
``coffee``         a cup of coffee on a wooden table       CC0, Rachel Michetti
                                                           (``skimage.data.coffee``)
``chelsea``        Chelsea the cat                         CC0, Stefan van der Walt
                                                           (``skimage.data.chelsea``)
``rocket``         Falcon 9 launch of DSCOVR               SpaceX, public domain
                                                           (``skimage.data.rocket``)
=================  ======================================  ===============================

Grayscale files are replicated on R, G and B like every other loader of the project
(:mod:`privcap.data.images`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from privcap.data.transforms import resize_and_crop

#: Sources and licences of the bundled photos (see the module docstring).
PHOTO_SOURCES: dict[str, dict[str, str | bool]] = {
    "astronaut": {"content": "astronaut Eileen Collins, portrait", "faces": True,
                  "source": "skimage.data.astronaut (NASA)", "licence": "public domain"},
    "grace_hopper": {"content": "Rear Admiral Grace Hopper, portrait", "faces": True,
                     "source": "matplotlib sample data grace_hopper.jpg (U.S. Navy)",
                     "licence": "public domain"},
    "camera": {"content": "photographer with a camera on a tripod", "faces": True,
               "source": "skimage.data.camera (Lav Varshney)", "licence": "CC0"},
    "coffee": {"content": "cup of coffee on a table", "faces": False,
               "source": "skimage.data.coffee (Rachel Michetti)", "licence": "CC0"},
    "chelsea": {"content": "a cat", "faces": False,
                "source": "skimage.data.chelsea (Stefan van der Walt)", "licence": "CC0"},
    "rocket": {"content": "rocket launch", "faces": False,
               "source": "skimage.data.rocket (SpaceX)", "licence": "public domain"},
}


def _from_uint8(array: np.ndarray) -> torch.Tensor:
    data = np.asarray(array)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    data = data[..., :3]
    return torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1))).float() / 255.0


def _skimage(name: str) -> Callable[[], torch.Tensor]:
    def load() -> torch.Tensor:
        import skimage.data

        return _from_uint8(getattr(skimage.data, name)())

    return load


def _grace_hopper() -> torch.Tensor:
    from matplotlib import cbook

    from privcap.data.images import load_image

    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


_LOADERS: dict[str, Callable[[], torch.Tensor]] = {
    "astronaut": _skimage("astronaut"),
    "grace_hopper": _grace_hopper,
    "camera": _skimage("camera"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "rocket": _skimage("rocket"),
}


def sample_photos(names: Iterable[str] | None = None,
                  image_size: int | None = None) -> dict[str, torch.Tensor]:
    """The bundled photos as RGB tensors ``3 x H x W`` in ``[0, 1]``.

    Args:
        names: subset of :data:`PHOTO_SOURCES` (default: all, in that order).
        image_size: resize shorter side + centre crop to this size (shared policy);
            None keeps the original sizes.
    """
    wanted = list(PHOTO_SOURCES) if names is None else list(names)
    unknown = [n for n in wanted if n not in _LOADERS]
    if unknown:
        raise ValueError(f"unknown photo name(s) {unknown}; available: {list(PHOTO_SOURCES)}")
    photos = {}
    for name in wanted:
        image = _LOADERS[name]()
        photos[name] = resize_and_crop(image, image_size) if image_size is not None else image
    return photos
