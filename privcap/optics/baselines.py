"""The set of cameras the paper compares (Table 1), built from one configuration.

* ``"no lens"`` -- :class:`IdentityCamera` (the captioner sees the clean scene);
* ``"focused lens"`` -- Z4 at the analytic focus of green, nothing else: a sharp camera;
* ``"defocus lens"`` -- :class:`DefocusCamera`, Z4 moved ``defocus_um`` past the focus
  (the baseline learns only this term);
* ``"random Zernike lens"`` -- focus plus random Noll ``j >= 5`` terms within
  ``+-random_scale_um`` (an untrained stand-in for the learned lens);
* ``"low-res sensor"`` -- :class:`LowResCamera`, the image area-averaged on a sensor
  ``lowres_factor`` times smaller per side (16 x 16 for 256-pixel scenes) or of
  ``lowres_sensor_size`` pixels, upsampled back.

All cameras are returned in evaluation mode (no read noise).
"""

from __future__ import annotations

from torch import nn

from privcap.optics.camera import DefocusCamera, IdentityCamera, LensCamera, LowResCamera
from privcap.optics.config import OpticsConfig
from privcap.optics.lens import random_coefficients_um

__all__ = ["comparison_cameras"]


def comparison_cameras(
    config: OpticsConfig,
    defocus_um: float = 1.0,
    random_scale_um: float = 0.25,
    seed: int = 0,
    lowres_factor: int | None = None,
    lowres_sensor_size: int | tuple[int, int] | None = None,
) -> dict[str, nn.Module]:
    """The five cameras of the module docstring, keyed by name, in evaluation mode."""
    focus = config.focus_z4_um()[1]
    focused = [0.0] * config.num_terms
    focused[3] = focus
    cameras: dict[str, nn.Module] = {
        "no lens": IdentityCamera(),
        "focused lens": LensCamera(config, trainable="none", init_coefficients_um=focused),
        "defocus lens": DefocusCamera(config, z4_init_um=focus + defocus_um),
        "random Zernike lens": LensCamera(
            config,
            init_coefficients_um=random_coefficients_um(config, random_scale_um, seed, focus),
        ),
        "low-res sensor": LowResCamera(
            factor=lowres_factor, sensor_size=lowres_sensor_size, config=config
        ),
    }
    for camera in cameras.values():
        camera.eval()
    return cameras
