"""Sampling grids and the record of what preprocessing did to one scan.

Every spatial step of preprocessing (reorient, resample, crop, pad) only changes the sampling
grid, so a :class:`PreprocessRecord` is two grids: the scan's own and the network's. The
``Grid`` methods compute the grid after each step without touching voxels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from volseg.io import Volume

__all__ = ["Grid", "PreprocessRecord"]


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

    @classmethod
    def of_image(cls, image: sitk.Image) -> Grid:
        """The grid of a SimpleITK image (its size reversed into array order)."""
        return cls(
            tuple(int(s) for s in reversed(image.GetSize())),
            tuple(float(v) for v in image.GetSpacing()),
            tuple(float(v) for v in image.GetOrigin()),
            tuple(float(v) for v in image.GetDirection()),
        )

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(self.ndim, self.ndim)

    def reference_image(self) -> sitk.Image:
        """An empty SimpleITK image on this grid (a resampling target)."""
        image = sitk.Image([int(s) for s in reversed(self.shape)], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def reoriented(self, code: str) -> Grid:
        """The grid after ``sitk.DICOMOrient(image, code)``: same voxels, axes permuted/flipped.

        A 2-D grid is returned as it is (DICOMOrient takes 3-D images only; a 2-D image keeps
        its axes, as :func:`~volseg.data.preprocessing.spatial.reorient` keeps them).
        """
        if self.ndim != 3:
            return self
        return Grid.of_image(sitk.DICOMOrient(self.reference_image(), code))

    def respaced(self, spacing_xyz: tuple[float, ...]) -> Grid:
        """A grid with ``spacing_xyz`` covering the same field of view (outer corners aligned)."""
        old_spacing = np.asarray(self.spacing)
        new_spacing = np.asarray(spacing_xyz, dtype=np.float64)
        size_xyz = np.asarray(list(reversed(self.shape)))
        new_size = np.maximum(1, np.round(size_xyz * old_spacing / new_spacing)).astype(int)
        corner_shift = self.direction_matrix @ ((new_spacing - old_spacing) / 2.0)
        origin = np.asarray(self.origin) + corner_shift
        return Grid(
            tuple(int(s) for s in reversed(new_size)),
            tuple(float(s) for s in new_spacing),
            tuple(float(o) for o in origin),
            self.direction,
        )

    def cropped(self, start: tuple[int, ...], stop: tuple[int, ...]) -> Grid:
        """The sub-grid ``[start, stop)`` (array order; beyond the grid means padding)."""
        offset_xyz = np.asarray(list(reversed(start))) * np.asarray(self.spacing)
        origin = np.asarray(self.origin) + self.direction_matrix @ offset_xyz
        shape = tuple(int(b - a) for a, b in zip(start, stop))
        return Grid(shape, self.spacing, tuple(float(o) for o in origin), self.direction)

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
    """What :func:`~volseg.data.preprocessing.preprocess` did to one scan.

    Attributes:
        source: the scan's own grid.
        grid: the grid the network sees; :func:`~volseg.data.preprocessing.restore` resamples
            from it onto ``source`` in physical space.
        intensity_shift, intensity_scale: the per-channel normalisation, ``(x - shift) / scale``.
    """

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
