"""volseg.metrics.case: score_masks, evaluate_case per label and region, empty masks, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from volseg.metrics import (
    DISTANCE_METRICS,
    LESION_METRICS,
    METRICS,
    OVERLAP_METRICS,
    average_surface_distance,
    evaluate_case,
    hausdorff_distance,
    score_masks,
    specificity,
    surface_dice,
)


def test_evaluate_case() -> None:
    ref = np.zeros((8, 8, 8), dtype=np.int64)
    ref[1:4, 1:4, 1:4] = 1
    ref[5:7, 5:7, 5:7] = 2
    pred = ref.copy()
    pred[pred == 2] = 0
    row = evaluate_case(pred, ref, (1.0, 1.0, 1.0), labels=[0, 1, 2, 3])
    assert set(row) == {"dice_1", "hd95_1", "dice_2", "hd95_2", "dice_3", "hd95_3"}
    assert row["dice_1"] == 1.0 and row["hd95_1"] == 0.0
    assert row["dice_2"] == 0.0 and row["hd95_2"] == math.inf
    assert row["dice_3"] == 1.0 and row["hd95_3"] == 0.0


def test_evaluate_case_metrics_and_brats_regions() -> None:
    ref = np.zeros((6, 6, 6), dtype=np.int64)
    ref[1:5, 1:5, 1:5] = 2  # oedema
    ref[2:4, 2:4, 2:4] = 1  # necrosis
    ref[2, 2, 2] = 4  # enhancing
    pred = ref.copy()
    pred[pred == 4] = 1  # enhancing missed, labelled necrosis
    row = evaluate_case(pred, ref, (1.0, 1.0, 2.0), [], metrics=["dice", "recall"], regions="brats")
    assert list(row) == ["dice_WT", "recall_WT", "dice_TC", "recall_TC", "dice_ET", "recall_ET"]
    assert row["dice_WT"] == 1.0 and row["dice_TC"] == 1.0
    assert row["dice_ET"] == 0.0 and row["recall_ET"] == 0.0
    both = evaluate_case(pred, ref, None, [1, 4], metrics=["dice"], regions="brats")
    assert list(both) == ["dice_1", "dice_4", "dice_WT", "dice_TC", "dice_ET"]
    assert both["dice_1"] == pytest.approx(2 * 7 / 15)


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = empty.copy()
    full[1:3, 1:3, 1:3] = True
    everything = ~empty
    # both empty: a correct "nothing there"
    both = score_masks(empty, empty, (1.0, 2.0, 3.0), METRICS)
    zero = ("hd", "hd95", "assd", "lesion_hd95", "lesion_count_diff", "lesion_volume_diff")
    assert both == {m: (0.0 if m in zero else 1.0) for m in METRICS}
    # prediction empty, reference not
    miss = score_masks(empty, full, None, METRICS)
    assert miss["dice"] == miss["jaccard"] == miss["precision"] == miss["recall"] == 0.0
    assert miss["specificity"] == 1.0 and miss["accuracy"] == pytest.approx(1 - 8 / 125)
    assert miss["hd"] == miss["hd95"] == miss["assd"] == math.inf
    assert miss["surface_dice"] == 0.0
    # reference empty, prediction not: recall has no positives to find and scores 0
    extra = score_masks(full, empty, None, METRICS, empty_distance=373.13)
    assert extra["precision"] == extra["recall"] == extra["dice"] == 0.0
    assert extra["hd95"] == extra["hd"] == extra["assd"] == 373.13
    assert hausdorff_distance(full, empty, None, 95, empty_distance=373.13) == 373.13
    assert average_surface_distance(empty, full) == math.inf
    assert surface_dice(empty, empty, None, 1.0) == 1.0
    # a reference without background: specificity 1 only if the prediction is all foreground
    assert specificity(everything, everything) == 1.0
    assert specificity(full, everything) == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        score_masks(full, full, None, ["dice", "volume"])
    with pytest.raises(ValueError, match="combine"):
        hausdorff_distance(full, full, None, 95, combine="mean")  # type: ignore[arg-type]


masks_3d = hnp.arrays(np.bool_, (4, 5, 6), elements=st.booleans())
spacings = st.tuples(*(st.floats(0.3, 3.0) for _ in range(3)))


@settings(max_examples=40, deadline=None)
@given(a=masks_3d, b=masks_3d, sp=spacings)
def test_properties_symmetry_range_identity(
    a: np.ndarray, b: np.ndarray, sp: tuple[float, float, float]
) -> None:
    voxel_metrics = OVERLAP_METRICS + DISTANCE_METRICS
    ab = score_masks(a, b, sp, voxel_metrics, tolerance=1.0)
    ba = score_masks(b, a, sp, voxel_metrics, tolerance=1.0)
    for name in ("dice", "jaccard", "accuracy", "hd", "hd95", "assd", "surface_dice"):
        assert ab[name] == pytest.approx(ba[name], rel=1e-12), name
    assert ab["precision"] == ba["recall"]
    for name in ("dice", "jaccard", "precision", "recall", "specificity", "accuracy"):
        assert 0.0 <= ab[name] <= 1.0
    assert 0.0 <= ab["surface_dice"] <= 1.0
    assert 0.0 <= ab["assd"] <= ab["hd"]
    assert ab["hd95"] <= ab["hd"]
    if ab["dice"] < 1.0:
        assert ab["jaccard"] == pytest.approx(ab["dice"] / (2 - ab["dice"]))
    same = score_masks(a, a, sp, voxel_metrics, tolerance=0.0)
    assert same == {m: (0.0 if m in ("hd", "hd95", "assd") else 1.0) for m in voxel_metrics}
    assert set(LESION_METRICS) <= set(METRICS)


def test_empty_nan_mode() -> None:
    """``empty="nan"``: every 0/0 ratio and the both-empty distances are NaN (MONAI's choice);
    the one-empty values and the well-defined ratios stay as documented."""
    empty = np.zeros((5, 5, 5), dtype=bool)
    some = empty.copy()
    some[1:3, 1:3, 1:3] = True
    both = score_masks(empty, empty, None, METRICS, empty="nan")
    nan = {"dice", "jaccard", "precision", "recall", "hd", "hd95", "assd", "surface_dice"}
    nan |= {"lesion_dice", "lesion_hd95", "lesion_precision", "lesion_recall", "lesion_f1"}
    assert {m for m, v in both.items() if math.isnan(v)} == nan
    assert both["specificity"] == both["accuracy"] == 1.0
    assert both["lesion_count_diff"] == both["lesion_volume_diff"] == 0.0
    miss = score_masks(empty, some, None, METRICS, empty="nan")
    assert math.isnan(miss["precision"])  # 0 / 0: nothing predicted
    assert miss["dice"] == miss["recall"] == miss["surface_dice"] == 0.0
    assert miss["hd95"] == math.inf
    assert math.isnan(score_masks(empty, empty, None, ["dice"])["dice"]) is False
    row = evaluate_case(empty.astype(int), empty.astype(int), None, [1], empty="nan")
    assert all(math.isnan(v) for v in row.values())
    with pytest.raises(ValueError, match="empty"):
        score_masks(empty, empty, None, ["dice"], empty="zero")  # type: ignore[arg-type]
