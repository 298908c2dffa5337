"""Privacy attacks on the camera's images.

- :mod:`privcap.attacks.tag_reader` -- a CNN that tries to read the handwritten-digit tag
  of the synthetic scenes (the sensitive detail the captions never mention).
- :mod:`privcap.attacks.deconvolution` -- non-blind deconvolution (Wiener, Richardson-Lucy)
  with the camera's PSF, parameters tuned on the attacker's own held-out images (Fig. 3).
- :mod:`privcap.attacks.learned` -- a learned blind restorer in the spirit of DeblurGAN-v2
  (MobileNetV2 encoder, U-Net decoder; content, perceptual and adversarial losses) and its
  competence control on a mild Gaussian blur.
- :mod:`privcap.attacks.pipeline` -- :func:`attack_images` (one attack, scored with SSIM
  and PSNR) and :func:`run_attack_cli` (the ``privcap attack`` command).
"""

from privcap.attacks.deconvolution import (
    camera_psf,
    richardson_lucy,
    tune_richardson_lucy,
    tune_wiener,
    wiener,
)
from privcap.attacks.learned import (
    RestorerGenerator,
    competence_control,
    gaussian_blur,
    restore,
    split_pairs,
    train_restorer,
)
from privcap.attacks.pipeline import ATTACKS, CAMERA_NAMES, attack_images, run_attack_cli
from privcap.attacks.tag_reader import (
    TagReader,
    TagReaderCNN,
    evaluate_tag_reader,
    train_tag_reader,
)

__all__ = [
    "ATTACKS",
    "CAMERA_NAMES",
    "RestorerGenerator",
    "TagReader",
    "TagReaderCNN",
    "attack_images",
    "camera_psf",
    "competence_control",
    "evaluate_tag_reader",
    "gaussian_blur",
    "restore",
    "richardson_lucy",
    "run_attack_cli",
    "split_pairs",
    "train_restorer",
    "train_tag_reader",
    "tune_richardson_lucy",
    "tune_wiener",
    "wiener",
]
