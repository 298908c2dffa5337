"""privcap: privacy-preserving optics for image captioning.

Executable companion of *Learning to Describe Scenes via Privacy-aware Optical Lens*
(Arguello et al.). Subpackages:

- :mod:`privcap.optics` -- Zernike lens, Fresnel PSF (Eq. 1) and camera models (Eq. 2);
- :mod:`privcap.captioning` -- vocabulary, CNN feature encoder, Up-Down decoder (Eqs. 3-5);
- :mod:`privcap.data` -- synthetic scenes, COCO / Karpathy loaders, bundled photos;
- :mod:`privcap.losses` -- L_p, L_ce, L_d, L_H (Eqs. 6-9);
- :mod:`privcap.metrics` -- caption metrics (pycocoevalcap) and SSIM.
"""

__version__ = "0.1.0"
