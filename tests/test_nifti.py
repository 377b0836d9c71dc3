"""Counting NaN/Inf voxels from a NIfTI file's raw data (SimpleITK reads them as 0)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from volseg._nifti import count_nonfinite


def _nifti(path: Path, data: np.ndarray, order: str, version: int) -> Path:
    """A minimal NIfTI-1 or NIfTI-2 file (x fastest, as the format stores voxels) by hand."""
    code = {np.dtype("f4"): 16, np.dtype("f8"): 64, np.dtype("i2"): 4}[data.dtype]
    dims = [data.ndim, *reversed(data.shape)] + [1] * (7 - data.ndim)
    if version == 1:
        head = bytearray(352)
        struct.pack_into(order + "i", head, 0, 348)
        struct.pack_into(order + "8h", head, 40, *dims)
        struct.pack_into(order + "hh", head, 70, code, data.dtype.itemsize * 8)
        struct.pack_into(order + "8f", head, 76, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0, 0)
        struct.pack_into(order + "f", head, 108, 352.0)
        struct.pack_into(order + "f", head, 112, 1.0)  # scl_slope
        head[344:348] = b"n+1\0"
    else:
        head = bytearray(544)
        struct.pack_into(order + "i", head, 0, 540)
        head[4:12] = b"n+2\0\r\n\x1a\n"
        struct.pack_into(order + "hh", head, 12, code, data.dtype.itemsize * 8)
        struct.pack_into(order + "8q", head, 16, *dims)
        struct.pack_into(order + "8d", head, 104, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0, 0)
        struct.pack_into(order + "q", head, 168, 544)
        struct.pack_into(order + "d", head, 176, 1.0)  # scl_slope
    raw = bytes(head) + data.astype(data.dtype.newbyteorder(order)).tobytes()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def _data(dtype: str) -> np.ndarray:
    data = np.arange(2 * 3 * 4, dtype=dtype).reshape(2, 3, 4) + 1
    if data.dtype.kind == "f":
        data[0, 1, 2] = np.nan
        data[1, 2, 3] = np.inf
        data[1, 0, 0] = -np.inf
    return data


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz"])
def test_counts_nan_and_inf_of_float_nifti(
    tmp_path: Path, version: int, order: str, dtype: str, name: str
) -> None:
    path = _nifti(tmp_path / name, _data(dtype), order, version)
    assert count_nonfinite(path) == (1, 2)


def test_simpleitk_reads_the_hand_made_file_and_hides_its_nan(tmp_path: Path) -> None:
    """The file is valid NIfTI; SimpleITK 2.x (ITK 5) turns its non-finite voxels into 0."""
    data = _data("f4")
    path = _nifti(tmp_path / "a.nii.gz", data, "<", 1)
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    finite = np.isfinite(data)
    np.testing.assert_array_equal(read[finite], data[finite])
    if sitk.Version.MajorVersion() < 3:  # SimpleITK 3 builds on ITK 6, which keeps them
        assert np.isfinite(read).all()


def test_other_files_and_types_are_not_counted(tmp_path: Path) -> None:
    assert count_nonfinite(_nifti(tmp_path / "a.nii", _data("i2"), "<", 1)) is None
    (tmp_path / "b.nii").write_bytes(b"not a nifti header" * 40)
    assert count_nonfinite(tmp_path / "b.nii") is None
    image = sitk.GetImageFromArray(_data("f4"))
    sitk.WriteImage(image, str(tmp_path / "c.mha"))
    assert count_nonfinite(tmp_path / "c.mha") is None
