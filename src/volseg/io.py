"""Volumes with their geometry, read and written through SimpleITK.

Axis order (the one convention of volseg):

* ``Volume.array`` has shape ``(C, *spatial)`` with the spatial axes in **array order**, i.e. the
  order of ``SimpleITK.GetArrayFromImage``: ``(C, Z, Y, X)`` in 3D and ``(C, Y, X)`` in 2D. A label
  map is a Volume with ``C == 1``.
* ``spacing``, ``origin`` and ``direction`` are in **ITK physical order** ``(x, y, z)``, exactly as
  SimpleITK reports them; ``direction`` is the row-major ``D x D`` cosine matrix. Use
  :attr:`Volume.spacing_zyx` for the spacing of the array axes (what metrics and resampling need).

A voxel at array index ``(k, j, i)`` lies at ``origin + direction @ (spacing * (i, j, k))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from volseg._atomic import atomic_path

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Volume",
    "VolumeReadError",
    "read_dicom_series",
    "read_volume",
    "stack_channels",
    "strip_suffix",
    "write_volume",
]

SUPPORTED_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
_GRID_TOLERANCE = 1e-4  # relative/absolute tolerance for "same grid" (NIfTI stores float32)


class VolumeReadError(ValueError):
    """A file could not be read as a volume; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Volume:
    """An image or label map with its physical geometry.

    Attributes:
        array: ``(C, *spatial)`` voxel values, spatial axes in array order (z, y, x).
        spacing: voxel size in mm, ITK order (x, y, z).
        origin: physical position of voxel 0 in mm, ITK order.
        direction: row-major direction cosines, ``D*D`` values.
        source: the file(s) the volume came from, for error messages.
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        d = len(self.spacing)
        if self.array.ndim != d + 1:
            raise ValueError(
                f"{self.source}: array of shape {self.array.shape} does not match "
                f"{d}-D geometry; expected (C, *spatial) with {d} spatial axes"
            )
        if len(self.origin) != d or len(self.direction) != d * d:
            raise ValueError(f"{self.source}: inconsistent geometry dimensions")

    # -- shape and geometry -------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spacing)

    @property
    def channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape in array order."""
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def spacing_zyx(self) -> tuple[float, ...]:
        """Spacing of the array axes (reverse of ITK order)."""
        return tuple(reversed(self.spacing))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(self.ndim, self.ndim)

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry around a new array of the same spatial shape."""
        if tuple(array.shape[1:]) != self.shape:
            raise ValueError(f"new array {array.shape} does not fit grid {self.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, self.source)

    def same_grid(self, other: Volume, tol: float = _GRID_TOLERANCE) -> bool:
        """True when both volumes sample the same physical grid."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, rtol=tol, atol=tol)
            and np.allclose(self.origin, other.origin, rtol=tol, atol=tol)
            and np.allclose(self.direction, other.direction, rtol=tol, atol=tol)
        )

    def grid_difference(self, other: Volume) -> str:
        """A short human description of how two grids differ ('' when they agree)."""
        for name in ("shape", "spacing", "origin", "direction"):
            a, b = getattr(self, name), getattr(other, name)
            if name == "shape":
                if a != b:
                    return f"shape {a} vs {b}"
            elif not np.allclose(a, b, rtol=_GRID_TOLERANCE, atol=_GRID_TOLERANCE):
                fa = tuple(round(float(v), 4) for v in a)
                fb = tuple(round(float(v), 4) for v in b)
                return f"{name} {fa} vs {fb}"
        return ""

    # -- SimpleITK bridge ---------------------------------------------------------------
    def to_sitk(self, channel: int = 0) -> sitk.Image:
        """One channel as a SimpleITK image with this geometry."""
        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array[channel]))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, source: str = "<memory>") -> Volume:
        """A Volume from a SimpleITK image; vector pixels become channels."""
        array = sitk.GetArrayFromImage(image)
        d = image.GetDimension()
        if image.GetNumberOfComponentsPerPixel() > 1:
            array = np.moveaxis(array, -1, 0)  # (Z, Y, X, C) -> (C, Z, Y, X)
        else:
            array = array[None]
        if array.ndim != d + 1:
            raise ValueError(f"{source}: unexpected pixel layout {array.shape} for a {d}-D image")
        return cls(
            array=array,
            spacing=tuple(float(v) for v in image.GetSpacing()),
            origin=tuple(float(v) for v in image.GetOrigin()),
            direction=tuple(float(v) for v in image.GetDirection()),
            source=source,
        )


def strip_suffix(path: str | Path) -> str:
    """File name without its (possibly double) image suffix: ``a/b.nii.gz`` -> ``b``."""
    name = Path(path).name
    for suffix in SUPPORTED_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _check_suffix(path: Path) -> None:
    if not path.name.lower().endswith(SUPPORTED_SUFFIXES):
        raise VolumeReadError(
            f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )


def read_volume(path: str | Path | Sequence[str | Path]) -> Volume:
    """Read one image file, a DICOM folder, or several files stacked as channels.

    Raises:
        VolumeReadError: naming the file when it is missing, unreadable, or (for several
            files) not on the same grid as the first.
    """
    if isinstance(path, (list, tuple)):
        return stack_channels(path)
    p = Path(path)  # type: ignore[arg-type]
    if p.is_dir():
        return read_dicom_series(p)
    if not p.exists():
        raise VolumeReadError(f"{p}: file not found")
    _check_suffix(p)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
        raise VolumeReadError(f"{p}: cannot read image ({reason[:200]})") from None
    if image.GetDimension() not in (2, 3):
        raise VolumeReadError(f"{p}: {image.GetDimension()}-D images are not supported")
    return Volume.from_sitk(image, source=str(p))


def read_dicom_series(folder: str | Path) -> Volume:
    """Read the first DICOM series found in ``folder``, sorted by slice position."""
    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        raise VolumeReadError(f"{folder}: no DICOM series found in folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), ids[0])
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise VolumeReadError(f"{folder}: cannot read DICOM series ({err})") from None
    return Volume.from_sitk(image, source=str(folder))


def stack_channels(paths: Sequence[str | Path]) -> Volume:
    """Read several single-channel files into one multi-channel Volume on a shared grid."""
    if not paths:
        raise VolumeReadError("no files given to stack")
    volumes = [read_volume(p) for p in paths]
    first = volumes[0]
    for other in volumes[1:]:
        diff = first.grid_difference(other)
        if diff:
            raise VolumeReadError(
                f"{other.source}: grid differs from {first.source} ({diff}); "
                "channels must share one grid"
            )
    array = np.concatenate([v.array for v in volumes], axis=0)
    sources = ";".join(v.source for v in volumes)
    return Volume(array, first.spacing, first.origin, first.direction, sources)


def _suffix_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"{path}: unsupported output type; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` atomically: a temporary file in the same folder, then a rename.

    Multi-channel volumes are written as vector images. ``.mhd``/``.nhdr`` (header + data
    file) are written directly, since they are two files.
    """
    path = Path(path)
    suffix = _suffix_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if volume.channels == 1:
        image = volume.to_sitk(0)
    else:
        image = sitk.GetImageFromArray(np.moveaxis(volume.array, 0, -1), isVector=True)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(volume.direction)
    if suffix in (".mhd", ".nhdr"):
        sitk.WriteImage(image, str(path), useCompression=compress)
        return path
    with atomic_path(path, suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path
