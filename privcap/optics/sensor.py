"""Sensor sampling: integrating an intensity over square pixels (area resampling).

A sensor pixel collects the light that falls on its area, so a finely sampled intensity is
resampled to the pixel grid by *integrating* it over each pixel, not by interpolating it.
Each fine sample is taken as constant over its cell; a pixel edge may cut a cell, which then
contributes in proportion to the overlap. The 2-D integral applies the 1-D one to rows and
then to columns. It works for any ratio of pitches (3.5 in the full profile: 3 um lens
samples, 10.5 um PSF pixels) and any offset, runs in ``O(size)`` and is differentiable.

:func:`area_matrix` gives the same operation as a small dense matrix, for image-sized
uses such as the 16 x 16 low-resolution camera.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AreaResampler", "area_matrix", "pixel_edges"]


def pixel_edges(
    num_pixels: int, pixel_pitch: float, center_index: int | None = None
) -> torch.Tensor:
    """Edges (float64, ``num_pixels + 1``) of pixels of ``pixel_pitch`` whose pixel
    ``center_index`` (default ``num_pixels // 2``) is centred on position 0."""
    if center_index is None:
        center_index = num_pixels // 2
    i = torch.arange(num_pixels + 1, dtype=torch.float64)
    return (i - center_index - 0.5) * pixel_pitch


class AreaResampler(nn.Module):
    """Integrate ``... x W x W`` cell values over the pixels delimited by ``edges``.

    ``edges`` (length ``K + 1``, increasing) are positions in cell units: input cell ``k``
    spans ``[k, k + 1)``. Edges outside ``[0, W]`` are refused. The output is
    ``... x K x K`` (sums, not means: the integral of a density given per cell).

    Each pixel is a short weighted sum of the cells it overlaps (a banded matrix). When the
    pixel pitch is a ratio ``p / q`` of the cell pitch (3.5 = 7 / 2 in the full profile), the
    pixels fall into ``q`` phases that share their weights, and pixel ``i`` of a phase starts
    ``p`` cells after pixel ``i - 1``: the sum is then a handful of strided slices times
    scalars. Otherwise the cells are gathered by index. Both are exact, differentiable and
    free of running-sum rounding.
    """

    def __init__(self, edges: torch.Tensor, input_size: int, max_phases: int = 16) -> None:
        super().__init__()
        edges = torch.as_tensor(edges, dtype=torch.float64)
        if edges.dim() != 1 or edges.numel() < 2 or bool((edges[1:] <= edges[:-1]).any()):
            raise ValueError("edges must be a 1-D increasing sequence of length >= 2")
        if float(edges[0]) < -1e-9 or float(edges[-1]) > input_size + 1e-9:
            raise ValueError(
                f"edges must lie within [0, input_size={input_size}], got "
                f"[{float(edges[0]):.4g}, {float(edges[-1]):.4g}]"
            )
        edges = edges.clamp(0, input_size)
        first = torch.floor(edges[:-1]).long().clamp(max=input_size - 1)
        taps = int((torch.ceil(edges[1:]) - first).max())
        index = first[:, None] + torch.arange(taps)[None, :]
        cell_lo = index.to(torch.float64)
        overlap = torch.minimum(cell_lo + 1, edges[1:, None]) - torch.maximum(
            cell_lo, edges[:-1, None]
        )
        weight = torch.where(index < input_size, overlap.clamp(min=0), 0.0)
        index = index.clamp(max=input_size - 1)
        self.input_size = int(input_size)
        self.output_size = edges.numel() - 1
        self.taps = taps
        self.register_buffer("index", index.reshape(-1), persistent=False)
        self.register_buffer("weight", weight.float(), persistent=False)
        self.phases = self._find_phases(first, weight, max_phases)
        if self.phases is not None:
            q, step = self.phases
            self.phase_terms = [
                [(int(first[f]) + tap, float(weight[f, tap])) for tap in range(taps)
                 if float(weight[f, tap]) > 0]
                for f in range(q)
            ]

    def _find_phases(self, first, weight, max_phases):
        k = self.output_size
        for q in range(1, min(max_phases, k) + 1):
            if k % q or k == q:
                continue
            step = int(first[q] - first[0])
            if bool((first[q:] - first[:-q] == step).all()) and torch.allclose(
                weight[q:], weight[:-q], atol=1e-9, rtol=0
            ):
                last_cell = max(
                    int(first[f]) + tap + step * (k // q - 1)
                    for f in range(q) for tap in range(self.taps) if float(weight[f, tap]) > 0
                )
                if step > 0 and last_cell < self.input_size:
                    return q, step
        return None

    def _integrate(self, x: torch.Tensor) -> torch.Tensor:
        """Integrate along the last dimension (no autograd)."""
        if self.phases is None:
            gathered = x.index_select(-1, self.index).unflatten(-1, (self.output_size,
                                                                      self.taps))
            return (gathered * self.weight.to(x.dtype)).sum(-1)
        q, step = self.phases
        n = self.output_size // q
        span = step * (n - 1) + 1
        out = x.new_zeros(x.shape[:-1] + (n, q))
        for phase, terms in enumerate(self.phase_terms):
            acc = out[..., phase]
            for start, w in terms:
                acc.add_(x[..., start : start + span : step], alpha=w)
        return out.flatten(-2)  # pixel i = n_i * q + phase

    def _integrate_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`_integrate`: spread pixel values back onto the cells."""
        out = y.new_zeros(y.shape[:-1] + (self.input_size,))
        if self.phases is None:
            spread = (y.unsqueeze(-1) * self.weight.to(y.dtype)).flatten(-2)
            return out.index_add_(-1, self.index, spread)
        q, step = self.phases
        n = self.output_size // q
        span = step * (n - 1) + 1
        y = y.unflatten(-1, (n, q))
        for phase, terms in enumerate(self.phase_terms):
            for start, w in terms:
                out[..., start : start + span : step].add_(y[..., phase], alpha=w)
        return out

    def _axis(self, x: torch.Tensor) -> torch.Tensor:
        return _BandedAxis.apply(x, self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            raise ValueError(
                f"input must end with {self.input_size} x {self.input_size}, "
                f"got {tuple(x.shape)}"
            )
        x = self._axis(x)  # ... x W x K
        return self._axis(x.transpose(-1, -2)).transpose(-1, -2)  # ... x K x K


class _BandedAxis(torch.autograd.Function):
    """Pixel integration along the last axis with an explicit adjoint (one zero fill and a
    few strided additions instead of one full-size zero tensor per strided slice)."""

    @staticmethod
    def forward(ctx, x, resampler):  # type: ignore[override]
        ctx.resampler = resampler
        return resampler._integrate(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return ctx.resampler._integrate_adjoint(grad), None


def area_matrix(in_size: int, out_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``out_size x in_size`` matrix that averages ``in_size`` samples into ``out_size``
    equal pixels by exact overlap (rows sum to 1); ``A @ X @ A.T`` area-resamples an image."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    ratio = in_size / out_size
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        a, b = i * ratio, (i + 1) * ratio
        for k in range(int(math.floor(a)), min(int(math.ceil(b)), in_size)):
            overlap = min(b, k + 1) - max(a, k)
            if overlap > 0:
                m[i, k] = overlap / ratio
    return m.to(dtype)
