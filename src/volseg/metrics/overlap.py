"""Overlap scores of two masks from their counts TP, FP, FN, TN.

:func:`dice`, :func:`jaccard`, :func:`precision`, :func:`recall` (sensitivity),
:func:`specificity`, :func:`accuracy`. Masks are integer or boolean arrays of one shape; a
non-zero voxel is foreground. Both masks empty -> every score 1.0 (a correct "nothing there").
Any ratio whose denominator is zero scores 1.0 when the prediction equals the reference and 0.0
otherwise (precision with an empty prediction and a non-empty reference is 0.0); with
``empty="nan"`` (MONAI's choice) every such 0/0 ratio is NaN instead, so the aggregation skips
and counts it.

:func:`overlap_from_counts` takes an ``eps`` for Adeniji et al.'s smoothed forms (Eqs. 6, 8, 9:
``(2 TP + eps) / (|P| + |R| + eps)``, ``TP / (|P| + eps)``, ``TP / (|R| + eps)``, eps = 1); with
``eps = 0`` (the default everywhere) the exact ratios and the conventions above hold.
"""

from __future__ import annotations

import math

import numpy as np

from volseg.metrics._masks import Empty, as_bool_pair, check_empty

__all__ = [
    "OVERLAP_METRICS",
    "accuracy",
    "dice",
    "jaccard",
    "overlap_from_counts",
    "precision",
    "recall",
    "specificity",
]

OVERLAP_METRICS = ("dice", "jaccard", "precision", "recall", "specificity", "accuracy")


def _counts(p: np.ndarray, r: np.ndarray) -> tuple[int, int, int, int]:
    """``(TP, FP, FN, TN)`` of two boolean masks."""
    tp = int(np.count_nonzero(p & r))
    n_p, n_r = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    return tp, n_p - tp, n_r - tp, p.size - n_p - n_r + tp


def _ratio(num: int, den: int, same: bool, empty: str = "documented") -> float:
    """``num / den``; a zero denominator scores 1.0 if pred equals ref (``same``), else 0.0,
    or NaN with ``empty="nan"``."""
    if den == 0:
        if empty == "nan":
            return math.nan
        return 1.0 if same else 0.0
    return num / den


def overlap_from_counts(
    name: str,
    tp: int,
    fp: int,
    fn: int,
    tn: int,
    eps: float = 0.0,
    *,
    empty: Empty = "documented",
) -> float:
    """The overlap metric ``name`` from the counts; ``eps > 0`` smooths Dice, precision and
    recall as Adeniji et al. do (the other metrics ignore it). ``empty="nan"``: a ratio 0/0 is
    NaN instead of volseg's documented 1.0 or 0.0."""
    check_empty(empty)
    if eps > 0 and name == "dice":
        return (2 * tp + eps) / (2 * tp + fp + fn + eps)
    if eps > 0 and name == "precision":
        return tp / (tp + fp + eps)
    if eps > 0 and name == "recall":
        return tp / (tp + fn + eps)
    same = fp == 0 and fn == 0
    if name == "dice":
        return _ratio(2 * tp, 2 * tp + fp + fn, same, empty)
    if name == "jaccard":
        return _ratio(tp, tp + fp + fn, same, empty)
    if name == "precision":
        return _ratio(tp, tp + fp, same, empty)
    if name == "recall":
        return _ratio(tp, tp + fn, same, empty)
    if name == "specificity":
        return _ratio(tn, tn + fp, same, empty)
    if name == "accuracy":
        return _ratio(tp + tn, tp + fp + fn + tn, same, empty)
    raise ValueError(f"unknown overlap metric {name!r}; known: {', '.join(OVERLAP_METRICS)}")


def dice(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Dice overlap ``2 TP / (2 TP + FP + FN) = 2 |P & R| / (|P| + |R|)``; 1.0 if both empty."""
    return overlap_from_counts("dice", *_counts(*as_bool_pair(pred, ref)), empty=empty)


def jaccard(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Jaccard index (IoU) ``TP / (TP + FP + FN)``; 1.0 if both empty. Equals ``D / (2 - D)``."""
    return overlap_from_counts("jaccard", *_counts(*as_bool_pair(pred, ref)), empty=empty)


def precision(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Precision ``TP / (TP + FP)``; empty prediction: 1.0 if the reference is empty, else 0.0."""
    return overlap_from_counts("precision", *_counts(*as_bool_pair(pred, ref)), empty=empty)


def recall(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Recall (sensitivity) ``TP / (TP + FN)``; empty reference: 1.0 if pred empty, else 0.0."""
    return overlap_from_counts("recall", *_counts(*as_bool_pair(pred, ref)), empty=empty)


def specificity(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Specificity ``TN / (TN + FP)``; a reference with no background: 1.0 if pred equals it."""
    return overlap_from_counts("specificity", *_counts(*as_bool_pair(pred, ref)), empty=empty)


def accuracy(pred: np.ndarray, ref: np.ndarray, *, empty: Empty = "documented") -> float:
    """Accuracy ``(TP + TN) / N``, the fraction of voxels labelled alike (Adeniji Eq. 7)."""
    return overlap_from_counts("accuracy", *_counts(*as_bool_pair(pred, ref)), empty=empty)
