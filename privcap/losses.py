"""Training losses of the paper (Eqs. 6-9).

- ``distortion_loss`` -- L_p = 1 - ||X_hat - X||^2 (mean squared error), promotes blur;
- ``caption_cross_entropy`` -- L_ce (Eq. 6), token cross-entropy with padding masked;
- ``doubly_stochastic_attention`` -- the attention regulariser of L_d (Eq. 7);
- ``psf_energy_loss`` -- L_H (Eqs. 8-9), PSF energy outside a centred disk.
"""

from __future__ import annotations

import torch

# ---------------------------------------------------------------------------
# Optics losses (L_p, L_H)
# ---------------------------------------------------------------------------


def psf_disk_mask(
    height: int, width: int, radius_px: float, device: torch.device | None = None
) -> torch.Tensor:
    """Mask ``M`` of Eq. 9: 1 where ``(i - p)^2 + (j - q)^2 <= r^2``, 0 elsewhere.

    The centre ``(p, q) = (height // 2, width // 2)`` is the pixel of the optical axis in
    the PSFs of :mod:`privcap.optics` (the kernel centre of the FFT convolution).
    """
    if not (isinstance(radius_px, (int, float)) and 0 < radius_px < float("inf")):
        raise ValueError(f"radius_px must be a positive finite number, got {radius_px!r}")
    i = torch.arange(height, device=device, dtype=torch.float64) - height // 2
    j = torch.arange(width, device=device, dtype=torch.float64) - width // 2
    return (i[:, None] ** 2 + j[None, :] ** 2 <= radius_px**2).to(torch.float32)


def psf_energy_loss(psf: torch.Tensor, radius_px: float) -> torch.Tensor:
    """L_H (Eqs. 8-9): ``||H (.) M - H||_F``, the Frobenius norm of the PSF outside a
    centred disk of radius ``radius_px`` pixels.

    Eq. 8 prints a convolution sign between ``H`` and ``M``; the text ("minimizing the values
    outside a circular mask") describes the element-wise product used here. ``psf`` is
    ``... x K x K`` (e.g. ``3 x K x K``); the norm runs over all its elements. Returns a
    0-dim tensor (its gradient stays finite when the PSF lies entirely inside the disk).
    """
    if not isinstance(psf, torch.Tensor) or psf.dim() < 2 or not psf.is_floating_point():
        raise ValueError(
            "psf must be a floating tensor of shape ... x K x K, got "
            f"{tuple(psf.shape) if isinstance(psf, torch.Tensor) else type(psf).__name__}"
        )
    mask = psf_disk_mask(psf.shape[-2], psf.shape[-1], radius_px, psf.device).to(psf.dtype)
    outside = psf * mask - psf
    squared = outside.square().sum()
    return squared.clamp_min(torch.finfo(psf.dtype).tiny).sqrt()


def distortion_loss(sensor: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
    """L_p = 1 - ||X_hat - X||^2, with ``||.||^2`` the mean squared error over all pixels,
    channels and images (images in [0, 1], so L_p lies in [0, 1]). Minimising it pushes the
    sensor image ``X_hat`` away from the scene ``X``: it promotes distortion."""
    if not isinstance(sensor, torch.Tensor) or not isinstance(scene, torch.Tensor):
        raise ValueError("sensor and scene must be torch tensors")
    if sensor.shape != scene.shape:
        raise ValueError(
            f"sensor and scene must have the same shape, got sensor {tuple(sensor.shape)} "
            f"and scene {tuple(scene.shape)}"
        )
    return 1.0 - torch.mean((sensor - scene) ** 2)


# ---------------------------------------------------------------------------
# Captioning losses (L_ce, L_d)
# ---------------------------------------------------------------------------


def caption_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> torch.Tensor:
    """L_ce (Eq. 6): mean token cross-entropy of the predicted words, padding masked.

    Eq. 6 sums ``-log softmax(y)_c`` of the ground-truth word ``g_c`` over the ``C`` words of
    a caption; here the sum runs over every non-padding target token of the batch and is
    divided by their number (a per-token mean, so the scale does not depend on caption length).

    Args:
        logits: ``B x T x K`` unnormalised word scores (``W_p h2_t + b_p``).
        targets: ``B x T`` ground-truth word ids; positions equal to ``pad_id`` are ignored.
        pad_id: id of the ``<pad>`` token.

    Returns:
        0-dim tensor, differentiable with respect to ``logits``.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be B x T x K and targets B x T, got logits {tuple(logits.shape)}, "
            f"targets {tuple(targets.shape)}"
        )
    mask = targets != pad_id
    n_tokens = int(mask.sum())
    if n_tokens == 0:
        raise ValueError(f"targets contain only padding (pad_id={pad_id}): nothing to score")
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / n_tokens


def doubly_stochastic_attention(
    alphas: torch.Tensor, mask: torch.Tensor | None = None, lam: float = 1.0
) -> torch.Tensor:
    """Attention regulariser of L_d (Eq. 7): ``lam * sum_i (1 - sum_t alpha_{t,i})^2``.

    Pushes the attention weights of a caption to cover every one of the ``L`` regions about
    once over its ``C`` time steps (Xu et al. 2015, "doubly stochastic attention"). The first
    term of Eq. 7, ``-log p(y | a)``, is :func:`caption_cross_entropy`.

    Args:
        alphas: ``B x T x L`` attention weights (each ``alphas[b, t]`` sums to 1).
        mask: optional ``B x T`` boolean (or 0/1) tensor, true at the time steps that belong to
            the caption; steps after its end are left out of ``sum_t``.
        lam: weight ``lambda`` (>= 0).

    Returns:
        0-dim tensor: the regulariser summed over regions, averaged over the batch.
    """
    if alphas.dim() != 3:
        raise ValueError(f"alphas must be B x T x L, got shape {tuple(alphas.shape)}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    if mask is not None:
        if mask.shape != alphas.shape[:2]:
            raise ValueError(
                f"mask must be B x T = {tuple(alphas.shape[:2])}, got {tuple(mask.shape)}"
            )
        alphas = alphas * mask.to(alphas.dtype).unsqueeze(-1)
    coverage = alphas.sum(dim=1)  # B x L: sum over t
    return lam * ((1.0 - coverage) ** 2).sum(dim=1).mean()
