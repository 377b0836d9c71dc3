"""Overlay pictures and plain-text tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from volseg.io import Volume
from volseg.report import format_table, save_overlay_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A sagittal-like direction (axes permuted with flips) and anisotropic spacing.
DIRECTION = (0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def _volumes() -> tuple[Volume, Volume, Volume]:
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:8, 0:12, 0:10]
    ball = ((z - 4) ** 2 / 9 + (y - 6) ** 2 / 16 + (x - 5) ** 2 / 9) <= 1.0
    image = (100.0 * ball + rng.normal(0, 5, ball.shape)).astype(np.float32)[None]
    geometry = ((0.8, 0.8, 2.5), (10.0, -5.0, 3.0), DIRECTION)
    shifted = np.roll(ball, 1, axis=2)
    return (
        Volume(image, *geometry),
        Volume(ball.astype(np.uint8)[None], *geometry),
        Volume(shifted.astype(np.uint8)[None], *geometry),
    )


@pytest.mark.parametrize("with_reference", [False, True])
def test_overlay_png_is_written_atomically(tmp_path: Path, with_reference: bool) -> None:
    image, label, reference = _volumes()
    out = tmp_path / "sub" / "overlay.png"
    written = save_overlay_png(
        image, label, out, reference=reference if with_reference else None, title="case 1"
    )
    assert written == out
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["overlay.png"]  # no temporary file left


def test_overlay_png_without_label_and_with_empty_label(tmp_path: Path) -> None:
    image, label, _ = _volumes()
    save_overlay_png(image, None, tmp_path / "a.png")
    empty = label.with_array(np.zeros_like(label.array))
    save_overlay_png(image, empty, tmp_path / "b.png", reference=empty)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG_MAGIC


def test_overlay_png_2d(tmp_path: Path) -> None:
    array = np.zeros((1, 6, 9), dtype=np.float32)
    array[0, 2:4, 3:6] = 1.0
    image = Volume(array, (1.0, 2.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    label = image.with_array((array > 0).astype(np.uint8))
    save_overlay_png(image, label, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_overlay_rejects_label_on_another_grid(tmp_path: Path) -> None:
    image, label, _ = _volumes()
    moved = Volume(label.array, label.spacing, (0.0, 0.0, 0.0), label.direction)
    with pytest.raises(ValueError, match="origin"):
        save_overlay_png(image, moved, tmp_path / "d.png")
    assert list(tmp_path.iterdir()) == []


def test_format_table_aligns_columns() -> None:
    rows: list[dict[str, object]] = [
        {"case": "brain_01", "dice": 0.91234, "voxels": 1200},
        {"case": "b2", "dice": float("nan"), "voxels": 7},
        {"case": "long_case_name", "voxels": 35},
    ]
    text = format_table(rows, ["case", "dice", "voxels"])
    lines = text.splitlines()
    expected = [
        "case              dice  voxels",
        "--------------  ------  ------",
        "brain_01        0.9123    1200",
        "b2                 nan       7",
        "long_case_name              35",
    ]
    assert lines == expected


def test_format_table_empty_rows() -> None:
    assert format_table([], ["a", "bb"]).splitlines() == ["a  bb", "-  --"]


def test_canonical_view_is_simpleitk_dicomorient() -> None:
    """The overlay's LPS view of a tilted sagittal scan is ``sitk.DICOMOrient``'s, voxelwise."""
    import SimpleITK as sitk

    from volseg.report.overlay import _canonical

    t = np.deg2rad(12.0)
    tilt = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    direction = tilt @ np.asarray(DIRECTION).reshape(3, 3)
    rng = np.random.default_rng(1)
    array = rng.normal(size=(2, 8, 12, 10)).astype(np.float32)
    volume = Volume(array, (0.8, 0.8, 2.5), (10.0, -5.0, 3.0), tuple(direction.ravel()))
    view = _canonical(volume)
    for c in range(2):
        reference = sitk.DICOMOrient(volume.to_sitk(c), "LPS")
        np.testing.assert_array_equal(view.array[c], sitk.GetArrayFromImage(reference))
        assert view.spacing == pytest.approx(reference.GetSpacing())
        assert view.origin == pytest.approx(reference.GetOrigin())
        assert view.direction == pytest.approx(reference.GetDirection())
    assert view.shape == (12, 10, 8)  # axes permuted
    assert np.all(np.diag(view.direction_matrix) > 0.9)  # flipped onto L, P, S: close to identity
