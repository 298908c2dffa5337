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


# ---------------------------------------------------------------------------
# Captioning losses (L_ce, L_d)
# ---------------------------------------------------------------------------
