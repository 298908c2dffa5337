"""Optical encoder of the paper (Sec. 2.1, Eqs. 1-2): Zernike lens, Fresnel PSF, cameras.

Modules, one concept each:

- :mod:`~privcap.optics.zernike_polynomials` -- Noll-indexed Zernike polynomials, exact
  separable form; the polynomial itself is ``privcap.optics.zernike(j, rho, theta)``
  (``from privcap.optics import zernike``);
- :mod:`~privcap.optics.config` -- :class:`OpticsConfig` (geometry, profiles);
- :mod:`~privcap.optics.aperture` -- anti-aliased circular aperture;
- :mod:`~privcap.optics.lens` -- :class:`Lens`, surface height and phase delay;
- :mod:`~privcap.optics.propagation` -- Fresnel transfer function / angular spectrum;
- :mod:`~privcap.optics.sensor` -- integration over sensor pixels;
- :mod:`~privcap.optics.psf` -- :class:`FresnelPSF`, the RGB PSF of Eq. 1;
- :mod:`~privcap.optics.convolution` -- zero-padded FFT convolution of Eq. 2;
- :mod:`~privcap.optics.camera` -- :class:`LensCamera`, :class:`DefocusCamera`,
  :class:`LowResCamera`, :class:`IdentityCamera`;
- :mod:`~privcap.optics.baselines` -- the cameras compared in the paper, side by side;
- :mod:`~privcap.optics.analytic` / :mod:`~privcap.optics.validation` -- closed-form
  diffraction results and their simulated counterparts.
"""

from privcap.optics.analytic import focus_z4_um
from privcap.optics.aperture import circular_aperture
from privcap.optics.baselines import comparison_cameras
from privcap.optics.camera import (
    CameraResponse,
    DefocusCamera,
    IdentityCamera,
    LensCamera,
    LowResCamera,
    as_rgb_batch,
)
from privcap.optics.config import PROFILES, OpticsConfig, optics_config
from privcap.optics.convolution import direct_convolve, fft_convolve
from privcap.optics.lens import Lens, random_coefficients_um
from privcap.optics.propagation import (
    Propagator,
    check_fresnel_sampling,
    fresnel_transfer_function,
    min_padded_size,
)
from privcap.optics.psf import FresnelPSF
from privcap.optics.sensor import AreaResampler, area_matrix
from privcap.optics.zernike_polynomials import (
    SeparableZernike,
    nm_to_noll,
    noll_to_nm,
    separable_zernike,
    zernike,
    zernike_basis,
)

__all__ = [
    "AreaResampler",
    "CameraResponse",
    "DefocusCamera",
    "FresnelPSF",
    "IdentityCamera",
    "Lens",
    "LensCamera",
    "LowResCamera",
    "OpticsConfig",
    "PROFILES",
    "Propagator",
    "SeparableZernike",
    "area_matrix",
    "as_rgb_batch",
    "check_fresnel_sampling",
    "circular_aperture",
    "comparison_cameras",
    "direct_convolve",
    "fft_convolve",
    "focus_z4_um",
    "fresnel_transfer_function",
    "min_padded_size",
    "nm_to_noll",
    "noll_to_nm",
    "optics_config",
    "random_coefficients_um",
    "separable_zernike",
    "zernike",
    "zernike_basis",
]
