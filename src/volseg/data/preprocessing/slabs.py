"""Restore a result onto the source grid a slab of rows at a time, reading only what it needs.

:func:`~volseg.data.preprocessing.restore` maps a whole ``(K, *grid)`` result onto the source
grid at once: the full-size output and one channel's SimpleITK copies live beside the input.
:func:`restore_rows` gives rows ``start:stop`` (first array axis) of that same output from the
box of the working grid those rows can reach, so a caller that decodes slab by slab (the
Predictor) never holds the restored probabilities whole.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from volseg.data.preprocessing.grid import Grid, PreprocessRecord
from volseg.data.preprocessing.spatial import Interpolation, resample_to_grid
from volseg.io import Volume

__all__ = ["restore_rows", "row_grid"]

# voxels of margin around the box a slab reaches: beyond linear interpolation's one neighbour
# and ITK's half-voxel tolerance at the image border, so a cut of the box is never a border
_MARGIN = 2


def row_grid(grid: Grid, start: int, stop: int) -> Grid:
    """The sub-grid of rows ``start:stop`` along the first array axis (ITK's last index)."""
    offset = np.zeros(grid.ndim)
    offset[-1] = start  # ITK index order is the reverse of array order
    origin = np.asarray(grid.origin) + grid.direction_matrix @ (np.asarray(grid.spacing) * offset)
    shape = (stop - start, *grid.shape[1:])
    return Grid(shape, grid.spacing, tuple(float(v) for v in origin), grid.direction)


def _box(source: Grid, target: Grid) -> tuple[slice, ...] | None:
    """Array-order slices of ``source`` that resampling onto ``target`` can read, or ``None``."""
    corners = np.array(
        list(itertools.product(*[(0, n - 1) for n in reversed(target.shape)])), dtype=float
    )
    physical = np.asarray(target.origin) + (corners * target.spacing) @ target.direction_matrix.T
    inverse = np.linalg.inv(source.direction_matrix)
    index = ((physical - source.origin) @ inverse.T) / np.asarray(source.spacing)
    slices = []
    for axis, n in enumerate(reversed(source.shape)):  # ITK order
        low = max(0, math.floor(index[:, axis].min()) - _MARGIN)
        high = min(n, math.ceil(index[:, axis].max()) + _MARGIN + 1)
        if low >= high:
            return None
        slices.append(slice(low, high))
    return tuple(reversed(slices))


def restore_rows(
    result: Volume,
    record: PreprocessRecord,
    start: int,
    stop: int,
    interpolation: Interpolation = "linear",
    fill: float | Sequence[float] = 0.0,
) -> np.ndarray:
    """Rows ``start:stop`` of ``restore(result, record, interpolation, fill).array``.

    ``(C, stop - start, *source.shape[1:])``; the same resampling, from a crop of ``result``
    (with a margin, so every value equals the whole-volume one up to float rounding of the
    continuous index).
    """
    target = row_grid(record.source, start, stop)
    if record.grid == record.source:
        return result.array[:, start:stop]
    box = _box(record.grid, target)
    channels = result.array.shape[0]
    if box is None:  # the working grid lies out of reach: the fill everywhere
        fills = np.broadcast_to(np.asarray(fill, np.float64), (channels,))
        out = np.empty((channels, *target.shape), result.array.dtype)
        out[:] = fills.reshape(-1, *[1] * len(target.shape))
        return out
    corner = np.array([s.start for s in reversed(box)], dtype=float)  # ITK order
    grid = record.grid
    origin = np.asarray(grid.origin) + grid.direction_matrix @ (np.asarray(grid.spacing) * corner)
    part = Volume(
        result.array[(slice(None), *box)],
        grid.spacing,
        tuple(float(v) for v in origin),
        grid.direction,
        result.source,
    )
    return resample_to_grid(part, target, interpolation, fill).array
