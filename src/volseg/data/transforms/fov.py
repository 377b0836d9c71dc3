"""Field-of-view cuts: the scan ends part-way through the head, as other scanners frame it.

A scanner records a box; what lies beyond it is not in the image (zero-filled where the image is
resampled onto a larger grid, or simply absent where the image ends there), and not in the
reference either. A model trained on one generously framed head has only ever seen one framing:
:class:`RandomFovCut` shows it heads cut at any border, at any depth, with the label cut too.

Augmentation runs after :mod:`~volseg.data.preprocessing`'s normalisation, so "background" is the
value the scanner's 0 has become. For non-negative scans (MR magnitude) and CT air, normalised
by ``percentile``, ``zscore`` or ``none``, raw 0 (or air) is the darkest value of the case: its
channel **minimum** (the default fill). With ``zscore_nonzero`` the background stays at 0: give
``fill: 0``. Intensity transforms listed in the same :class:`~volseg.data.transforms.base.Compose`
act after the cut, so the filled region gets the same noise, bias, gamma and shift as the
scan's own background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from volseg.data.transforms.base import Context, MaskTransform, register_transform

__all__ = ["FovCutParams", "RandomFovCut", "head_box"]

_MODES = ("minimum", "edge")


@dataclass(frozen=True)
class FovCutParams:
    """The kept box of the input and what lies beyond it.

    Attributes:
        first, last: per array axis, the first and last kept voxel of the input (inclusive);
            ``None`` where that border is not cut.
        fill: per channel image value beyond the box; ``None``: the box's border values (the
            scan simply ends at the cut, read as volseg reads the end of any volume).
    """

    first: tuple[int | None, ...]
    last: tuple[int | None, ...]
    fill: tuple[float, ...] | None


def head_box(context: Context, threshold: float = 0.1) -> tuple[list[int], list[int]]:
    """First and last voxel per axis of the head (the object) in the input of ``context``.

    The head is where any channel exceeds its minimum by ``threshold`` of its range (the
    case's :class:`~volseg.data.transforms.base.ChannelStats`); the whole input if none does.
    One pass over the input (a few ms for a 256^3 case).
    """
    image = context.image
    shape = tuple(int(n) for n in image.shape[1:])
    inside = torch.zeros(shape, dtype=torch.bool)
    for channel, stats in zip(image, context.channel_stats()):
        inside |= channel > stats.minimum + threshold * (stats.maximum - stats.minimum)
    first, last = [0] * len(shape), [n - 1 for n in shape]
    if not bool(inside.any()):
        return first, last
    for axis in range(len(shape)):
        others = tuple(a for a in range(len(shape)) if a != axis)
        hits = torch.nonzero(inside.any(dim=others) if others else inside)[:, 0]
        first[axis], last[axis] = int(hits[0]), int(hits[-1])
    return first, last


@register_transform("fov_cut")
class RandomFovCut(MaskTransform[FovCutParams]):
    """Cut the input at one or more of its borders: beyond the cut the image is background and
    the label 0.

    When it fires, ``1..borders`` of the ``2 x len(axes)`` borders are chosen at random; each is
    moved into the head by ``depth`` (a fraction drawn from the range) of the head's extent
    along its axis (:func:`head_box`), measured from the head's edge on that side, so depth 0
    only trims air. The cut is a box of the *input* voxel grid: spatial transforms in the same
    :class:`~volseg.data.transforms.base.Compose` move it with the head (a rotated head keeps
    its cut), and every patch of a case shows the same cut as the whole volume.

    Args:
        depth: ``(low, high)`` fraction of the head's extent cut at one border, in ``[0, 1)``.
        borders: most borders cut at once (at least one when it fires).
        axes: array axes whose borders may be cut; ``None``: all.
        fill: what lies beyond the cut: ``"minimum"`` (the case's channel minimum, where a
            scanner's 0 lands after normalisation, see the module notes), ``"edge"`` (the scan
            ends at the cut: the image takes the last kept voxels' values, as at the end of any
            volume; only the label is cut), a number (normalised intensity), or a list of these
            drawn uniformly per sample.
        threshold: fraction of each channel's range above its minimum that counts as head.
        p: probability of the transform.
    """

    params_type = FovCutParams

    def __init__(
        self,
        depth: Sequence[float] = (0.0, 0.3),
        borders: int = 2,
        axes: Sequence[int] | None = None,
        fill: str | float | Sequence[str | float] = "minimum",
        threshold: float = 0.1,
        p: float = 0.5,
    ) -> None:
        super().__init__(p)
        if len(depth) != 2 or not 0.0 <= float(depth[0]) <= float(depth[1]) < 1.0:
            raise ValueError(f"fov_cut: depth={list(depth)} must be a (low, high) pair in [0, 1)")
        if int(borders) < 1:
            raise ValueError(f"fov_cut: borders={borders} must be at least 1")
        fills: list[str | float] = [fill] if isinstance(fill, (str, int, float)) else list(fill)
        for mode in fills:
            if isinstance(mode, str) and mode not in _MODES:
                raise ValueError(f"fov_cut: fill={mode!r} is not 'minimum', 'edge' or a number")
        if not fills:
            raise ValueError("fov_cut: fill is an empty list")
        self.depth = (float(depth[0]), float(depth[1]))
        self.borders = int(borders)
        self.axes = tuple(int(a) for a in axes) if axes is not None else None
        self.fills = [m if isinstance(m, str) else float(m) for m in fills]
        self.threshold = float(threshold)

    def draw(self, rng: np.random.Generator, context: Context) -> FovCutParams:
        dims = context.dims
        axes = self.axes if self.axes is not None else tuple(range(dims))
        if not axes or any(not 0 <= a < dims for a in axes):
            raise ValueError(f"fov_cut: axes {axes} on a {dims}-D sample")
        head_first, head_last = head_box(context, self.threshold)
        sides = [(axis, side) for axis in axes for side in (0, 1)]
        count = int(rng.integers(1, min(self.borders, len(sides)) + 1))
        first: list[int | None] = [None] * dims
        last: list[int | None] = [None] * dims
        for k in sorted(rng.choice(len(sides), count, replace=False).tolist()):
            axis, side = sides[k]
            extent = head_last[axis] - head_first[axis] + 1
            depth = int(rng.uniform(*self.depth) * extent)
            if side == 0:
                first[axis] = head_first[axis] + depth
            else:
                last[axis] = head_last[axis] - depth
        for axis in range(dims):  # cut from both sides: keep at least one voxel
            low, high = first[axis], last[axis]
            if low is not None and high is not None and high < low:
                last[axis] = low
        mode = (
            self.fills[int(rng.integers(len(self.fills)))] if len(self.fills) > 1 else self.fills[0]
        )
        fill: tuple[float, ...] | None
        if mode == "edge":
            fill = None
        elif mode == "minimum":
            fill = tuple(s.minimum for s in context.channel_stats())
        else:
            fill = (float(mode),) * int(context.image.shape[0])
        return FovCutParams(tuple(first), tuple(last), fill)

    def outside(self, voxels: torch.Tensor, params: FovCutParams) -> torch.Tensor:
        # the kept voxels' cells: nearest-neighbour reading of a label zeroed beyond the box
        out = torch.zeros(voxels.shape[:-1], dtype=torch.bool)
        for axis, (low, high) in enumerate(zip(params.first, params.last)):
            if low is not None:
                out |= voxels[..., axis] < low - 0.5
            if high is not None:
                out |= voxels[..., axis] > high + 0.5
        return out

    def clamp(self, voxels: torch.Tensor, params: FovCutParams) -> torch.Tensor:
        # read the image only inside the box: the kept voxels never blend with cut ones
        out = voxels.clone()
        for axis, (low, high) in enumerate(zip(params.first, params.last)):
            if low is not None or high is not None:
                out[..., axis].clamp_(min=low, max=high)
        return out

    def fill(self, params: FovCutParams) -> tuple[float, ...] | None:
        return params.fill

    def __repr__(self) -> str:
        return (
            f"RandomFovCut(depth={self.depth}, borders={self.borders}, axes={self.axes}, "
            f"fill={self.fills}, p={self.p})"
        )
