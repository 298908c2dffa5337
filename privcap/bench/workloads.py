"""The inputs every optics contender is timed on: geometries, lens and images.

Shared by the benchmark section (:mod:`privcap.bench.optics`) and the tasks its memory
probes run in fresh processes, so that both sides of a comparison see the same work.

Geometries are named: ``"quick"`` and ``"full"`` are :meth:`OpticsConfig.quick` and
:meth:`OpticsConfig.full` (the paper's camera); ``"smoke-quick"`` and ``"smoke-full"`` are
tiny stand-ins (32- and 64-sample lenses, the quick camera scaled down at the same f-number)
for the test suite's smoke runs, whose numbers mean nothing.
"""

from __future__ import annotations

import torch

from privcap.optics import OpticsConfig, random_coefficients_um

__all__ = ["GEOMETRIES", "bench_config", "bench_images", "bench_lens_coefficients_um"]

#: names accepted by :func:`bench_config`
GEOMETRIES = ("quick", "full", "smoke-quick", "smoke-full")


def _tiny(grid_size: int, num_terms: int, psf_size: int) -> OpticsConfig:
    """The quick camera scaled to ``grid_size`` lens samples (same pitch and f-number)."""
    quick = OpticsConfig.quick()
    scale = grid_size / quick.grid_size
    base = quick.replace(
        grid_size=grid_size,
        num_terms=num_terms,
        psf_size=psf_size,
        image_size=psf_size,
        sensor_distance_m=quick.sensor_distance_m * scale,
        object_distance_m=quick.object_distance_m * scale,
        psf_radius_px=psf_size / 8,
    )
    return base.replace(z4_init_um=round(base.focus_z4_um()[1], 3))


def bench_config(name: str) -> OpticsConfig:
    """The optics geometry called ``name`` (one of :data:`GEOMETRIES`)."""
    if name == "quick":
        return OpticsConfig.quick()
    if name == "full":
        return OpticsConfig.full()
    if name == "smoke-quick":
        return _tiny(32, 10, 16)
    if name == "smoke-full":
        return _tiny(64, 21, 32)
    raise ValueError(f"geometry must be one of {GEOMETRIES}, got {name!r}")


def bench_lens_coefficients_um(config: OpticsConfig) -> torch.Tensor:
    """The benchmark's lens: random Noll ``j >= 5`` terms within +-0.5 um (and the
    configured bound), focused (Z4 = ``z4_init_um``)."""
    return random_coefficients_um(config, scale_um=0.5, seed=0)


def bench_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """``batch x 3 x size x size`` uniform random scenes in [0, 1] (float32)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=gen)
