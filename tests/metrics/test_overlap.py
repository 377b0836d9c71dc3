"""volseg.metrics.overlap: Dice, Jaccard, precision, recall, specificity, accuracy by hand."""

from __future__ import annotations

import numpy as np
import pytest

from volseg.metrics import (
    accuracy,
    dice,
    jaccard,
    precision,
    recall,
    score_masks,
    specificity,
)


def test_dice_hand_values() -> None:
    pred = np.zeros((4, 4), dtype=np.int64)
    ref = np.zeros((4, 4), dtype=bool)
    pred[0, :4] = 1  # 4 voxels
    ref[0, 1:4] = True  # 6 voxels, 3 shared
    ref[1, 1:4] = True
    assert dice(pred, ref) == pytest.approx(2 * 3 / 10)
    assert dice(ref, ref) == 1.0
    assert dice(pred, ~ref & (pred == 0)) == 0.0


def test_overlap_hand_values() -> None:
    # 4x4: pred 4 voxels, ref 6 voxels, 3 shared -> TP 3, FP 1, FN 3, TN 9
    pred = np.zeros((4, 4), dtype=bool)
    ref = np.zeros((4, 4), dtype=bool)
    pred[0, :4] = True
    ref[0:2, 1:4] = True
    assert jaccard(pred, ref) == pytest.approx(3 / 7)
    assert precision(pred, ref) == pytest.approx(3 / 4)
    assert recall(pred, ref) == pytest.approx(3 / 6)
    assert specificity(pred, ref) == pytest.approx(9 / 10)
    assert accuracy(pred, ref) == pytest.approx(12 / 16)
    row = score_masks(pred, ref, None, ["dice", "jaccard", "precision", "recall"])
    assert row == pytest.approx({"dice": 0.6, "jaccard": 3 / 7, "precision": 0.75, "recall": 0.5})


def test_adeniji_eps_forms_by_hand() -> None:
    """Eqs. 6, 8, 9 with eps = 1: TP 3, FP 1, FN 2 -> (6+1)/(9+1), 3/(4+1), 3/(5+1)."""
    from volseg.metrics import overlap_from_counts

    assert overlap_from_counts("dice", 3, 1, 2, 10, eps=1.0) == pytest.approx(0.7)
    assert overlap_from_counts("precision", 3, 1, 2, 10, eps=1.0) == pytest.approx(0.6)
    assert overlap_from_counts("recall", 3, 1, 2, 10, eps=1.0) == pytest.approx(0.5)
    assert overlap_from_counts("dice", 0, 0, 0, 10, eps=1.0) == 1.0  # both empty: (0+1)/(0+1)
    assert overlap_from_counts("accuracy", 3, 1, 2, 10, eps=1.0) == pytest.approx(13 / 16)
    assert overlap_from_counts("dice", 3, 1, 2, 10) == pytest.approx(6 / 9)  # eps 0: exact
