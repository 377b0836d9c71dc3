"""Read checks (issue 18, item 3): what SimpleITK reads without a word is an error naming the file.

References are independent of volseg's reader: files are cut or edited byte by byte, NaN/Inf
counts come from the array written, DICOM slices from SimpleITK's own series writer.
"""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from volseg.data.check import check_dataset
from volseg.data.layouts import find_cases
from volseg.data.synthetic import make_phantom
from volseg.io import (
    Volume,
    VolumeReadError,
    read_dicom_series,
    read_label,
    read_volume,
    write_volume,
)


@pytest.fixture
def image() -> Volume:
    volume, _ = make_phantom(shape=(8, 9, 10), spacing=(0.8, 1.1, 2.5))
    return volume


def test_truncated_nii_gz_is_an_error_not_zeros(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image, tmp_path / "scan.nii.gz")
    data = path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VolumeReadError, match=r"cut\.nii\.gz: truncated file"):
        read_volume(cut)


def test_corrupt_gzip_crc_is_an_error(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image, tmp_path / "scan.nii.gz")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # inside the CRC32 of the gzip trailer
    path.write_bytes(bytes(data))
    with pytest.raises(VolumeReadError, match="corrupt gzip stream"):
        read_volume(path)


def test_truncated_uncompressed_nii_is_an_error(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image.with_array(image.array.astype(np.float32)), tmp_path / "s.nii")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(VolumeReadError, match="truncated file: the header declares"):
        read_volume(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_nan_and_inf_are_counted_for_every_format(
    tmp_path: Path, image: Volume, suffix: str
) -> None:
    array = image.array.astype(np.float32)
    array[0, 1, 2, 3] = np.nan
    array[0, 2, 2, 2] = np.nan
    array[0, 3, 3, 3] = -np.inf
    path = write_volume(image.with_array(array), tmp_path / f"x{suffix}")
    with pytest.raises(VolumeReadError, match=r"2 NaN and 1 Inf voxel"):
        read_volume(path)
    assert read_volume(path, finite=False).shape == image.shape


def test_check_still_lists_nonfinite_files_with_their_grid_checked(
    tmp_path: Path, image: Volume
) -> None:
    array = image.array.astype(np.float32)
    array[0, 0, 0, 0] = np.inf
    write_volume(image.with_array(array), tmp_path / "a.mha")
    problems = check_dataset(find_cases(tmp_path))
    assert [p.message for p in problems] == ["image has 0 NaN and 1 Inf voxel(s)"]


def test_float_label_map_with_fractions_is_refused(tmp_path: Path, image: Volume) -> None:
    label = np.zeros(image.array.shape, np.float32)
    label[0, 2:4, 2:4, 2:4] = 1.0
    label[0, 4, 4, 4] = 0.5  # linear interpolation of a label map
    path = write_volume(image.with_array(label), tmp_path / "seg.nii.gz")
    with pytest.raises(VolumeReadError, match=r"seg\.nii\.gz: label map holds 1 voxel"):
        read_label(path)
    whole = write_volume(image.with_array(np.round(label)), tmp_path / "ok.nii.gz")
    assert read_label(whole).array.max() == 1.0


def test_training_reads_labels_through_the_check(tmp_path: Path, image: Volume) -> None:
    from volseg.config import PreprocessConfig
    from volseg.data.layouts import Case
    from volseg.data.sampling import load_case

    scan = write_volume(image, tmp_path / "a.nii.gz")
    label = np.zeros(image.array.shape, np.float32)
    label[0, 3, 3, 3] = 0.7
    seg = write_volume(image.with_array(label), tmp_path / "a_seg.nii.gz")
    with pytest.raises(VolumeReadError, match="fractional values"):
        load_case(Case("a", (scan,), seg), PreprocessConfig(), [0, 1], 1)


def _nifti_header_edit(path: Path, edit: object) -> None:
    """Apply ``edit(bytearray)`` to the NIfTI-1 header of a .nii.gz file."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    edit(raw)  # type: ignore[operator]
    path.write_bytes(gzip.compress(bytes(raw)))


def test_header_size_guard_runs_before_decompressing(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image, tmp_path / "bomb.nii.gz")
    # declare 1400^3 voxels in a file of a few KB: reading it would need 2.7e9 voxels
    _nifti_header_edit(path, lambda h: struct.pack_into("<4h", h, 40, 3, 1400, 1400, 1400))
    start = time.perf_counter()
    with pytest.raises(VolumeReadError, match=r"1400x1400x1400 = 2744000000 voxels, above"):
        read_volume(path)
    assert time.perf_counter() - start < 1.0


def test_size_guard_is_configurable(
    tmp_path: Path, image: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_volume(image, tmp_path / "a.mha")
    monkeypatch.setenv("VOLSEG_MAX_VOXELS", "100")
    with pytest.raises(VolumeReadError, match="above the limit of 100"):
        read_volume(path)
    assert read_volume(path, limit=10**6).shape == image.shape


def test_zero_pixdim_is_refused_not_taken_as_1mm(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image, tmp_path / "flat.nii.gz")
    _nifti_header_edit(path, lambda h: struct.pack_into("<f", h, 80, 0.0))  # pixdim[1] (x)
    assert sitk.ReadImage(str(path)).GetSpacing()[0] == 1.0  # what SimpleITK makes of it
    with pytest.raises(VolumeReadError, match=r"flat\.nii\.gz: spacing \(0, "):
        read_volume(path)


@pytest.mark.parametrize("value", ["0", "nan"])
def test_zero_or_nonfinite_spacing_in_mha_is_refused(
    tmp_path: Path, image: Volume, value: str
) -> None:
    path = write_volume(image, tmp_path / "a.mha", compress=False)
    text = path.read_bytes()
    start = text.index(b"ElementSpacing = ")
    end = text.index(b"\n", start)
    path.write_bytes(text[:start] + f"ElementSpacing = {value} 1.1 2.5".encode() + text[end:])
    with pytest.raises(VolumeReadError, match=r"a\.mha: "):
        read_volume(path)


# -- DICOM ---------------------------------------------------------------------------------


def _dicom_series(folder: Path, depth: int = 6, uid: str = "1.2.826.0.1.3680043.2.1125.1") -> Path:
    """A DICOM series written slice by slice by SimpleITK (positions 2.5 mm apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    array = np.arange(depth * 5 * 4, dtype=np.int16).reshape(depth, 5, 4)
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((0.7, 0.9, 2.5))
    volume.SetOrigin((10.0, -5.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(depth):
        s = volume[:, :, k]
        s.SetMetaData("0020|000e", uid)
        s.SetMetaData("0020|000d", uid + ".9")
        s.SetMetaData("0008|0060", "CT")
        s.SetMetaData("0020|0013", str(k + 1))
        s.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        s.SetMetaData(
            "0020|0032",
            "\\".join(f"{v:g}" for v in volume.TransformIndexToPhysicalPoint((0, 0, k))),
        )
        s.SetMetaData("0028|0030", "0.9\\0.7")
        writer.SetFileName(str(folder / f"{uid[-1]}_{k:03d}.dcm"))
        writer.Execute(s)
    return folder


def test_dicom_series_reads_with_its_spacing(tmp_path: Path) -> None:
    volume = read_volume(_dicom_series(tmp_path / "ct"))
    assert volume.shape == (6, 5, 4)
    np.testing.assert_allclose(volume.spacing[2], 2.5, atol=1e-6)


def test_dicom_missing_slice_is_an_error(tmp_path: Path) -> None:
    folder = _dicom_series(tmp_path / "ct")
    (folder / "1_003.dcm").unlink()
    with pytest.raises(VolumeReadError, match=r"slice spacing is uneven: 5 mm between"):
        read_volume(folder)


def test_dicom_folder_with_two_series_names_both(tmp_path: Path) -> None:
    folder = _dicom_series(tmp_path / "ct", uid="1.2.826.0.1.3680043.2.1125.1")
    _dicom_series(folder, uid="1.2.826.0.1.3680043.2.1125.2")
    with pytest.raises(VolumeReadError, match=r"2 DICOM series in one folder") as info:
        read_volume(folder)
    assert "1125.1" in str(info.value) and "1125.2" in str(info.value)
    picked = read_dicom_series(folder, series="1.2.826.0.1.3680043.2.1125.2")
    assert picked.shape == (6, 5, 4)


# -- sheared directions --------------------------------------------------------------------

SHEARED_SROW = ((-0.8, 0.3, 0.0, 1.0), (0.0, -1.1, 0.0, 2.0), (0.0, 0.0, 2.5, 3.0))


@pytest.mark.parametrize("qform_code", [1, 0])
def test_sheared_nifti_sform_is_refused(tmp_path: Path, image: Volume, qform_code: int) -> None:
    path = write_volume(image, tmp_path / "tilt.nii.gz")

    def shear(h: bytearray) -> None:
        struct.pack_into("<2h", h, 252, qform_code, 1)  # qform_code, sform_code
        for row, values in enumerate(SHEARED_SROW):
            struct.pack_into("<4f", h, 280 + 16 * row, *values)

    _nifti_header_edit(path, shear)
    if qform_code:  # what ITK makes of it: the qform's rotation, the shear silently dropped
        direction = sitk.ReadImage(str(path)).GetDirection()
        assert np.allclose(direction, image.direction, atol=1e-5)
    with pytest.raises(VolumeReadError, match=r"tilt\.nii\.gz: the sform is sheared"):
        read_volume(path)


def test_orthonormal_sform_with_voxel_sizes_is_read(tmp_path: Path, image: Volume) -> None:
    path = write_volume(image, tmp_path / "ok.nii.gz")  # columns of length 0.8, 1.1, 2.5
    assert read_volume(path).same_grid(image)
    assert not np.allclose(image.direction, np.eye(3).ravel())  # a rotated grid passes


def test_sheared_mha_direction_is_refused(tmp_path: Path, image: Volume) -> None:
    sheared = Volume(image.array, image.spacing, image.origin, (1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    path = tmp_path / "shear.mha"
    sitk.WriteImage(sheared.to_sitk(), str(path))  # MHA keeps any matrix
    assert sitk.ReadImage(str(path)).GetDirection()[1] == pytest.approx(0.3)
    with pytest.raises(VolumeReadError, match=r"shear\.mha: direction .* is sheared"):
        read_volume(path)
