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

import errno
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from volseg._atomic import atomic_files, atomic_path, write_error
from volseg._nifti import NiftiHeader, NiftiScan, is_orthonormal, nifti_header, scan_nifti

__all__ = [
    "MAX_VOXELS",
    "SUPPORTED_SUFFIXES",
    "Volume",
    "VolumeReadError",
    "max_voxels",
    "read_dicom_series",
    "read_label",
    "read_volume",
    "stack_channels",
    "strip_suffix",
    "write_volume",
]

SUPPORTED_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
MAX_VOXELS = 1 << 30  # size guard of read_volume (about 1024^3); VOLSEG_MAX_VOXELS overrides
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


def max_voxels() -> int:
    """The size guard of :func:`read_volume`: ``VOLSEG_MAX_VOXELS`` or :data:`MAX_VOXELS`."""
    value = os.environ.get("VOLSEG_MAX_VOXELS", "")
    try:
        return int(float(value)) if value.strip() else MAX_VOXELS
    except ValueError:
        raise ValueError(f"VOLSEG_MAX_VOXELS: expected a number of voxels, got {value!r}") from None


def _check_header(path: Path, limit: int | None) -> NiftiHeader | None:
    """Size guard and spacing from the header alone, before any voxel is decompressed."""
    header = nifti_header(path)
    if header is not None:
        shape, spacing, voxels, channels = header.shape, header.pixdim[:3], header.voxels, 1
    else:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
            raise VolumeReadError(f"{path}: cannot read image ({reason[:200]})") from None
        shape, spacing = tuple(reader.GetSize()), tuple(reader.GetSpacing())
        channels = reader.GetNumberOfComponents()
        voxels = math.prod(shape) * channels
    limit = max_voxels() if limit is None else limit
    if voxels > limit:
        size = "x".join(str(d) for d in shape) + (f"x{channels}" if channels > 1 else "")
        raise VolumeReadError(
            f"{path}: header declares {size} = {voxels} voxels, above the limit of {limit} "
            "(set VOLSEG_MAX_VOXELS to read larger volumes)"
        )
    bad = [s for s in spacing if not (math.isfinite(s) and s > 0)]
    if bad:
        shown = ", ".join(f"{s:g}" for s in spacing)
        raise VolumeReadError(f"{path}: spacing ({shown}) must be finite and > 0")
    if header is not None and header.sform_sheared:
        instead = "reads the qform instead" if header.qform_code > 0 else "cannot read it"
        raise VolumeReadError(
            f"{path}: the sform is sheared (its axes are not orthogonal, e.g. a CT gantry tilt); "
            f"ITK {instead}, so the geometry would be wrong: resample it onto an orthogonal grid"
        )
    return header


def _check_direction(volume: Volume) -> None:
    """Refuse a direction that is not a rotation/reflection (MHA keeps any matrix): ITK's
    filters assume one, and its NIfTI writer silently coerces a shear to a rotation."""
    if not is_orthonormal(volume.direction_matrix):
        shown = ", ".join(f"{v:.4g}" for v in volume.direction)
        raise VolumeReadError(
            f"{volume.source}: direction ({shown}) is sheared (its axes are not orthogonal); "
            "volseg, like ITK, supports rotations and flips only: resample it onto an "
            "orthogonal grid"
        )


def _nonfinite_counts(path: Path, volume: Volume, scan: NiftiScan | None) -> tuple[int, int]:
    if scan is not None:  # NIfTI: SimpleITK reads NaN/Inf as 0, so counted from the file
        return scan.nan, scan.inf
    if not np.issubdtype(volume.array.dtype, np.inexact):
        return 0, 0
    return (
        int(np.count_nonzero(np.isnan(volume.array))),
        int(np.count_nonzero(np.isinf(volume.array))),
    )


def read_volume(
    path: str | Path | Sequence[str | Path],
    *,
    finite: bool = True,
    limit: int | None = None,
    series: str | None = None,
) -> Volume:
    """Read one image file, a DICOM folder, or several files stacked as channels.

    Before the voxels: the header's size (at most ``limit`` voxels, default
    :func:`max_voxels`) and spacing (finite, > 0). While reading: a ``.nii.gz`` stream is read
    to its end with its CRC checked, and NaN/Inf voxels are counted (also in NIfTI files, where
    SimpleITK shows them as 0).

    Args:
        finite: refuse NaN/Inf voxels (``volseg check`` reads with ``False`` and reports them).
        limit: the size guard in voxels (channels included).
        series: for a DICOM folder holding several series, the SeriesInstanceUID to read.

    Raises:
        VolumeReadError: naming the file when it is missing, unreadable, truncated, too large,
            has a bad spacing or non-finite voxels, or (for several files) is not on the same
            grid as the first.
    """
    if isinstance(path, (list, tuple)):
        return stack_channels(path, finite=finite, limit=limit)
    p = Path(path)  # type: ignore[arg-type]
    if p.is_dir():
        return read_dicom_series(p, series=series, limit=limit)
    if not p.exists():
        raise VolumeReadError(f"{p}: file not found")
    _check_suffix(p)
    header = _check_header(p, limit)
    try:
        scan = scan_nifti(p, header) if header is not None else None
    except ValueError as err:
        raise VolumeReadError(f"{p}: {err}") from None
    except OSError as err:
        raise VolumeReadError(f"{p}: cannot read ({err.strerror or err})") from None
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unreadable"
        raise VolumeReadError(f"{p}: cannot read image ({reason[:200]})") from None
    if image.GetDimension() not in (2, 3):
        raise VolumeReadError(f"{p}: {image.GetDimension()}-D images are not supported")
    volume = Volume.from_sitk(image, source=str(p))
    _check_direction(volume)
    if finite:
        nan, inf = _nonfinite_counts(p, volume, scan)
        if nan or inf:
            raise VolumeReadError(f"{p}: image has {nan} NaN and {inf} Inf voxel(s)")
    return volume


def read_label(path: str | Path) -> Volume:
    """A label map: :func:`read_volume`, and float values must be whole numbers.

    A label map saved as float with fractional values (e.g. resampled with linear
    interpolation) has no meaning as classes; it is refused, naming a few of the values.
    """
    volume = read_volume(path)
    array = volume.array
    if np.issubdtype(array.dtype, np.floating):
        fractional = array[array != np.round(array)]
        if fractional.size:
            shown = ", ".join(f"{v:g}" for v in np.unique(fractional)[:5])
            raise VolumeReadError(
                f"{path}: label map holds {fractional.size} voxel(s) with fractional values "
                f"({shown}...); labels must be whole numbers (resampled with linear "
                "interpolation?)"
            )
    return volume


def _series_geometry(files: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ImagePositionPatient, slice normal) of each DICOM file, from its header alone."""
    out = []
    reader = sitk.ImageFileReader()
    for f in files:
        reader.SetFileName(f)
        reader.ReadImageInformation()
        try:
            position = np.array([float(v) for v in reader.GetMetaData("0020|0032").split("\\")])
            cosines = [float(v) for v in reader.GetMetaData("0020|0037").split("\\")]
        except (RuntimeError, ValueError):
            raise VolumeReadError(f"{f}: no readable ImagePositionPatient/Orientation") from None
        normal = np.cross(np.array(cosines[:3]), np.array(cosines[3:6]))
        out.append((position, normal))
    return out


def _check_slices(folder: Path, files: Sequence[str]) -> None:
    """Slices of one series must be evenly spaced along the normal: no gap, no duplicate."""
    if len(files) < 3:
        return
    geometry = _series_geometry(files)
    normal = geometry[0][1]
    positions = np.array([float(np.dot(p, normal)) for p, _ in geometry])
    gaps = np.diff(positions)
    step = float(np.median(gaps))
    if abs(step) < 1e-6:
        raise VolumeReadError(f"{folder}: DICOM slices share one position (duplicate slices?)")
    uneven = np.flatnonzero(np.abs(gaps - step) > max(1e-3, 0.01 * abs(step)))
    if uneven.size:
        i = int(uneven[0])
        raise VolumeReadError(
            f"{folder}: DICOM slice spacing is uneven: {abs(gaps[i]):.4g} mm between "
            f"{Path(files[i]).name} and {Path(files[i + 1]).name}, {abs(step):.4g} mm elsewhere "
            f"({uneven.size} uneven gap(s); a missing slice?)"
        )


def read_dicom_series(
    folder: str | Path, series: str | None = None, limit: int | None = None
) -> Volume:
    """Read the DICOM series in ``folder``, sorted by slice position.

    A folder with several series needs ``series`` (a SeriesInstanceUID); slices must be evenly
    spaced (a missing or duplicated slice would shift the anatomy silently).
    """
    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    ids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise VolumeReadError(f"{folder}: no DICOM series found in folder")
    if series is None and len(ids) > 1:
        raise VolumeReadError(
            f"{folder}: {len(ids)} DICOM series in one folder ({', '.join(ids)}); "
            "move each into its own folder or pick one by SeriesInstanceUID "
            "(volseg predict --series UID)"
        )
    if series is not None and series not in ids:
        raise VolumeReadError(f"{folder}: no DICOM series {series} (found {', '.join(ids)})")
    files = reader.GetGDCMSeriesFileNames(str(folder), series or ids[0])
    _check_slices(folder, files)
    limit = max_voxels() if limit is None else limit
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    voxels = math.prod(first.GetSize()[:2]) * len(files) * first.GetNumberOfComponents()
    if voxels > limit:
        raise VolumeReadError(
            f"{folder}: series of {voxels} voxels is above the limit of {limit} "
            "(set VOLSEG_MAX_VOXELS to read larger volumes)"
        )
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise VolumeReadError(f"{folder}: cannot read DICOM series ({err})") from None
    bad = [v for v in image.GetSpacing() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise VolumeReadError(f"{folder}: spacing {image.GetSpacing()} must be finite and > 0")
    return Volume.from_sitk(image, source=str(folder))


def stack_channels(
    paths: Sequence[str | Path], *, finite: bool = True, limit: int | None = None
) -> Volume:
    """Read several single-channel files into one multi-channel Volume on a shared grid."""
    if not paths:
        raise VolumeReadError("no files given to stack")
    volumes = [read_volume(p, finite=finite, limit=limit) for p in paths]
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


def _read_back(volume: Volume) -> Callable[[Path], None]:
    """A check that the written file holds ``volume``'s voxels and grid."""

    def verify(tmp: Path) -> None:
        back = read_volume(tmp, finite=False, limit=max(volume.array.size, 1))
        same = back.shape == volume.shape and back.channels == volume.channels
        if same:
            mask = (
                np.isfinite(volume.array)
                if np.issubdtype(volume.array.dtype, np.inexact)
                else np.True_
            )
            same = bool(np.all((back.array == volume.array) | ~mask))
        if not same or back.grid_difference(volume):
            raise OSError(errno.EIO, "the file read back differs from what was written")

    return verify


def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` so that it cannot lie: see :mod:`volseg._atomic`.

    The file goes to a temporary name in the target folder, is read back and compared voxel by
    voxel (SimpleITK's NIfTI writer does not report a full disk), fsynced, then renamed over
    ``path``. ``.mhd``/``.nhdr`` (header + data file) are written into a hidden folder and
    moved into place, data file first. Multi-channel volumes are written as vector images.

    Raises:
        OSError: naming ``path`` and the cause; an earlier ``path`` is then left untouched.
    """
    path = Path(path)
    suffix = _suffix_of(path)
    if volume.channels == 1:
        image = volume.to_sitk(0)
    else:
        image = sitk.GetImageFromArray(np.moveaxis(volume.array, 0, -1), isVector=True)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(volume.direction)
    verify = _read_back(volume)
    context = (
        atomic_files(path, verify)
        if suffix in (".mhd", ".nhdr")
        else atomic_path(path, suffix, verify)
    )
    with context as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as err:
            raise write_error(path, err) from None
    return path
