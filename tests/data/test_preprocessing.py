from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from volseg.config import PreprocessConfig
from volseg.data.preprocessing import Grid, PreprocessRecord, preprocess, reorient, restore
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


def test_reorient_resample_crop_inverse_is_exact(phantom: tuple[Volume, Volume]) -> None:
    """Oblique direction, anisotropic spacing: LPS + half spacing + crop, then back, exactly."""
    image, label = (_padded(v) for v in phantom)
    base = PreprocessConfig(orient="LPS", crop_nonzero=False, normalize="none")
    oriented = preprocess(image, base)[2].grid
    half = tuple(s / 2 for s in oriented.spacing)  # every source voxel splits in 2x2x2
    config = PreprocessConfig(orient="LPS", target_spacing=half, crop_nonzero=True)
    work, work_label, record = preprocess(image, config, label)
    assert work_label is not None and work.spacing == half
    assert work.shape != tuple(2 * n for n in image.shape)  # cropped
    assert record.grid.direction != image.direction  # axes permuted/flipped
    back = restore(work_label, record, "nearest")
    assert Grid.of(back) == Grid.of(label)  # the original grid, exactly
    np.testing.assert_array_equal(back.array, label.array)


def test_crop_or_pad_to_size_round_trips(phantom: tuple[Volume, Volume]) -> None:
    image, label = phantom
    big = PreprocessConfig(orient=None, crop_nonzero=False, crop_size=(24, 30, 33))
    work, work_label, record = preprocess(image, big, label)
    assert work.shape == (24, 30, 33) and work_label is not None
    assert work_label.array[0, 0].sum() == 0 and work.array[0, 0].max() == 0.0  # padded
    np.testing.assert_array_equal(restore(work_label, record, "nearest").array, label.array)
    around = PreprocessConfig(
        orient=None, crop_nonzero=False, crop_size=(8, 8, 8), crop_mode="foreground"
    )
    work, work_label, record = preprocess(image, around, label)
    assert work.shape == (8, 8, 8) and work_label is not None
    fg = np.argwhere(label.array[0] > 0)
    centre = (fg.min(0) + fg.max(0)) / 2
    start = np.rint(centre - 3.5)
    back = restore(work_label, record, "nearest")
    window = tuple(slice(int(a), int(a) + 8) for a in start)
    np.testing.assert_array_equal(back.array[0][window], label.array[0][window])


def test_ct_window_clipping() -> None:
    image, _ = make_phantom(shape=(6, 7, 8))
    array = np.linspace(-1500, 2500, image.array.size).reshape(image.array.shape)
    config = PreprocessConfig(
        orient=None, crop_nonzero=False, clip_window=(-1000.0, 1000.0), normalize="none"
    )
    work, _, _ = preprocess(image.with_array(array.astype(np.float32)), config)
    assert work.array.min() == -1000.0 and work.array.max() == 1000.0


def test_anisotropic_bspline_does_not_overshoot_across_thick_slices() -> None:
    array = np.zeros((1, 10, 6, 6), dtype=np.float32)
    array[:, 5:] = 100.0  # a step along the 5 mm axis
    image = Volume(array, (1.0, 1.0, 5.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    common = {"orient": None, "target_spacing": (1.0, 1.0, 1.0), "crop_nonzero": False}
    aware = PreprocessConfig(**common, interpolation="bspline", normalize="none")
    naive = PreprocessConfig(
        **common, interpolation="bspline", normalize="none", anisotropy_threshold=None
    )
    work = preprocess(image, aware)[0].array
    assert work.min() >= -1e-3 and work.max() <= 100.001  # linear across the thick axis
    overshoot = preprocess(image, naive)[0].array
    assert overshoot.min() < -1.0 and overshoot.max() > 101.0  # cubic rings at the step


def test_n4_reduces_a_multiplicative_bias() -> None:
    from volseg.data.preprocessing import n4_correct

    shape = (24, 28, 32)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    tissue = (x**2 + y**2 + z**2) < 0.8
    truth = np.where(tissue, 100.0, 0.0) + np.where((x**2 + y**2 + z**2) < 0.2, 50.0, 0.0)
    bias = np.exp(0.4 * x + 0.2 * y)
    image = Volume(
        (truth * bias)[None].astype(np.float32),
        (1.0, 1.0, 1.5),
        (0, 0, 0),
        (1, 0, 0, 0, 1, 0, 0, 0, 1),
    )
    outer = tissue & ((x**2 + y**2 + z**2) >= 0.2)

    def spread(array: np.ndarray) -> float:  # coefficient of variation in one tissue
        values = array[outer]
        return float(values.std() / values.mean())

    corrected = n4_correct(image, shrink_factor=2, mask="nonzero", iterations=(30, 30))
    assert spread(corrected.array[0]) < 0.5 * spread(image.array[0])


def test_two_target_spacings_on_a_3d_scan_set_the_plane_and_keep_z() -> None:
    image, _ = make_phantom()
    work, _, _ = preprocess(image, PreprocessConfig(orient=None, target_spacing=(1.5, 1.25)))
    assert work.spacing == pytest.approx((1.5, 1.25, image.spacing[2]))
    with pytest.raises(ValueError, match=r"target_spacing \(1\.5,\) has 1 values for a 3-D"):
        preprocess(image, PreprocessConfig(orient=None, target_spacing=(1.5,)))


def test_reorientation_alone_is_simpleitk_dicomorient(phantom: tuple[Volume, Volume]) -> None:
    """Orient only: the working image is ``sitk.DICOMOrient`` of each channel, on its grid."""
    image, _ = phantom
    two = image.with_array(np.concatenate([image.array, 2.0 * image.array + 1.0]))
    config = PreprocessConfig(orient="RAS", crop_nonzero=False, normalize="none")
    work, _, record = preprocess(two, config)
    oriented = reorient(two, "RAS")
    assert Grid.of(oriented) == record.grid
    for c in range(2):
        reference = sitk.DICOMOrient(two.to_sitk(c), "RAS")
        np.testing.assert_array_equal(oriented.array[c], sitk.GetArrayFromImage(reference))
        np.testing.assert_allclose(work.array[c], oriented.array[c], rtol=1e-6, atol=1e-5)


def test_resampling_is_simpleitk_resample_per_channel(phantom: tuple[Volume, Volume]) -> None:
    """Reorient + respacing of a 3-channel oblique scan: one ``sitk.Resample`` per channel."""
    image, label = phantom
    rng = np.random.default_rng(0)
    three = image.with_array(rng.normal(size=(3, *image.shape)).astype(np.float32))
    config = PreprocessConfig(
        orient="LPS", target_spacing=(1.3, 0.7, 1.6), crop_nonzero=False, normalize="none"
    )
    work, work_label, record = preprocess(three, config, label)
    reference_grid = record.grid.reference_image()
    for c in range(3):
        expected = sitk.Resample(
            three.to_sitk(c), reference_grid, sitk.Transform(), sitk.sitkLinear
        )
        np.testing.assert_array_equal(work.array[c], sitk.GetArrayFromImage(expected))
    nearest = sitk.Resample(
        label.to_sitk(), reference_grid, sitk.Transform(), sitk.sitkNearestNeighbor
    )
    assert work_label is not None
    np.testing.assert_array_equal(work_label.array[0], sitk.GetArrayFromImage(nearest))
    assert work.array.flags.c_contiguous and work_label.array.flags.c_contiguous


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("normalize", "minmax"),
        ("interpolation", "cubic"),
        ("crop_mode", "edge"),
        ("n4_mask", "all"),
    ],
)
def test_unknown_choices_are_refused_before_any_work(key: str, value: str) -> None:
    image, _ = make_phantom(shape=(6, 7, 8))
    config = PreprocessConfig(orient=None, **{key: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"preprocess\.{key}: '{value}'"):
        preprocess(image, config)


def test_restore_fills_each_channel_where_the_grid_does_not_reach(
    phantom: tuple[Volume, Volume],
) -> None:
    image, _ = (_padded(v) for v in phantom)
    work, _, record = preprocess(image, PreprocessConfig(target_spacing=(1.0, 1.0, 1.0)))
    probs = np.full((3, *work.shape), 0.5, dtype=np.float32)
    back = restore(work.with_array(probs), record, "linear", [1.0, 0.0, 0.25])
    assert back.same_grid(image)
    assert tuple(back.array[:, 0, 0, 0]) == (1.0, 0.0, 0.25)  # the padding was cropped away
    assert np.all(
        back.array[:, image.shape[0] // 2, image.shape[1] // 2, image.shape[2] // 2] == 0.5
    )


def test_default_config_on_a_2d_image_keeps_its_axes_and_round_trips() -> None:
    """``orient: LPS`` (the default) applies to 3-D scans; a 2-D image (EM, CTP slice) keeps its
    axes instead of failing in DICOMOrient, which takes 3-D images only."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (1, 12, 10)).astype(np.uint8)
    image = Volume(array, (0.5, 0.8), (3.0, -2.0), (0.0, 1.0, 1.0, 0.0))
    work, _, record = preprocess(image, PreprocessConfig(crop_nonzero=False, normalize="none"))
    assert work.shape == image.shape and work.direction == image.direction
    back = restore(work, record)
    np.testing.assert_allclose(back.array, image.array)
    assert (back.spacing, back.origin, back.direction) == (
        image.spacing,
        image.origin,
        image.direction,
    )
