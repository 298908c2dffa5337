"""The learnable refractive lens: Zernike surface height and its phase delay (paper Eq. 1).

Surface height ``h(x, y) = sum_j alpha_j Z_j(rho, theta)`` (micrometres, Noll order), on the
``N x N`` lens grid with the unit disk filling it. A thin element of refractive index
``n_lambda`` delays the wave by the optical path ``(n_lambda - 1) h``, so the phase
modulation of Eq. 1 is

    t_phi(x, y) = A(x, y) exp(i 2 pi / lambda (n_lambda - 1) h(x, y)),

with ``A`` the anti-aliased circular aperture (the paper writes ``exp(i 2 pi / lambda phi)``;
``(n - 1) h`` is that optical path ``phi``).

The coefficients are split into a learnable part and a frozen part (``trainable``), so
the defocus baseline learns only Z4 with the same module. A learnable Z4 is a parameter of
its own (``defocus``), apart from the other learnable terms (``coefficients``): half a
micrometre of Z4 is about a wave of defocus, so it needs its own learning rate
(:meth:`Lens.parameter_groups`). Optional per-term bounds (by
default +-``coefficient_bound_um`` for Noll ``j >= 5``) are enforced by projection, never by
a clamp in the forward pass (a clamp there would zero the gradient of a coefficient sitting at
its bound, so it could never come back): starting values and :meth:`Lens.set_coefficients_um`
are projected onto the bounds, and training calls :meth:`Lens.project_` after every optimiser
step. The height is evaluated with the exact separable Chebyshev form of the basis
(:class:`~privcap.optics.zernike_polynomials.SeparableZernike`) in float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from privcap.optics.aperture import circular_aperture
from privcap.optics.config import OpticsConfig
from privcap.optics.propagation import phasor
from privcap.optics.zernike_polynomials import separable_zernike, unit_grid

__all__ = ["Lens", "random_coefficients_um", "trainable_indices"]


def trainable_indices(trainable: str | Iterable[int], num_terms: int) -> list[int]:
    """0-based indices of the learnable coefficients.

    ``"all"``, ``"none"``, ``"z4"`` (defocus only) or an iterable of Noll indices.
    """
    if isinstance(trainable, str):
        if trainable == "all":
            return list(range(num_terms))
        if trainable == "none":
            return []
        if trainable == "z4":
            if num_terms < 4:
                raise ValueError(f"trainable='z4' needs num_terms >= 4, got {num_terms}")
            return [3]
        raise ValueError(
            f"trainable must be 'all', 'none', 'z4' or Noll indices, got {trainable!r}"
        )
    nolls = sorted({int(j) for j in trainable})
    for j in nolls:
        if not 1 <= j <= num_terms:
            raise ValueError(f"trainable Noll index must be in 1 .. {num_terms}, got {j}")
    return [j - 1 for j in nolls]


def random_coefficients_um(
    config: OpticsConfig, scale_um: float = 0.5, seed: int = 0, z4_um: float | None = None
) -> torch.Tensor:
    """A random lens: Noll ``j >= 5`` uniform in ``+-scale_um`` (within the configured bound),
    Z1-Z3 zero, Z4 at ``z4_um`` (default ``config.z4_init_um``)."""
    gen = torch.Generator().manual_seed(seed)
    coeffs = (torch.rand(config.num_terms, generator=gen, dtype=torch.float64) * 2 - 1) * scale_um
    if config.coefficient_bound_um is not None:
        coeffs.clamp_(-config.coefficient_bound_um, config.coefficient_bound_um)
    coeffs[: min(4, config.num_terms)] = 0.0
    if config.num_terms >= 4:
        coeffs[3] = config.z4_init_um if z4_um is None else z4_um
    return coeffs.float()


class Lens(nn.Module):
    """Refractive lens with ``config.num_terms`` Zernike coefficients (micrometres).

    Parameters
    ----------
    config:
        geometry, wavelengths, refractive indices, number of terms, Z4 start, bounds.
    trainable:
        ``"all"`` (default), ``"z4"``, ``"none"`` or an iterable of Noll indices.
    init_coefficients_um:
        starting coefficients (length ``num_terms``); default: 0 except Z4 =
        ``config.z4_init_um``.
    bounds_um:
        ``(lower, upper)`` sequences of length ``num_terms`` (``-inf`` / ``inf`` allowed);
        default: ``+-config.coefficient_bound_um`` for Noll ``j >= config.bounded_from_noll``.

    Learnable parameters: ``coefficients`` (the learnable terms other than Z4, Noll indices
    ``trainable_index + 1``; it does not require a gradient when empty) and ``defocus`` (Z4,
    shape ``(1,)``, ``None`` when frozen); use :meth:`parameter_groups` to give Z4 its own
    learning rate and :meth:`project_` after each optimiser step to keep the stored values
    within the bounds. Starting values outside the bounds are projected onto them.
    """

    def __init__(
        self,
        config: OpticsConfig,
        trainable: str | Iterable[int] = "all",
        init_coefficients_um: Sequence[float] | torch.Tensor | None = None,
        bounds_um: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        num = config.num_terms
        if init_coefficients_um is None:
            init = torch.zeros(num, dtype=torch.float64)
            if num >= 4:
                init[3] = config.z4_init_um
        else:
            init = torch.as_tensor(init_coefficients_um, dtype=torch.float64).detach().clone()
            if init.shape != (num,):
                raise ValueError(
                    f"init_coefficients_um must have shape ({num},), got {tuple(init.shape)}"
                )
        _check_finite(init, "init_coefficients_um")
        if bounds_um is None:
            lower = torch.full((num,), -math.inf, dtype=torch.float64)
            upper = torch.full((num,), math.inf, dtype=torch.float64)
            if config.coefficient_bound_um is not None:
                start = max(config.bounded_from_noll - 1, 0)
                lower[start:] = -config.coefficient_bound_um
                upper[start:] = config.coefficient_bound_um
        else:
            lower = torch.as_tensor(bounds_um[0], dtype=torch.float64)
            upper = torch.as_tensor(bounds_um[1], dtype=torch.float64)
            if lower.shape != (num,) or upper.shape != (num,) or bool((lower > upper).any()):
                raise ValueError(
                    f"bounds_um must be (lower, upper) of length {num} with lower <= upper"
                )
        init = torch.minimum(torch.maximum(init, lower), upper)  # project onto the bounds
        index = trainable_indices(trainable, num)
        learn_z4 = 3 in index
        idx = torch.tensor([i for i in index if i != 3], dtype=torch.long)
        self.register_buffer("trainable_index", idx, persistent=False)
        #: learnable coefficients (um) of the Noll terms ``trainable_index + 1`` (Z4 excluded)
        self.coefficients = nn.Parameter(init[idx].float(), requires_grad=idx.numel() > 0)
        #: learnable Z4 coefficient (um), shape (1,), or None when Z4 is frozen
        self.defocus = nn.Parameter(init[3:4].float()) if learn_z4 else None
        self.register_buffer("frozen_coefficients_um", init.float())
        self.register_buffer("lower_um", lower.float(), persistent=False)
        self.register_buffer("upper_um", upper.float(), persistent=False)
        self.register_buffer(
            "aperture", circular_aperture(config.grid_size).float(), persistent=False
        )
        wavelengths = np.asarray(config.wavelengths_m)
        indices = np.asarray(config.refractive_indices)
        # phase (rad) per micrometre of height: 2 pi / lambda * (n - 1) * 1e-6
        self.register_buffer(
            "phase_per_um",
            torch.from_numpy(2 * np.pi / wavelengths * (indices - 1) * 1e-6).float(),
            persistent=False,
        )
        self._basis = separable_zernike(num)
        self._axis = self._basis.axis_matrix(unit_grid(config.grid_size))  # float64 (N, P)

    @property
    def num_terms(self) -> int:
        return self.config.num_terms

    def extra_repr(self) -> str:
        return (
            f"num_terms={self.num_terms}, grid_size={self.config.grid_size}, "
            f"trainable={self.coefficients.numel() + (self.defocus is not None)}"
        )

    def parameter_groups(
        self, lr: float, defocus_lr: float | None = None
    ) -> list[dict[str, object]]:
        """Optimiser parameter groups: the learnable Zernike terms at ``lr`` and Z4 at
        ``defocus_lr`` (default ``lr``); empty groups are left out."""
        groups: list[dict[str, object]] = []
        if self.coefficients.numel():
            groups.append({"params": [self.coefficients], "lr": lr})
        if self.defocus is not None:
            groups.append({"params": [self.defocus], "lr": lr if defocus_lr is None
                           else defocus_lr})
        return groups

    def coefficients_um(self) -> torch.Tensor:
        """All ``num_terms`` coefficients (um), learnable ones inserted.

        No clamp here: the gradient reaches every coefficient, also one at its bound; the
        bounds hold because values are projected (:meth:`project_`)."""
        full = self.frozen_coefficients_um.to(self.coefficients.dtype)
        if self.coefficients.numel():
            full = full.index_copy(0, self.trainable_index, self.coefficients)
        if self.defocus is not None:
            full = torch.cat([full[:3], self.defocus.to(full.dtype), full[4:]])
        _check_finite(full, "coefficients")
        return full

    @torch.no_grad()
    def set_coefficients_um(self, values: Sequence[float] | torch.Tensor) -> None:
        """Overwrite all coefficients (learnable and frozen) with ``values`` (um), projected
        onto the bounds."""
        values = torch.as_tensor(values, dtype=torch.float64).cpu()
        if values.shape != (self.num_terms,):
            raise ValueError(
                f"values must have shape ({self.num_terms},), got {tuple(values.shape)}"
            )
        _check_finite(values, "values")
        values = torch.minimum(torch.maximum(values, self.lower_um.double().cpu()),
                               self.upper_um.double().cpu()).to(self.frozen_coefficients_um.device)
        self.frozen_coefficients_um.copy_(values)
        self.coefficients.copy_(values[self.trainable_index])
        if self.defocus is not None:
            self.defocus.copy_(values[3:4])

    @torch.no_grad()
    def project_(self) -> None:
        """Project the learnable coefficients onto their bounds in place (call after every
        optimiser step)."""
        idx = self.trainable_index
        self.coefficients.copy_(
            torch.clamp(self.coefficients, self.lower_um[idx], self.upper_um[idx])
        )
        if self.defocus is not None:
            self.defocus.copy_(torch.clamp(self.defocus, self.lower_um[3:4], self.upper_um[3:4]))

    def state_version(self) -> tuple:
        """Changes whenever any coefficient changes (in place or by replacement)."""
        tensors = [self.coefficients, self.frozen_coefficients_um]
        if self.defocus is not None:
            tensors.append(self.defocus)
        return tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors)

    def height_um(self) -> torch.Tensor:
        """Surface height ``sum_j alpha_j Z_j`` (um) on the ``N x N`` grid (no aperture).

        Rows are ``y``, columns ``x``; the dtype is that of the coefficients (the sum itself
        runs in float64).
        """
        coeffs = self.coefficients_um()
        axis = self._axis.to(coeffs.device)
        return self._basis.surface(coeffs, axis, axis).to(coeffs.dtype)

    def phase_rad(self) -> torch.Tensor:
        """Phase delay ``2 pi / lambda (n_lambda - 1) h`` per wavelength, ``C x N x N``."""
        h = self.height_um()
        return h.unsqueeze(0) * self.phase_per_um.to(h.dtype)[:, None, None]

    def transmittance(self) -> torch.Tensor:
        """``t_phi`` of Eq. 1: aperture times ``exp(i phase)``, complex ``C x N x N``."""
        phase = self.phase_rad()
        return phasor(self.aperture.to(phase.dtype), phase)


def _check_finite(values: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)]
        raise ValueError(f"{name} must be finite, got non-finite values {bad.tolist()[:5]}")
