"""Deterministic preprocessing that records what it did, so predictions can be mapped back.

The steps, in order (each optional, see :class:`volseg.config.PreprocessConfig`):

1. **reorient** to a canonical axis code (``LPS``...) by permuting/flipping axes (no interpolation);
2. **resample** to a target spacing (linear for images, nearest for labels);
3. **crop** to the bounding box of non-zero image voxels;
4. **normalise** intensities per channel.

Steps 1-3 only change the sampling grid, so the whole record is two grids: the scan's own
(``source``) and the one the network sees (``grid``). Undoing them is one resampling from
``grid`` back onto ``source`` in physical space (:func:`restore`), exact for any chain of
axis flips, permutations, crops and spacing changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from volseg.config import PreprocessConfig
from volseg.io import Volume

__all__ = ["Grid", "PreprocessRecord", "preprocess", "resample_to_grid", "restore"]


@dataclass(frozen=True)
class Grid:
    """A sampling grid: spatial shape (array order) and geometry (ITK order)."""

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, volume: Volume) -> Grid:
        return cls(volume.shape, volume.spacing, volume.origin, volume.direction)

    def reference_image(self) -> sitk.Image:
        """An empty SimpleITK image on this grid (a resampling target)."""
        image = sitk.Image([int(s) for s in reversed(self.shape)], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grid:
        return cls(
            tuple(int(v) for v in data["shape"]),
            tuple(float(v) for v in data["spacing"]),
            tuple(float(v) for v in data["origin"]),
            tuple(float(v) for v in data["direction"]),
        )


@dataclass(frozen=True)
class PreprocessRecord:
    """What :func:`preprocess` did to one scan: its own grid, the network's grid, the scaling."""

    source: Grid
    grid: Grid
    intensity_shift: tuple[float, ...]
    intensity_scale: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "grid": self.grid.to_dict(),
            "intensity_shift": list(self.intensity_shift),
            "intensity_scale": list(self.intensity_scale),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessRecord:
        return cls(
            Grid.from_dict(data["source"]),
            Grid.from_dict(data["grid"]),
            tuple(data["intensity_shift"]),
            tuple(data["intensity_scale"]),
        )


def resample_to_grid(
    volume: Volume, grid: Grid, interpolation: str = "linear", fill: float | list[float] = 0.0
) -> Volume:
    """Resample every channel of ``volume`` onto ``grid`` in physical space (SimpleITK).

    Args:
        interpolation: ``linear``, ``nearest`` or ``bspline``.
        fill: value outside the source, one for all channels or one per channel.
    """
    interpolators = {
        "linear": sitk.sitkLinear,
        "nearest": sitk.sitkNearestNeighbor,
        "bspline": sitk.sitkBSpline,
    }
    fills = fill if isinstance(fill, list) else [fill] * volume.channels
    reference = grid.reference_image()
    channels = []
    for c in range(volume.channels):
        image = volume.to_sitk(c)
        out = sitk.Resample(
            image,
            reference,
            sitk.Transform(),
            interpolators[interpolation],
            float(fills[c]),
            image.GetPixelID(),
        )
        channels.append(sitk.GetArrayFromImage(out))  # a copy: a view dies with `out`
    array = np.stack(channels).astype(volume.array.dtype, copy=False)
    return Volume(array, grid.spacing, grid.origin, grid.direction, volume.source)


def _reoriented_grid(grid: Grid, code: str) -> Grid:
    """The grid after ``sitk.DICOMOrient``: same voxels, axes permuted/flipped to ``code``."""
    image = sitk.DICOMOrient(grid.reference_image(), code)
    return Grid(
        tuple(int(s) for s in reversed(image.GetSize())),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
    )


def _respaced_grid(grid: Grid, spacing_xyz: tuple[float, ...]) -> Grid:
    """A grid with ``spacing_xyz`` covering the same field of view (outer corners aligned)."""
    old_spacing = np.asarray(grid.spacing)
    new_spacing = np.asarray(spacing_xyz, dtype=np.float64)
    size_xyz = np.asarray(list(reversed(grid.shape)))
    new_size = np.maximum(1, np.round(size_xyz * old_spacing / new_spacing)).astype(int)
    direction = np.asarray(grid.direction).reshape(len(spacing_xyz), -1)
    corner_shift = direction @ ((new_spacing - old_spacing) / 2.0)
    origin = np.asarray(grid.origin) + corner_shift
    return Grid(
        tuple(int(s) for s in reversed(new_size)),
        tuple(float(s) for s in new_spacing),
        tuple(float(o) for o in origin),
        grid.direction,
    )


def _cropped_grid(grid: Grid, start: tuple[int, ...], stop: tuple[int, ...]) -> Grid:
    """The sub-grid ``[start, stop)`` (array order) of ``grid``."""
    direction = np.asarray(grid.direction).reshape(len(start), -1)
    offset_xyz = np.asarray(list(reversed(start))) * np.asarray(grid.spacing)
    origin = np.asarray(grid.origin) + direction @ offset_xyz
    shape = tuple(int(b - a) for a, b in zip(start, stop))
    return Grid(shape, grid.spacing, tuple(float(o) for o in origin), grid.direction)


def _nonzero_box(array: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
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


def _normalize(array: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, list, list]:
    """Per-channel intensity normalisation; returns the array and (shift, scale) per channel."""
    out = np.empty(array.shape, dtype=np.float32)
    shifts, scales = [], []
    for c, channel in enumerate(array):
        data = channel.astype(np.float32, copy=False)
        if config.normalize == "none":
            shift, scale = 0.0, 1.0
        elif config.normalize in ("zscore", "zscore_nonzero", "percentile"):
            values = data[data != 0] if config.normalize == "zscore_nonzero" else data.ravel()
            if values.size == 0:
                values = data.ravel()
            if config.normalize == "percentile":
                low, high = np.percentile(values, config.clip_percentiles)
                data = np.clip(data, low, high)
                values = np.clip(values, low, high)
            shift = float(values.mean())
            scale = float(values.std()) or 1.0
        else:
            raise ValueError(f"unknown normalisation {config.normalize!r}")
        out[c] = (data - shift) / scale
        if config.normalize == "zscore_nonzero":
            out[c][channel == 0] = 0.0  # background stays at the new zero
        shifts.append(shift)
        scales.append(scale)
    return out, shifts, scales


def preprocess(
    image: Volume, config: PreprocessConfig, label: Volume | None = None
) -> tuple[Volume, Volume | None, PreprocessRecord]:
    """Apply the configured steps to an image (and its label map, on the same grid).

    Returns:
        The float32 image on the working grid, the label map (nearest-resampled, same grid) or
        ``None``, and the record that :func:`restore` uses to map results back.
    """
    source = Grid.of(image)
    grid = source
    if config.orient:
        grid = _reoriented_grid(grid, config.orient)
    if config.target_spacing is not None:
        if len(config.target_spacing) != image.ndim:
            raise ValueError(
                f"{image.source}: target_spacing {config.target_spacing} has "
                f"{len(config.target_spacing)} values for a {image.ndim}-D image"
            )
        grid = _respaced_grid(grid, config.target_spacing)
    work = image if grid == source else resample_to_grid(image, grid, "linear")
    if config.crop_nonzero:
        start, stop = _nonzero_box(work.array)
        if start != (0,) * work.ndim or stop != work.shape:
            slices = (slice(None), *(slice(a, b) for a, b in zip(start, stop)))
            grid = _cropped_grid(grid, start, stop)
            work = Volume(work.array[slices], grid.spacing, grid.origin, grid.direction)
    array, shifts, scales = _normalize(work.array, config)
    out_image = Volume(array, grid.spacing, grid.origin, grid.direction, image.source)
    out_label = None
    if label is not None:
        out_label = resample_to_grid(label, grid, "nearest") if grid != source else label
    record = PreprocessRecord(source, grid, tuple(shifts), tuple(scales))
    return out_image, out_label, record


def restore(
    result: Volume, record: PreprocessRecord, interpolation: str = "linear", fill: Any = 0.0
) -> Volume:
    """Map a result on the working grid (probabilities or labels) back onto the source grid.

    Args:
        result: ``(C, *grid.shape)`` on ``record.grid``.
        interpolation: ``linear`` for probabilities, ``nearest`` for label maps.
        fill: value where the working grid does not reach (e.g. ``[1, 0]`` for background
            probability 1 outside a crop).
    """
    if Grid.of(result) != record.grid and result.shape != record.grid.shape:
        raise ValueError(f"result grid {result.shape} is not the record's {record.grid.shape}")
    placed = Volume(
        result.array, record.grid.spacing, record.grid.origin, record.grid.direction, result.source
    )
    if record.grid == record.source:
        return placed
    return resample_to_grid(placed, record.source, interpolation, fill)
