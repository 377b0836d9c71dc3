"""NaN and Inf voxels of a NIfTI file, counted from its raw data.

SimpleITK 2.x (ITK 5) reads every NaN and +-Inf voxel of a NIfTI image as 0: the vendored
``nifti_read_buffer`` overwrites non-finite floats, silently (ITK pull request #6683, fixed for
ITK 6; the bytes on disk are intact). ``volseg check`` must still report such voxels, so it
counts them here from the file itself: the header gives the data type, shape and data offset,
and the data is scanned in blocks. Only what that needs of the format is read (NIfTI-1 and
NIfTI-2, either byte order, ``.nii`` or ``.nii.gz``); voxels themselves are still read through
SimpleITK everywhere else.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["count_nonfinite"]

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes: FLOAT32, FLOAT64
_BLOCK = 1 << 24  # bytes scanned at a time


def _header(f: BinaryIO) -> tuple[str, int, int, int] | None:
    """(byte order, datatype, voxel count, data offset) of a NIfTI-1/2 header, else None."""
    head = f.read(540)
    for order in "<>":
        if len(head) >= 348 and struct.unpack(order + "i", head[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(order + "8h", head[40:56])
            datatype = struct.unpack(order + "h", head[70:72])[0]
            offset = int(struct.unpack(order + "f", head[108:112])[0])
        elif len(head) == 540 and struct.unpack(order + "i", head[:4])[0] == 540:  # NIfTI-2
            datatype = struct.unpack(order + "h", head[12:14])[0]
            dims = struct.unpack(order + "8q", head[16:80])
            offset = struct.unpack(order + "q", head[168:176])[0]
        else:
            continue
        if not 1 <= dims[0] <= 7:
            return None
        return order, datatype, math.prod(max(1, d) for d in dims[1 : dims[0] + 1]), offset
    return None


def count_nonfinite(path: str | Path) -> tuple[int, int] | None:
    """``(NaN count, Inf count)`` of a float NIfTI file; ``None`` for other files and types."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return None
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as f:
        header = _header(f)  # type: ignore[arg-type]
        if header is None or header[1] not in _FLOAT_TYPES:
            return None
        order, datatype, count, offset = header
        dtype = np.dtype(order + _FLOAT_TYPES[datatype])
        f.seek(offset)
        nan = inf = 0
        left = count * dtype.itemsize
        while left > 0:
            block = f.read(min(_BLOCK, left))
            if not block:
                break
            values = np.frombuffer(block[: len(block) - len(block) % dtype.itemsize], dtype)
            nan += int(np.count_nonzero(np.isnan(values)))
            inf += int(np.count_nonzero(np.isinf(values)))
            left -= len(block)
    return nan, inf
