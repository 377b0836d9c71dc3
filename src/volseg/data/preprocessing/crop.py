"""Crop and pad boxes in array index space (the grid side is :meth:`Grid.cropped`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["CropMode", "box_overlap", "crop_or_pad_box", "nonzero_box", "slice_or_pad"]

CropMode = Literal["center", "foreground"]
CROP_MODES: tuple[CropMode, ...] = ("center", "foreground")

Box = tuple[tuple[int, ...], tuple[int, ...]]
"""``(start, stop)`` per spatial axis, array order; may reach outside the array (padding)."""


def crop_or_pad_box(
    shape: tuple[int, ...], size: tuple[int, ...], center: tuple[float, ...] | None = None
) -> Box:
    """``(start, stop)`` of a ``size`` box centred on ``center`` (default: the volume's centre).

    Where ``size`` exceeds ``shape`` the box is centred on the volume (symmetric padding);
    otherwise it is shifted to lie inside. Negative starts / stops beyond ``shape`` mean padding.
    """
    starts = []
    for axis, (n, s) in enumerate(zip(shape, size)):
        if s >= n:
            start = -((s - n) // 2)
        else:
            mid = (n - 1) / 2 if center is None else center[axis]
            start = int(np.clip(round(mid - (s - 1) / 2), 0, n - s))
        starts.append(start)
    return tuple(starts), tuple(a + s for a, s in zip(starts, size))


def box_overlap(
    start: Sequence[int], stop: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Where the box ``[start, stop)`` meets an array of spatial ``shape``.

    Returns ``(source, target)`` slices with a leading channel slice: ``source`` indexes the
    array, ``target`` the box-sized output. ``None`` when they do not overlap.
    """
    src, dst = [slice(None)], [slice(None)]
    for a, b, n in zip(start, stop, shape):
        lo, hi = max(a, 0), min(b, n)
        if hi <= lo:
            return None
        src.append(slice(lo, hi))
        dst.append(slice(lo - a, hi - a))
    return tuple(src), tuple(dst)


def slice_or_pad(
    array: np.ndarray, start: tuple[int, ...], stop: tuple[int, ...], fill: Any
) -> np.ndarray:
    """``array[:, start:stop]`` of a ``(C, *S)`` array; ``fill`` (per channel) outside the array.

    A box inside the array gives a view, not a copy.
    """
    if all(a >= 0 for a in start) and all(b <= n for b, n in zip(stop, array.shape[1:])):
        return array[(slice(None), *(slice(a, b) for a, b in zip(start, stop)))]
    size = tuple(b - a for a, b in zip(start, stop))
    fills = np.broadcast_to(np.asarray(fill, dtype=array.dtype), (array.shape[0],))
    out = np.empty((array.shape[0], *size), dtype=array.dtype)
    out[...] = fills.reshape(-1, *[1] * len(size))
    overlap = box_overlap(start, stop, array.shape[1:])
    if overlap is not None:
        out[overlap[1]] = array[overlap[0]]
    return out


def nonzero_box(array: np.ndarray) -> Box:
    """Bounding box (start, stop) of voxels non-zero in any channel; the whole grid if none."""
    mask = np.any(array != 0, axis=0)
    if not mask.any():
        return (0,) * mask.ndim, mask.shape
    starts, stops = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        starts.append(int(idx[0]))
        stops.append(int(idx[-1]) + 1)
    return tuple(starts), tuple(stops)
