"""The preprocessing pipeline: :func:`preprocess` a scan and :func:`restore` a result."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from volseg.config import PreprocessConfig
from volseg.data.preprocessing._options import choose
from volseg.data.preprocessing.crop import (
    CROP_MODES,
    CropMode,
    crop_or_pad_box,
    nonzero_box,
    slice_or_pad,
)
from volseg.data.preprocessing.grid import Grid, PreprocessRecord
from volseg.data.preprocessing.intensity import NORMALIZATIONS, normalize
from volseg.data.preprocessing.n4 import N4_MASKS, n4_image
from volseg.data.preprocessing.spatial import (
    IMAGE_INTERPOLATIONS,
    Interpolation,
    map_channels,
    resample,
    resample_anisotropic,
    resample_to_grid,
)
from volseg.io import Volume

__all__ = ["preprocess", "restore"]


def target_grid(source: Grid, config: PreprocessConfig, name: str = "<memory>") -> Grid:
    """The grid after reorientation and resampling (steps 2-3), before any crop."""
    grid = source
    if config.orient:
        grid = grid.reoriented(config.orient)
    if config.target_spacing is not None:
        spacing = tuple(config.target_spacing)
        if len(spacing) == source.ndim - 1 == 2:  # in-plane (x, y) for 2-D slices: z as it is
            spacing = (*spacing, grid.spacing[-1])
        if len(spacing) != source.ndim:
            raise ValueError(
                f"{name}: target_spacing {config.target_spacing} has "
                f"{len(config.target_spacing)} values for a {source.ndim}-D image"
            )
        grid = grid.respaced(spacing)
    return grid


def preprocess(
    image: Volume, config: PreprocessConfig, label: Volume | None = None
) -> tuple[Volume, Volume | None, PreprocessRecord]:
    """Apply the configured steps to an image (and its label map, on the same grid).

    The spatial steps (N4, reorientation, resampling) run per channel in SimpleITK, each channel
    converted once (:func:`~volseg.data.preprocessing.spatial.map_channels`); reorientation and
    resampling are one resampling onto the target grid. Crops, clipping and normalisation then
    work on the one array.

    Returns:
        The float32 image on the working grid, the label map (nearest-resampled, same grid) or
        ``None``, and the record that :func:`restore` uses to map results back.
    """
    interpolation = choose(config.interpolation, IMAGE_INTERPOLATIONS, "preprocess.interpolation")
    method = choose(config.normalize, NORMALIZATIONS, "preprocess.normalize")
    crop_mode = choose(config.crop_mode, CROP_MODES, "preprocess.crop_mode")
    n4_mask = choose(config.n4_mask, N4_MASKS, "preprocess.n4_mask")
    source = Grid.of(image)
    target = target_grid(source, config, image.source)
    resampled = target != source

    def spatial(channel: sitk.Image, _: int) -> sitk.Image:
        """Steps 1-3 on one channel, all in SimpleITK."""
        if config.n4:
            channel = n4_image(channel, config.n4_shrink, n4_mask, config.n4_iterations)
        if resampled:
            channel = resample_anisotropic(
                channel, target, interpolation, config.anisotropy_threshold
            )
        return channel

    array = image.array
    if config.n4 or resampled:
        array = map_channels(image, target, spatial).array
    label_array = None
    if label is not None:
        label_array = label.array
        if resampled:
            nearest = map_channels(label, target, lambda c, _: resample(c, target, "nearest"))
            label_array = nearest.array
    grid = target  # steps 4 and 7 crop it
    if config.crop_nonzero:
        start, stop = nonzero_box(array)
        if start != (0,) * grid.ndim or stop != grid.shape:
            grid = grid.cropped(start, stop)
            array = np.ascontiguousarray(slice_or_pad(array, start, stop, 0))  # frees the rest
            if label_array is not None:
                label_array = np.ascontiguousarray(slice_or_pad(label_array, start, stop, 0))
    spatial_array = array  # before clipping and normalisation (the crop_mode box uses it)
    array, shifts, scales = normalize(array, method, config.clip_window, config.clip_percentiles)
    if config.crop_size is not None:
        size = tuple(int(v) for v in config.crop_size)
        if len(size) != grid.ndim:
            raise ValueError(
                f"preprocess.crop_size {size} has {len(size)} values for a "
                f"{grid.ndim}-D image ({image.source})"
            )
        center = _box_center(spatial_array, label_array, crop_mode)
        start, stop = crop_or_pad_box(grid.shape, size, center)
        if start != (0,) * grid.ndim or stop != grid.shape:
            zero = 0.0 if config.clip_window is None else float(np.clip(0.0, *config.clip_window))
            fills = [
                0.0 if method == "zscore_nonzero" else (zero - sh) / sc
                for sh, sc in zip(shifts, scales)
            ]
            grid = grid.cropped(start, stop)
            array = np.ascontiguousarray(slice_or_pad(array, start, stop, fills))
            if label_array is not None:
                label_array = np.ascontiguousarray(slice_or_pad(label_array, start, stop, 0))
    out_label = None
    if label is not None and label_array is not None:
        out_label = _on_grid(label_array, grid, label.source)
    record = PreprocessRecord(source, grid, tuple(shifts), tuple(scales))
    return _on_grid(array, grid, image.source), out_label, record


def _on_grid(array: np.ndarray, grid: Grid, source: str) -> Volume:
    return Volume(array, grid.spacing, grid.origin, grid.direction, source)


def _box_center(
    image: np.ndarray, label: np.ndarray | None, mode: CropMode
) -> tuple[float, ...] | None:
    """Centre for ``crop_size``: ``None`` (the volume's) or the foreground / non-zero box's."""
    if mode == "center":
        return None
    mask = label > 0 if label is not None and (label > 0).any() else image
    start, stop = nonzero_box(mask)
    return tuple((a + b - 1) / 2 for a, b in zip(start, stop))


def restore(
    result: Volume,
    record: PreprocessRecord,
    interpolation: Interpolation = "linear",
    fill: float | Sequence[float] = 0.0,
) -> Volume:
    """Map a result on the working grid (probabilities or labels) back onto the source grid.

    One resampling from ``record.grid`` onto ``record.source`` in physical space, each channel
    converted to SimpleITK once.

    Args:
        result: ``(C, *grid.shape)`` on ``record.grid``.
        interpolation: ``linear`` for probabilities, ``nearest`` for label maps.
        fill: value where the working grid does not reach, one for all channels or one per
            channel (e.g. ``[1, 0]`` for background probability 1 outside a crop).
    """
    if Grid.of(result) != record.grid and result.shape != record.grid.shape:
        raise ValueError(f"result grid {result.shape} is not the record's {record.grid.shape}")
    placed = _on_grid(result.array, record.grid, result.source)
    if record.grid == record.source:
        return placed
    return resample_to_grid(placed, record.source, interpolation, fill)
