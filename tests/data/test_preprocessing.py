from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from volseg.config import PreprocessConfig
from volseg.data.preprocessing import Grid, PreprocessRecord, preprocess, restore
from volseg.data.synthetic import make_phantom
from volseg.io import Volume


def _padded(volume: Volume, pad: int = 3) -> Volume:
    """Surround the phantom with zeros so the non-zero crop has something to cut."""
    array = np.pad(volume.array, [(0, 0)] + [(pad, pad)] * volume.ndim)
    direction = volume.direction_matrix
    origin = np.asarray(volume.origin) - direction @ (np.asarray(volume.spacing) * pad)
    return Volume(array, volume.spacing, tuple(origin), volume.direction)


def test_reorient_and_crop_restore_exactly(phantom: tuple[Volume, Volume]) -> None:
    image, label = (_padded(v) for v in phantom)
    config = PreprocessConfig(orient="LPS", target_spacing=None, crop_nonzero=True)
    work, work_label, record = preprocess(image, config, label)
    assert work_label is not None
    assert work.shape != image.shape  # cropped and permuted
    # the network's grid is axis-aligned with LPS: direction is the closest signed permutation
    assert np.allclose(np.abs(work.direction_matrix).max(axis=1), work.direction_matrix.max(1))
    back = restore(work_label, record, "nearest")
    assert Grid.of(back) == Grid.of(label)
    np.testing.assert_array_equal(back.array, label.array)


def test_every_working_voxel_sits_where_the_source_had_it(phantom: tuple[Volume, Volume]) -> None:
    image, _ = phantom
    config = PreprocessConfig(orient="RAS", crop_nonzero=False, normalize="none")
    work, _, _ = preprocess(image, config)
    src, dst = image.to_sitk(), work.to_sitk()
    for index in [(0, 0, 0), (3, 5, 7), (work.shape[2] - 1, work.shape[1] - 1, work.shape[0] - 1)]:
        point = dst.TransformIndexToPhysicalPoint(index)
        source_index = src.TransformPhysicalPointToIndex(point)
        assert dst[index] == pytest.approx(src[source_index])


def test_resampling_to_target_spacing(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    config = PreprocessConfig(orient=None, target_spacing=(1.8, 2.2, 1.0), crop_nonzero=False)
    work, work_label, record = preprocess(image, config, label)
    assert work.spacing == (1.8, 2.2, 1.0)
    assert work.shape == (40, 12, 14)  # round(shape * old / new) per array axis (z, y, x)
    assert work_label is not None and set(np.unique(work_label.array)) == {0, 1}

    # the field of view keeps its outer corner
    def corner(v: Volume) -> np.ndarray:
        return np.asarray(v.origin) - v.direction_matrix @ (np.asarray(v.spacing) / 2)

    np.testing.assert_allclose(corner(work), corner(image), atol=1e-9)
    back = restore(work_label, record, "nearest")
    assert back.shape == label.shape and back.same_grid(label)
    agreement = (back.array == label.array).mean()
    assert agreement > 0.97


def test_zscore_over_nonzero_voxels() -> None:
    image, _ = make_phantom(shape=(8, 9, 10), channels=2)
    array = image.array.copy()
    array[:, :2] = 0
    work, _, record = preprocess(image.with_array(array), PreprocessConfig(orient=None))
    for c in range(2):
        values = work.array[c][work.array[c] != 0]
        assert values.mean() == pytest.approx(0.0, abs=1e-4)
        assert values.std() == pytest.approx(1.0, abs=1e-3)
        nonzero = array[c][array[c] != 0]
        assert record.intensity_shift[c] == pytest.approx(nonzero.mean(), rel=1e-5)


def test_record_round_trips_through_plain_data(phantom: tuple[Volume, Volume]) -> None:
    _, _, record = preprocess(phantom[0], PreprocessConfig(target_spacing=(1.0, 1.0, 1.0)))
    assert PreprocessRecord.from_dict(record.to_dict()) == record


def test_probabilities_outside_the_crop_are_background(phantom: tuple[Volume, Volume]) -> None:
    image, _ = (_padded(v) for v in phantom)
    work, _, record = preprocess(image, PreprocessConfig())
    probs = np.zeros((2, *work.shape), dtype=np.float32)
    probs[1] = 1.0
    back = restore(work.with_array(probs), record, "linear", [1.0, 0.0])
    assert back.array[0, 0, 0, 0] == 1.0 and back.array[1, 0, 0, 0] == 0.0
    assert back.array[1].sum() == pytest.approx(np.prod(work.shape), rel=1e-6)


def test_sitk_reference_image_matches_grid(phantom: tuple[Volume, Volume]) -> None:
    grid = Grid.of(phantom[0])
    ref = grid.reference_image()
    assert ref.GetSize() == tuple(reversed(grid.shape))
    assert ref.GetDirection() == pytest.approx(grid.direction)
    assert isinstance(ref, sitk.Image)
