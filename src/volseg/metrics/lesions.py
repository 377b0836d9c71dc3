"""Lesion-wise scores: connected components matched between prediction and reference.

The rules (``docs/metrics.md`` writes them out beside the BraTS 2023 and ISLES 2022 code):

* lesions are the connected components (``scipy.ndimage.label``) of each mask, with
  ``connectivity`` 26 (faces, edges, corners; BraTS and ISLES) or 6 (faces) in 3-D, 8 or 4 in
  2-D;
* ``dilation > 0`` (BraTS 2023: 3 for gliomas, 1 for metastases): the reference mask is dilated
  that many times by the 18-neighbourhood (8 in 2-D); reference lesions whose dilations touch
  become one lesion, and a lesion's dilation is where predicted components are looked for;
* ``match="overlap"`` (BraTS, ISLES): every predicted component that shares a voxel with a
  lesion (or its dilation) is matched to it, so a split lesion collects all its pieces and one
  merged component serves several lesions; ``match="iou"``: a component and a lesion match when
  their IoU exceeds 0.5 (one to one);
* per lesion: Dice and HD95 between the lesion and the union of its matched components; a
  lesion with no match scores Dice 0 and HD95 ``miss_distance`` (the image diagonal in mm by
  default; BraTS writes 374). Lesions of at most ``min_volume`` mm^3 (BraTS: 50) are left out
  of the means and the detection counts; a component matched only to them is no false positive;
* ``lesion_dice`` = sum of lesion Dice / (lesions + false-positive components); ``lesion_hd95``
  = (sum of lesion HD95 + false positives x ``miss_distance``) / the same count (BraTS 2023);
* detection (ISLES 2022): TP = lesions with a match, FN = lesions without, FP = components
  matched to no lesion; ``lesion_precision`` TP/(TP+FP), ``lesion_recall`` TP/(TP+FN),
  ``lesion_f1`` 2TP/(2TP+FP+FN); ``lesion_count_diff`` = |#components - #lesions| (before any
  merging) and ``lesion_volume_diff`` = |pred volume - ref volume| in ml.

No lesion in either mask: ``lesion_dice``, precision, recall and F1 1.0, ``lesion_hd95`` 0.0
(NaN for all five with ``empty="nan"``); counts and volumes are 0. The masks are labelled once;
matches come from counting voxel pairs of component ids (a sparse table); only HD95 looks at
each lesion again, inside the box of the lesion and its matches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from volseg.metrics._masks import (
    Convention,
    Empty,
    as_bool_pair,
    check_convention,
    check_empty,
    spacing_array,
)
from volseg.metrics.surface import _distances, hd_from

__all__ = ["LESION_METRICS", "LesionResult", "LesionRules", "lesion_scores"]

LESION_METRICS = (
    "lesion_dice",
    "lesion_hd95",
    "lesion_precision",
    "lesion_recall",
    "lesion_f1",
    "lesion_count_diff",
    "lesion_volume_diff",
)


@dataclass(frozen=True)
class LesionRules:
    """How lesions are found and matched (module docstring). BraTS 2023 gliomas:
    ``LesionRules(dilation=3, min_volume=50, miss_distance=374)`` with the surfel convention."""

    connectivity: int = 26
    match: Literal["overlap", "iou"] = "overlap"
    dilation: int = 0
    min_volume: float = 0.0
    miss_distance: float | None = None

    def check(self, ndim: int) -> None:
        allowed = {3: (26, 6), 2: (8, 4)}.get(ndim)
        if allowed is None:
            raise ValueError(f"lesion metrics need 2-D or 3-D masks, got {ndim}-D")
        if self.connectivity not in allowed:
            raise ValueError(f"connectivity must be one of {allowed} in {ndim}-D")
        if self.match not in ("overlap", "iou"):
            raise ValueError(f"match must be 'overlap' or 'iou', got {self.match!r}")
        if self.dilation < 0 or self.min_volume < 0:
            raise ValueError("dilation and min_volume must be >= 0")
        if self.miss_distance is not None and not self.miss_distance >= 0:
            raise ValueError(f"miss_distance must be >= 0 mm, got {self.miss_distance}")


@dataclass
class LesionResult:
    """Per-lesion values and counts behind the scores (lesions of the kept reference)."""

    n_ref: int  # reference connected components (before merging by dilation)
    n_pred: int  # predicted connected components
    tp: int
    fn: int
    fp: int
    dice: list[float] = field(default_factory=list)  # per kept lesion
    hd95: list[float] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


def _pairs(a: np.ndarray, b: np.ndarray, n_b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse overlap table: ids ``(i, j)`` with ``count`` voxels where ``a == i and b == j``."""
    both = (a > 0) & (b > 0)
    key = a[both].astype(np.int64) * (n_b + 1) + b[both]
    keys, counts = np.unique(key, return_counts=True)
    return keys // (n_b + 1), keys % (n_b + 1), counts


def _ratio(num: int, den: int, same: bool, empty: str) -> float:
    if den:
        return num / den
    return math.nan if empty == "nan" else (1.0 if same else 0.0)


def lesion_scores(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | np.ndarray | None,
    rules: LesionRules | None = None,
    *,
    convention: Convention = "voxel",
    empty: Empty = "documented",
) -> LesionResult:
    """Lesion-wise scores of two masks in array order (``spacing`` in mm, same order).

    Returns a :class:`LesionResult` whose ``scores`` hold every name of :data:`LESION_METRICS`.
    ``convention`` chooses the per-lesion HD95 (BraTS 2023 uses DeepMind's surfels).
    """
    rules = rules or LesionRules()
    check_convention(convention)
    check_empty(empty)
    p, r = as_bool_pair(pred, ref)
    rules.check(p.ndim)
    sp = spacing_array(None if spacing is None else list(spacing), p.ndim)
    voxel_mm3 = float(np.prod(sp))
    miss = rules.miss_distance
    if miss is None:
        miss = float(np.linalg.norm(np.array(p.shape) * sp))
    full = rules.connectivity in (26, 8)
    structure = ndimage.generate_binary_structure(p.ndim, p.ndim if full else 1)
    ref_cc, n_ref = ndimage.label(r, structure)
    pred_cc, n_pred = ndimage.label(p, structure)
    if rules.dilation:
        grown = ndimage.binary_dilation(
            r, ndimage.generate_binary_structure(p.ndim, 2), iterations=rules.dilation
        )
        zone, n_les = ndimage.label(grown, structure)
        lesions = np.where(r, zone, 0)  # reference lesions merged by their dilations
    else:
        zone, n_les, lesions = ref_cc, n_ref, ref_cc
    les_size = np.bincount(lesions[r], minlength=n_les + 1)  # foreground voxels only
    pred_size = np.bincount(pred_cc[p], minlength=n_pred + 1)
    li, pj, inter = _pairs(lesions, pred_cc, n_pred)
    if rules.match == "iou":
        iou = inter / (les_size[li] + pred_size[pj] - inter)
        mi, mj = li[iou > 0.5], pj[iou > 0.5]
    else:
        mi, mj, _ = _pairs(zone, pred_cc, n_pred) if rules.dilation else (li, pj, inter)
    matched_pred = np.zeros(n_pred + 1, dtype=bool)
    matched_pred[mj] = True
    fp = int(n_pred - matched_pred[1:].sum())
    boxes_l, boxes_p = ndimage.find_objects(lesions), ndimage.find_objects(pred_cc)
    result = LesionResult(n_ref=n_ref, n_pred=n_pred, tp=0, fn=0, fp=fp)
    for lesion in range(1, n_les + 1):
        if les_size[lesion] * voxel_mm3 <= rules.min_volume:
            continue
        comps = mj[mi == lesion]
        if comps.size == 0:
            result.fn += 1
            result.dice.append(0.0)
            result.hd95.append(miss)
            continue
        result.tp += 1
        shared = inter[(li == lesion) & np.isin(pj, comps)].sum()
        result.dice.append(float(2 * shared / (les_size[lesion] + pred_size[comps].sum())))
        box = _union_box([boxes_l[lesion - 1], *(boxes_p[c - 1] for c in comps)])
        lm, pm = lesions[box] == lesion, np.isin(pred_cc[box], comps)
        result.hd95.append(hd_from(_distances(pm, lm, sp, convention), 95.0))
    n = len(result.dice) + fp
    tp, fn = result.tp, result.fn
    if n:
        mean_dice, mean_hd95 = sum(result.dice) / n, (sum(result.hd95) + fp * miss) / n
    else:  # no lesion to score and nothing predicted outside the small ones
        mean_dice, mean_hd95 = (math.nan, math.nan) if empty == "nan" else (1.0, 0.0)
    result.scores = {
        "lesion_dice": mean_dice,
        "lesion_hd95": mean_hd95,
        "lesion_precision": _ratio(tp, tp + fp, fn == 0, empty),
        "lesion_recall": _ratio(tp, tp + fn, fp == 0, empty),
        "lesion_f1": _ratio(2 * tp, 2 * tp + fp + fn, True, empty),
        "lesion_count_diff": float(abs(n_pred - n_ref)),
        "lesion_volume_diff": abs(int(pred_size.sum()) - int(les_size.sum())) * voxel_mm3 / 1000,
    }
    return result


def _union_box(boxes: list[tuple[slice, ...] | None]) -> tuple[slice, ...]:
    found = [b for b in boxes if b is not None]
    return tuple(
        slice(min(b[a].start for b in found), max(b[a].stop for b in found))
        for a in range(len(found[0]))
    )
