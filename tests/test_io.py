from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from volseg.data.synthetic import OBLIQUE_DIRECTION, make_phantom
from volseg.io import Volume, VolumeReadError, read_volume, stack_channels, write_volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".mhd", ".nrrd"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_round_trip_keeps_values_and_geometry(tmp_path: Path, suffix: str, dtype: type) -> None:
    image, _ = make_phantom(shape=(5, 6, 7), spacing=(0.7, 1.3, 3.1))
    volume = image.with_array((image.array * 0.5).astype(dtype))
    path = write_volume(volume, tmp_path / f"x{suffix}")
    back = read_volume(path)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_array_equal(back.array, volume.array)
    # NIfTI keeps geometry in float32 (qform/sform); the others in decimal text
    tol = 1e-5 if suffix.startswith(".nii") else 1e-12
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=tol)
    np.testing.assert_allclose(back.origin, volume.origin, atol=tol * 100)
    np.testing.assert_allclose(back.direction, volume.direction, atol=tol)
    assert back.same_grid(volume)


def test_axis_order_matches_simpleitk(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 1.5, 4.0))
    sitk.WriteImage(image, str(tmp_path / "a.nrrd"))
    volume = read_volume(tmp_path / "a.nrrd")
    assert volume.shape == (2, 3, 4)
    assert volume.spacing == (0.5, 1.5, 4.0)
    assert volume.spacing_zyx == (4.0, 1.5, 0.5)
    np.testing.assert_array_equal(volume.array[0], array)


def test_2d_round_trip(tmp_path: Path) -> None:
    _, label = make_phantom(shape=(9, 11), spacing=(0.5, 2.0))
    back = read_volume(write_volume(label, tmp_path / "l.nii.gz"))
    assert back.ndim == 2 and back.shape == (9, 11)
    np.testing.assert_array_equal(back.array, label.array)


def test_multichannel_vector_round_trip(tmp_path: Path) -> None:
    image, _ = make_phantom(shape=(4, 5, 6), channels=3)
    back = read_volume(write_volume(image, tmp_path / "v.mha"))
    assert back.channels == 3
    np.testing.assert_array_equal(back.array, image.array)


def test_stack_channels_and_grid_mismatch(tmp_path: Path) -> None:
    image, _ = make_phantom(shape=(4, 5, 6))
    a = write_volume(image, tmp_path / "a.nii.gz")
    b = write_volume(image.with_array(image.array * 2), tmp_path / "b.nii.gz")
    stacked = stack_channels([a, b])
    assert stacked.channels == 2
    np.testing.assert_allclose(stacked.array[1], 2 * stacked.array[0])
    moved = Volume(image.array, image.spacing, (9.0, 9.0, 9.0), image.direction)
    c = write_volume(moved, tmp_path / "c.nii.gz")
    with pytest.raises(
        VolumeReadError, match=r"c\.nii\.gz.*grid differs from .*a\.nii\.gz.*origin"
    ):
        stack_channels([a, c])


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(VolumeReadError, match="missing.nii.gz: file not found"):
        read_volume(tmp_path / "missing.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image")
    with pytest.raises(VolumeReadError, match="bad.nii.gz: cannot read image"):
        read_volume(bad)
    txt = tmp_path / "notes.txt"
    txt.write_text("x", encoding="utf-8")
    with pytest.raises(VolumeReadError, match="notes.txt: unsupported file type"):
        read_volume(txt)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    image, _ = make_phantom(shape=(4, 5, 6))
    write_volume(image, tmp_path / "out.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_dicom_series(tmp_path: Path) -> None:
    array = (np.arange(3 * 8 * 9).reshape(3, 8, 9) % 200).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((10.0, -4.0, 3.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[0]):
        slice_ = image[:, :, k]
        slice_.SetMetaData("0020|0032", "10\\-4\\%f" % (3.0 + 2.5 * k))
        slice_.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        slice_.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        slice_.SetMetaData("0020|0013", str(k))
        slice_.SetMetaData("0008|0060", "MR")
        writer.SetFileName(str(tmp_path / f"s{k}.dcm"))
        writer.Execute(slice_)
    volume = read_volume(tmp_path)
    assert volume.shape == (3, 8, 9)
    np.testing.assert_array_equal(volume.array[0], array)
    np.testing.assert_allclose(volume.spacing, (0.8, 0.8, 2.5), atol=1e-6)
    np.testing.assert_allclose(volume.origin, (10.0, -4.0, 3.0), atol=1e-6)


def test_oblique_direction_is_orthonormal() -> None:
    m = np.asarray(OBLIQUE_DIRECTION).reshape(3, 3)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(m) == pytest.approx(1.0)
