"""What SimpleITK does not say about a NIfTI file, read from the file itself.

SimpleITK 2.x (ITK 5) hides three things: it reads every NaN and +-Inf voxel of a NIfTI image
as 0 (the vendored ``nifti_read_buffer`` overwrites non-finite floats; ITK pull request #6683,
fixed for ITK 6), it reads a truncated ``.nii.gz`` as far as it goes and fills the rest with 0,
and it takes a zero ``pixdim`` as 1 mm. So :func:`nifti_header` reads the header (type, shape,
spacing, data offset: enough for a size guard before anything is decompressed), and
:func:`scan_nifti` reads the whole data stream once, in blocks: a gzip stream to its end with
its CRC and length checked, an uncompressed file checked for its declared length, and float
voxels counted for NaN and Inf. Only what that needs of the format is read (NIfTI-1 and
NIfTI-2, either byte order, ``.nii`` or ``.nii.gz``); voxels are still read through SimpleITK.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = [
    "NiftiHeader",
    "NiftiScan",
    "count_nonfinite",
    "is_orthonormal",
    "nifti_header",
    "scan_nifti",
]

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes: FLOAT32, FLOAT64
_ITEMSIZE = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8}
_ITEMSIZE.update({1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4})
_BLOCK = 1 << 24  # bytes scanned at a time


@dataclass(frozen=True)
class NiftiHeader:
    """The parts of a NIfTI-1/2 header volseg checks.

    Attributes:
        order: byte order, ``<`` or ``>``.
        datatype: the NIfTI datatype code.
        shape: ``dim[1..dim[0]]`` (x first, as stored).
        pixdim: ``pixdim[1..dim[0]]``, the voxel size of each axis.
        offset: where the voxel data starts (``vox_offset``).
        itemsize: bytes per voxel (0 for an unknown datatype).
        qform_code: 0 when the header has no qform.
        sform_code: 0 when the header has no sform.
        srow: the sform's 3x4 affine, row by row (``srow_x``, ``srow_y``, ``srow_z``).
    """

    order: str
    datatype: int
    shape: tuple[int, ...]
    pixdim: tuple[float, ...]
    offset: int
    itemsize: int
    qform_code: int = 0
    sform_code: int = 0
    srow: tuple[float, ...] = ()

    @property
    def sform_sheared(self) -> bool:
        """Whether the sform's axes are not orthogonal (a shear, e.g. a CT gantry tilt).

        ITK keeps only a rotation: it then reads the qform instead, or refuses the file when
        there is none. Columns are normalised first (their lengths are the voxel sizes).
        """
        if self.sform_code <= 0 or len(self.srow) != 12:
            return False
        matrix = np.asarray(self.srow, dtype=np.float64).reshape(3, 4)[:, :3]
        return not is_orthonormal(matrix, normalise=True)

    @property
    def voxels(self) -> int:
        return math.prod(max(1, d) for d in self.shape)

    @property
    def data_bytes(self) -> int:
        return self.voxels * self.itemsize


@dataclass(frozen=True)
class NiftiScan:
    """What reading a NIfTI file's whole data stream found."""

    nan: int
    inf: int


def is_orthonormal(matrix: np.ndarray, *, normalise: bool = False, tol: float = 1e-4) -> bool:
    """Whether a square direction matrix is a rotation or reflection (``M^T M = I``).

    ``normalise`` divides each column by its length first (an affine whose columns carry the
    voxel sizes). ``tol`` admits float32 header rounding, far below any real shear.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if normalise:
        norms = np.linalg.norm(m, axis=0)
        if not np.all(norms > 0):
            return False
        m = m / norms
    return bool(np.abs(m.T @ m - np.eye(m.shape[0])).max() <= tol)


def _parse(head: bytes) -> NiftiHeader | None:
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", head[40:56])
            datatype = struct.unpack(order + "h", head[70:72])[0]
            pixdim = struct.unpack(order + "8f", head[76:108])
            offset = max(348, int(struct.unpack(order + "f", head[108:112])[0]))
            qform_code, sform_code = struct.unpack(order + "2h", head[252:256])
            srow = struct.unpack(order + "12f", head[280:328])
        elif len(head) >= 540 and struct.unpack(order + "i", head[:4])[0] == 540:  # NIfTI-2
            datatype = struct.unpack(order + "h", head[12:14])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            pixdim = struct.unpack(order + "8d", head[104:168])
            offset = max(540, struct.unpack(order + "q", head[168:176])[0])
            qform_code, sform_code = struct.unpack(order + "2i", head[344:352])
            srow = struct.unpack(order + "12d", head[400:496])
        else:
            continue
        if not 1 <= dims[0] <= 7:
            return None
        n = dims[0]
        return NiftiHeader(
            order,
            datatype,
            tuple(int(d) for d in dims[1 : n + 1]),
            tuple(float(p) for p in pixdim[1 : n + 1]),
            offset,
            _ITEMSIZE.get(datatype, 0),
            int(qform_code),
            int(sform_code),
            tuple(float(v) for v in srow),
        )
    return None


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _open(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def nifti_header(path: str | Path) -> NiftiHeader | None:
    """The header of a ``.nii``/``.nii.gz`` file (only its first bytes are decompressed);
    ``None`` for other files or an unrecognised header."""
    path = Path(path)
    if not _is_nifti(path):
        return None
    try:
        with _open(path) as f:
            return _parse(f.read(540))
    except (OSError, EOFError, zlib.error):
        return None


def scan_nifti(path: str | Path, header: NiftiHeader | None = None) -> NiftiScan | None:
    """Read the data stream of a NIfTI file to its end.

    Raises:
        ValueError: the gzip stream is truncated or corrupt (CRC or length mismatch), or the
            file holds fewer bytes than its header declares.

    Returns ``None`` for files that are not NIfTI.
    """
    path = Path(path)
    header = header or nifti_header(path)
    if header is None:
        return None
    dtype = (
        np.dtype(header.order + _FLOAT_TYPES[header.datatype])
        if header.datatype in _FLOAT_TYPES
        else None
    )
    nan = inf = 0
    try:
        with _open(path) as f:
            f.read(header.offset)
            left = header.data_bytes
            while left > 0:
                block = f.read(min(_BLOCK, left))
                if not block:
                    break
                left -= len(block)
                if dtype is not None:
                    usable = len(block) - len(block) % dtype.itemsize
                    values = np.frombuffer(block[:usable], dtype)
                    nan += int(np.count_nonzero(np.isnan(values)))
                    inf += int(np.count_nonzero(np.isinf(values)))
            while f.read(_BLOCK):  # the rest of a gzip stream: its CRC is checked at the end
                pass
    except EOFError:
        raise ValueError("truncated file: the gzip stream ends early") from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"corrupt gzip stream ({err})") from None
    if left > 0:
        raise ValueError(
            f"truncated file: the header declares {header.data_bytes} bytes of voxel data, "
            f"the file holds {header.data_bytes - left}"
        )
    return NiftiScan(nan, inf)


def count_nonfinite(path: str | Path) -> tuple[int, int] | None:
    """``(NaN count, Inf count)`` of a float NIfTI file; ``None`` for other files and types."""
    header = nifti_header(path)
    if header is None or header.datatype not in _FLOAT_TYPES:
        return None
    scan = scan_nifti(path, header)
    assert scan is not None
    return scan.nan, scan.inf
