"""Training settings (:class:`TrainConfig`) and the presets of each profile and camera.

The joint objective (paper Sec. 2, Eqs. 6-9) is

    L = w_ce L_ce + ds_lambda L_d + w_p L_p + w_h L_H,

with ``L_d`` the doubly stochastic attention term of Eq. 7 (``lambda`` = ``ds_lambda``).
The lens has two learning rates: ``lr_defocus`` for Z4 (half a micrometre of Z4 is about a
wave of defocus) and ``lr_lens`` for every other learnable Zernike term (DESIGN sec. 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from privcap.profiles import check_profile
from privcap.training.cameras import CAMERA_KINDS, check_kind

__all__ = ["TrainConfig", "train_config", "resolve_device", "FINETUNE", "LENS_LR"]


@dataclass
class TrainConfig:
    """Optimisation settings of :func:`privcap.training.train`.

    Attributes:
        camera: camera kind in front of the captioner (:data:`CAMERA_KINDS`); the camera
            given to ``train`` must be of this kind.
        epochs: passes over the training images.
        batch_size: images per optimiser step, over all processes (each of ``W`` DDP
            processes takes ``batch_size / W``).
        captions_per_image: captions per image and step (each image's choice is a function
            of the seed, the epoch and the image id); ``None``: all of them.
        lr_encoder, lr_decoder: Adam learning rates of the captioner's encoder and decoder.
        lr_lens: Adam learning rate of the learnable Zernike terms other than Z4 (um/step).
        lr_defocus: Adam learning rate of Z4 (um/step).
        weight_decay: L2 weight decay of encoder and decoder.
        grad_clip: maximum gradient norm of the captioner's parameters (``None``: none;
            the lens is not clipped, Adam normalises its steps).
        w_ce: weight of the caption cross-entropy L_ce (Eq. 6).
        ds_lambda: weight of the doubly stochastic attention term L_d (Eq. 7). L_d is summed
            over regions per caption while L_ce is a mean per word, so Show-Attend-Tell's
            ``lambda = 1`` (with a cross-entropy summed over words) is about ``1 / words
            per caption`` here.
        w_p: weight of the distortion term L_p (Eq. 6's companion, DESIGN sec. 4).
        w_h: weight of the PSF energy term L_H (Eqs. 8-9); its disk radius is the camera's
            ``psf_radius_px``.
        lr_decay: multiplicative learning-rate decay per epoch (every group).
        val_beam_size: beam size of the per-epoch validation captions (1 = greedy).
        val_meteor: compute METEOR at validation (a JVM start, several seconds each).
        val_meteor_every: with ``val_meteor``, METEOR every this many epochs and at the last.
        seed: seed of everything random in training (data order, caption choice, dropout,
            read noise); each is a function of ``(seed, epoch, step)``.
        num_workers: DataLoader worker processes.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``;
            under ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
        amp: mixed precision (``torch.autocast`` + ``GradScaler``) for the captioner, on
            CUDA only; the optics always run in float32.
        checkpoint_every_steps: also write ``last.pt`` every this many steps inside an
            epoch (``None``: at the end of each epoch only).
        sync_batchnorm: under DDP on CUDA, synchronise BatchNorm statistics across
            processes (on CPU/gloo each process normalises with its own batch).
    """

    camera: str = "no-lens"
    epochs: int = 10
    batch_size: int = 32
    captions_per_image: int | None = None
    lr_encoder: float = 1e-3
    lr_decoder: float = 2e-3
    lr_lens: float = 1e-3
    lr_defocus: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0
    w_ce: float = 1.0
    ds_lambda: float = 0.01
    w_p: float = 1.0
    w_h: float = 1.0
    lr_decay: float = 0.9
    val_beam_size: int = 1
    val_meteor: bool = True
    val_meteor_every: int = 1
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_every_steps: int | None = None
    sync_batchnorm: bool = True

    def __post_init__(self) -> None:
        check_kind(self.camera)
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.captions_per_image is not None and self.captions_per_image < 1:
            raise ValueError(
                f"captions_per_image must be None or >= 1, got {self.captions_per_image!r}"
            )
        for name in ("lr_encoder", "lr_decoder", "lr_lens", "lr_defocus", "weight_decay",
                     "w_ce", "ds_lambda", "w_p", "w_h"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be None or > 0, got {self.grad_clip!r}")
        if self.val_beam_size < 1:
            raise ValueError(f"val_beam_size must be >= 1, got {self.val_beam_size!r}")
        if self.val_meteor_every < 1:
            raise ValueError(f"val_meteor_every must be >= 1, got {self.val_meteor_every!r}")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ValueError(
                f"checkpoint_every_steps must be None or >= 1, got "
                f"{self.checkpoint_every_steps!r}"
            )
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        ):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inverse of :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Config from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {unknown}")
        return cls(**data)


def resolve_device(device: str, local_rank: int | None = None) -> torch.device:
    """The ``torch.device`` of a :attr:`TrainConfig.device` setting (``"auto"``: CUDA when
    available; under DDP on CUDA, ``cuda:local_rank``)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available")
        if device == "cuda" and local_rank is not None:
            return torch.device("cuda", local_rank)
    return torch.device(device)


#: captioner training from scratch (chapter 03's clean captioner and the paper's joint runs)
_SCRATCH: dict[str, dict[str, Any]] = {
    "quick": dict(epochs=8, batch_size=16, captions_per_image=3, val_meteor_every=2),
    "coco-mini": dict(epochs=15, batch_size=16, lr_encoder=1e-4, lr_decoder=2e-3,
                      val_meteor_every=5),
    "full": dict(epochs=30, batch_size=64, captions_per_image=1, lr_encoder=1e-4,
                 lr_decoder=5e-4, lr_decay=0.8, val_beam_size=3, ds_lambda=0.1, num_workers=4),
}

#: weights of the joint objective. ``full``: the paper's 0.4 caption, 6 L_p, 30 L_H. ``quick``
#: (and ``coco-mini``): the paper's ratio w_p / w_ce = 6 / 0.4 = 15. With Adam the lens follows
#: the direction of ``w_p grad L_p + w_ce grad L_ce`` (its scale hardly matters), so the ratio
#: sets where the lens stops blurring. On the synthetic scenes the ratio decides between two
#: kinds of lens (chapter 08 sweeps it): up to about 10 the lens spreads light so that every
#: spatial frequency is attenuated but few are lost, and attackers that know the PSF still
#: find half of the faces or more; at 15 its transfer function falls under the recorded
#: image's noise over most frequencies, so faces and the digit tags are gone for the attackers
#: too, at the price of about a sixth of the no-lens CIDEr (chapters 05 and 07). L_H stays
#: ~1e-3 on these lenses (their PSF energy spreads over many pixels); w_h = 2 only stops a
#: bright lobe far out.
_WEIGHTS: dict[str, dict[str, float]] = {
    "quick": dict(w_ce=1.0, w_p=15.0, w_h=2.0),
    "coco-mini": dict(w_ce=1.0, w_p=15.0, w_h=2.0),
    "full": dict(w_ce=0.4, w_p=6.0, w_h=30.0),
}

#: lens learning rates (um per Adam step) per profile, ``(lr_lens, lr_defocus)``. Adam moves a
#: coefficient by about its learning rate per step, so these are speeds. ``quick``: chosen by
#: :func:`privcap.training.lr_search.lr_search` (candidates 5e-7 .. 3e-2, 100 steps, rule of
#: :func:`~privcap.training.lr_search.choose_lr`): 5e-7, the released code's value, moves the
#: lens by ~1e-5 um and leaves the SSIM at its starting 0.97; 1e-2 gives the most privacy for
#: an unchanged caption loss (3e-2 overshoots and jitters). ``full``: 1e-3, so that the lens can
#: still cross its +-1 um range within one epoch of its ~1770 steps while a step stays 1/500 of
#: a wave; Z4 shares the rate (per-group rates stay available).
LENS_LR: dict[str, tuple[float, float]] = {
    "quick": (1e-2, 1e-2),
    "coco-mini": (1e-2, 1e-2),
    "full": (1e-3, 1e-3),
}

#: fine-tuning from a clean captioner (Table 1 recipe): overrides of the scratch settings. The
#: captioner's learning rates continue from where the clean training ended (quick: 1e-3 and
#: 2e-3 decayed by 0.9 for 7 epochs is about 5e-4 / 1e-3) and halve after every epoch.
#: ``quick`` trains 3 epochs (375 steps of 16 images on 2000 scenes). The decay is what makes
#: the rows comparable: at a constant rate for 2 epochs, two seeds of the same camera ended
#: 0.24 CIDEr apart (the model is scored wherever the last noisy step left it); with 3 halving
#: epochs the seeds of each camera agreed within about 0.03. The four cameras x two seeds of
#: Table 1 then take about 7 minutes on one thread (training and the final evaluation).
FINETUNE: dict[str, dict[str, Any]] = {
    "quick": dict(epochs=3, lr_encoder=5e-4, lr_decoder=1e-3, lr_decay=0.5, val_meteor=False),
    "coco-mini": dict(epochs=5, lr_decoder=1e-3, lr_decay=1.0, val_meteor=False),
    "full": dict(epochs=10, lr_encoder=5e-5, lr_decoder=2e-4, lr_decay=0.8),
}


def train_config(
    profile: str = "quick", camera: str = "no-lens", *, finetune: bool = False,
    **overrides: Any,
) -> TrainConfig:
    """Preset training settings of a profile and camera, with optional overrides.

    - ``full`` follows DESIGN sec. 2 / the authors' released settings: batch 64, Adam
      1e-4 encoder / 5e-4 decoder, loss weights 0.4 caption, 6 L_p, 30 L_H; the lens
      learning rates are this project's (:data:`LENS_LR`: the released 5e-7 barely moves
      the lens).
    - ``quick`` trains the small captioner in minutes on CPU (chapter 03's settings); its
      lens learning rates come from :func:`~privcap.training.lr_search.lr_search` and its
      loss weights balance the terms at the scale of the synthetic scenes.
    - ``finetune=True`` gives the Table 1 recipe: start from a clean captioner
      (``init_from``) and train camera and captioner together for a few epochs
      (:data:`FINETUNE`).

    The camera kind changes no number (every row of Table 1 gets the same optimisation); it
    is recorded so that a run cannot be resumed with another camera.
    """
    check_profile(profile)
    if camera not in CAMERA_KINDS:
        raise ValueError(f"camera must be one of {CAMERA_KINDS}, got {camera!r}")
    lr_lens, lr_defocus = LENS_LR[profile]
    data: dict[str, Any] = {
        "camera": camera, **_SCRATCH[profile], **_WEIGHTS[profile], "lr_lens": lr_lens,
        "lr_defocus": lr_defocus,
    }
    if finetune:
        data.update(FINETUNE[profile])
    data.update(overrides)
    return TrainConfig.from_dict(data)
