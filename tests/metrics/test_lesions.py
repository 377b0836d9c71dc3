"""volseg.metrics.lesions: hand-counted lesions (split, merged, missed, false positive)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from volseg.metrics import LesionRules, hausdorff_distance, lesion_scores, score_masks

SP = (2.0, 1.0, 1.5)  # 3 mm^3 per voxel


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Reference lesions A (48 voxels), B, C, D (8 each); predicted components A1 (12) and
    A2 (24) splitting A, M (24) merging B and C, and F (8) touching nothing. D is missed."""
    ref = np.zeros((10, 20, 20), dtype=np.uint8)
    pred = np.zeros_like(ref)
    ref[1:4, 2:6, 2:6] = 1  # A
    pred[1:4, 2:6, 2:3] = 1  # A1: 12 voxels of A
    pred[1:4, 2:6, 4:6] = 1  # A2: 24 voxels of A (column 3 left out: two components)
    ref[1:3, 10:12, 2:4] = 1  # B
    ref[1:3, 10:12, 6:8] = 1  # C (two columns from B)
    pred[1:3, 10:12, 2:8] = 1  # M: covers B, C and the gap
    ref[7:9, 2:4, 2:4] = 1  # D: missed
    pred[6:8, 15:17, 15:17] = 1  # F: false positive
    return pred, ref


def test_split_merged_missed_false_positive() -> None:
    pred, ref = _scene()
    res = lesion_scores(pred, ref, SP)
    assert (res.n_ref, res.n_pred, res.tp, res.fn, res.fp) == (4, 4, 3, 1, 1)
    # A: 36 of its 48 voxels found by A1 + A2; B, C: 8 each inside the 24 voxels of M
    assert res.dice == pytest.approx([72 / 84, 0.5, 0.5, 0.0])
    diagonal = math.sqrt(20.0**2 + 20.0**2 + 30.0**2)
    r, p = ref.astype(bool), pred.astype(bool)
    a = np.zeros_like(r)
    a[1:4, 2:6, 2:6] = True
    b, c = np.zeros_like(r), np.zeros_like(r)
    b[1:3, 10:12, 2:4] = True
    c[1:3, 10:12, 6:8] = True
    m = np.zeros_like(r)
    m[1:3, 10:12, 2:8] = True
    hd_a = hausdorff_distance(p & a, a, SP, 95)  # A1 and A2 lie inside A's box only
    hd_b, hd_c = hausdorff_distance(m, b, SP, 95), hausdorff_distance(m, c, SP, 95)
    assert hausdorff_distance(m, b, SP) == pytest.approx(6.0)  # M's far end: 4 voxels x 1.5
    assert res.hd95 == pytest.approx([hd_a, hd_b, hd_c, diagonal])
    want = {
        "lesion_dice": (72 / 84 + 0.5 + 0.5 + 0.0) / 5,
        "lesion_hd95": (hd_a + hd_b + hd_c + 2 * diagonal) / 5,
        "lesion_precision": 3 / 4,
        "lesion_recall": 3 / 4,
        "lesion_f1": 6 / 8,
        "lesion_count_diff": 0.0,
        "lesion_volume_diff": 4 * 3.0 / 1000,  # 72 vs 68 voxels of 3 mm^3, in ml
    }
    assert res.scores == pytest.approx(want)
    assert score_masks(pred, ref, SP, list(want)) == pytest.approx(want)


def test_brats_dilation_and_volume_threshold() -> None:
    pred, ref = _scene()
    # dilation 1: B and C (two columns apart) grow into one lesion; A and D stay apart
    res = lesion_scores(pred, ref, SP, LesionRules(dilation=1))
    assert (res.tp, res.fn, res.fp) == (2, 1, 1)
    assert res.dice == pytest.approx([72 / 84, 2 * 16 / (16 + 24), 0.0])
    # lesions of <= 24 mm^3 (8 voxels) are left out: only A is scored; M, matched only to the
    # small B and C, is no false positive; F still is
    res = lesion_scores(pred, ref, SP, LesionRules(min_volume=24.0, miss_distance=374.0))
    assert (res.tp, res.fn, res.fp) == (1, 0, 1)
    assert res.scores["lesion_dice"] == pytest.approx((72 / 84) / 2)
    assert res.scores["lesion_hd95"] == pytest.approx((res.hd95[0] + 374.0) / 2)


def test_iou_matching_and_connectivity() -> None:
    pred, ref = _scene()
    # IoU: A1 0.25 and A2 0.5 with A (not > 0.5), M 1/3 with B and C: nothing matches
    res = lesion_scores(pred, ref, SP, LesionRules(match="iou"))
    assert (res.tp, res.fn, res.fp) == (0, 4, 4)
    assert res.scores["lesion_f1"] == 0.0
    exact = lesion_scores(ref, ref, SP, LesionRules(match="iou"))
    assert exact.scores["lesion_dice"] == 1.0 and exact.scores["lesion_hd95"] == 0.0
    # two voxels meeting at a corner: one lesion under 26-connectivity, two under 6
    two = np.zeros((4, 4, 4), dtype=bool)
    two[1, 1, 1] = two[2, 2, 2] = True
    assert lesion_scores(two, two, (1, 1, 1)).n_ref == 1
    assert lesion_scores(two, two, (1, 1, 1), LesionRules(connectivity=6)).n_ref == 2
    with pytest.raises(ValueError, match="connectivity"):
        lesion_scores(two, two, (1, 1, 1), LesionRules(connectivity=8))


def test_empty_and_surfel_lesions() -> None:
    empty = np.zeros((6, 6, 6), dtype=bool)
    res = lesion_scores(empty, empty, (1, 1, 1))
    assert res.scores["lesion_dice"] == 1.0 and res.scores["lesion_f1"] == 1.0
    assert res.scores["lesion_hd95"] == 0.0
    nan = lesion_scores(empty, empty, (1, 1, 1), empty="nan").scores
    assert math.isnan(nan["lesion_dice"]) and nan["lesion_count_diff"] == 0.0
    blob = empty.copy()
    blob[1:4, 1:4, 1:3] = True
    shifted = np.roll(blob, 1, axis=2)
    surf = lesion_scores(shifted, blob, (1.0, 2.0, 0.5), convention="surfel")
    want = hausdorff_distance(shifted, blob, (1.0, 2.0, 0.5), 95, convention="surfel")
    assert surf.hd95 == pytest.approx([want])
    only_fp = lesion_scores(blob, empty, (1, 1, 1), LesionRules(miss_distance=10.0))
    assert only_fp.scores["lesion_dice"] == 0.0 and only_fp.scores["lesion_hd95"] == 10.0
    assert only_fp.scores["lesion_recall"] == 0.0 and only_fp.scores["lesion_precision"] == 0.0
