"""The joint objective of lens and captioner (paper Sec. 2, Eqs. 6-9).

    L = w_ce L_ce + ds_lambda L_d + w_p L_p + w_h L_H

- ``L_ce`` (Eq. 6): token cross-entropy of the captions, teacher forcing, padding masked
  (:func:`privcap.losses.caption_cross_entropy`);
- ``L_d`` (Eq. 7): doubly stochastic attention, ``sum_i (1 - sum_t alpha_ti)^2`` per caption
  (:func:`privcap.losses.doubly_stochastic_attention` with ``lam=1``; its weight is
  ``ds_lambda``);
- ``L_p``: ``1 - MSE(X_hat, X)`` between the sensor image and the scene
  (:func:`privcap.losses.distortion_loss`), minimised to promote distortion;
- ``L_H`` (Eqs. 8-9): PSF energy outside a centred disk (:func:`privcap.losses.psf_energy_loss`),
  computed on the PSF the sensor image of the same forward pass was made with (one PSF
  evaluation per step: :meth:`privcap.optics.LensCamera.forward_with_psf`).

Which terms exist depends on the camera: ``no-lens`` has neither L_p (it would be the
constant 1: the sensor image is the scene) nor L_H; ``low-res`` has L_p (constant in the
camera, which has no parameter, but reported so the rows of Table 1 compare) and no L_H
(no PSF); ``learned-lens`` and ``defocus`` have all four.

The camera runs in float32 outside any autocast region; only the captioner may run in mixed
precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from privcap.captioning.model import Captioner
from privcap.captioning.vocab import Vocabulary
from privcap.losses import (
    caption_cross_entropy,
    distortion_loss,
    doubly_stochastic_attention,
    psf_energy_loss,
)
from privcap.optics.camera import IdentityCamera
from privcap.training.cameras import has_psf
from privcap.training.data import select_captions

__all__ = [
    "JointModel",
    "JointOutput",
    "LossWeights",
    "caption_loss",
    "caption_terms",
    "encode_captions",
    "joint_loss",
    "joint_objective",
]


class JointOutput(NamedTuple):
    """One forward pass of camera + captioner.

    Attributes:
        sensor: the sensor images ``B x 3 x H x W`` (float32).
        psf: the PSF ``3 x K x K`` they were made with (``None`` without a lens).
        logits: teacher-forced word scores ``N x T x V`` (one row per caption).
        alphas: attention weights ``N x T x L``.
    """

    sensor: Tensor
    psf: Tensor | None
    logits: Tensor
    alphas: Tensor


@dataclass(frozen=True)
class LossWeights:
    """Weights of the joint objective and the disk radius of L_H (pixels)."""

    w_ce: float = 1.0
    ds_lambda: float = 0.01
    w_p: float = 1.0
    w_h: float = 1.0
    psf_radius_px: float = 16.0

    @classmethod
    def from_config(cls, config: Any, camera: nn.Module) -> LossWeights:
        """Weights of a :class:`~privcap.training.config.TrainConfig`; the radius of the
        camera's optics (its ``config.psf_radius_px``; 16 without a lens, unused)."""
        optics = getattr(camera, "config", None)
        radius = float(getattr(optics, "psf_radius_px", 16.0))
        return cls(float(config.w_ce), float(config.ds_lambda), float(config.w_p),
                   float(config.w_h), radius)


class JointModel(nn.Module):
    """Camera in front of the captioner, as one module (so DDP synchronises the gradients of
    both, and the camera's buffers).

    ``amp_dtype`` (e.g. ``torch.float16``) runs the captioner under ``torch.autocast``; the
    camera always runs in float32.
    """

    def __init__(self, captioner: Captioner, camera: nn.Module,
                 amp_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.captioner = captioner
        self.camera = camera
        self.amp_dtype = amp_dtype

    @property
    def has_distortion_term(self) -> bool:
        """Whether the objective has L_p (every camera but ``no-lens``)."""
        return not isinstance(self.camera, IdentityCamera)

    @property
    def has_psf_term(self) -> bool:
        """Whether the objective has L_H (cameras with a lens)."""
        return has_psf(self.camera)

    def sense(self, scene: Tensor) -> tuple[Tensor, Tensor | None]:
        """Sensor images and the PSF of this pass (float32, never autocast)."""
        with torch.autocast(device_type=scene.device.type, enabled=False):
            scene = scene.float()
            if self.has_psf_term:
                return self.camera.forward_with_psf(scene)
            return self.camera(scene), None

    def forward(self, scene: Tensor, caption_ids: Tensor, owner: Tensor) -> JointOutput:
        """Sensor images of ``scene`` (``B x 3 x H x W`` in [0, 1]) and the teacher-forced
        scores of ``caption_ids`` (``N x T``, ``<start> ... <end> <pad>...``), caption ``n``
        describing image ``owner[n]`` (each image is encoded once)."""
        sensor, psf = self.sense(scene)
        enabled = self.amp_dtype is not None
        with torch.autocast(device_type=scene.device.type, dtype=self.amp_dtype,
                            enabled=enabled):
            feats = self.captioner.encode(sensor)
            logits, alphas = self.captioner.decoder(
                feats.regions[owner], feats.mean[owner], caption_ids[:, :-1]
            )
        return JointOutput(sensor, psf, logits.float(), alphas.float())


def encode_captions(vocab: Vocabulary, captions: Sequence[str], device: torch.device) -> Tensor:
    """Word ids ``N x T`` of ``captions`` (``<start> ... <end>``, padded, the all-padding tail
    dropped)."""
    ids = vocab.encode_batch(list(captions)).to(device)
    return ids[:, : int((ids != vocab.pad_id).sum(dim=1).max())]


def caption_terms(
    logits: Tensor, alphas: Tensor, caption_ids: Tensor, pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``L_ce`` (Eq. 6, per-token mean), the attention term of ``L_d`` (Eq. 7, ``lam=1``)
    and the mask of the target tokens, for teacher-forced ``logits`` / ``alphas`` of
    ``caption_ids`` (targets ``caption_ids[:, 1:]``; steps after ``<end>`` masked)."""
    targets = caption_ids[:, 1:]
    mask = targets != pad_id
    ce = caption_cross_entropy(logits, targets, pad_id)
    ds = doubly_stochastic_attention(alphas, mask, lam=1.0)
    return ce, ds, mask


def caption_loss(
    model: Captioner,
    images: Tensor,
    captions: Sequence[Sequence[str]],
    *,
    ds_lambda: float,
    per_image: int | None = None,
    seed: int = 0,
    epoch: int = 0,
    image_ids: Sequence[int] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The captioner's part of the objective, ``L_ce + ds_lambda L_d`` (Eqs. 6-7), of images
    (already through a camera, or clean) and their captions (``captions[b]`` lists the
    captions of ``images[b]``; ``per_image`` of them chosen as in training by
    :func:`~privcap.training.data.select_captions`). Each image is encoded once.

    Returns the loss and ``{"ce", "ds", "tokens"}`` as floats.
    """
    ids_of_images = list(range(len(captions))) if image_ids is None else list(image_ids)
    flat, owner = select_captions(captions, ids_of_images, per_image, seed=seed, epoch=epoch)
    ids = encode_captions(model.vocab, flat, images.device)
    index = torch.tensor(owner, device=images.device, dtype=torch.long)
    feats = model.encode(images)
    logits, alphas = model.decoder(feats.regions[index], feats.mean[index], ids[:, :-1])
    ce, ds, mask = caption_terms(logits, alphas, ids, model.vocab.pad_id)
    loss = ce + ds_lambda * ds
    return loss, {"ce": float(ce.detach()), "ds": float(ds.detach()), "tokens": int(mask.sum())}


def joint_objective(
    out: JointOutput,
    scene: Tensor,
    caption_ids: Tensor,
    pad_id: int,
    weights: LossWeights,
    *,
    has_distortion: bool,
    ce_share: float | Tensor = 1.0,
) -> tuple[Tensor, dict[str, float | None]]:
    """``w_ce L_ce + ds_lambda L_d + w_p L_p + w_h L_H`` of one forward pass.

    Args:
        out: the pass (:class:`JointOutput`); ``out.psf is None`` means no L_H term.
        scene: the clean images ``X`` the sensor images were made from.
        caption_ids: the ids the pass was teacher-forced with (targets are ``[:, 1:]``).
        pad_id: ``<pad>`` id.
        weights: :class:`LossWeights`.
        has_distortion: whether L_p is a term (False for ``no-lens``).
        ce_share: factor on ``L_ce`` inside the returned total only (data-parallel training
            passes ``local tokens * processes / all tokens``, so that the averaged gradients
            are those of the per-token mean over all processes).

    Returns:
        The total (a 0-dim tensor to differentiate) and the terms as floats: ``total``,
        ``ce``, ``ds``, ``p``, ``h`` (``None`` when a term does not exist) and ``tokens``.
    """
    ce, ds, mask = caption_terms(out.logits, out.alphas, caption_ids, pad_id)
    total = weights.w_ce * ce * ce_share + weights.ds_lambda * ds
    p = h = None
    if has_distortion:
        p = distortion_loss(out.sensor, scene.to(out.sensor.dtype))
        total = total + weights.w_p * p
    if out.psf is not None:
        h = psf_energy_loss(out.psf, weights.psf_radius_px)
        total = total + weights.w_h * h
    unscaled = weights.w_ce * ce + weights.ds_lambda * ds
    unscaled = unscaled + (weights.w_p * p if p is not None else 0.0)
    unscaled = unscaled + (weights.w_h * h if h is not None else 0.0)
    terms: dict[str, float | None] = {
        "total": float(unscaled.detach()),
        "ce": float(ce.detach()),
        "ds": float(ds.detach()),
        "p": None if p is None else float(p.detach()),
        "h": None if h is None else float(h.detach()),
        "tokens": int(mask.sum()),
    }
    return total, terms


def joint_loss(
    joint: JointModel,
    scene: Tensor,
    captions: Sequence[str],
    owner: Sequence[int],
    weights: LossWeights,
) -> tuple[Tensor, dict[str, float | None]]:
    """Forward pass and :func:`joint_objective` of a batch: ``captions[n]`` describes
    ``scene[owner[n]]``."""
    vocab = joint.captioner.vocab
    ids = encode_captions(vocab, captions, scene.device)
    index = torch.as_tensor(list(owner), device=scene.device, dtype=torch.long)
    out = joint(scene, ids, index)
    return joint_objective(out, scene, ids, vocab.pad_id, weights,
                           has_distortion=joint.has_distortion_term)
