"""Segmentation metrics on numpy masks: overlap scores and surface distances in mm.

All functions take integer or boolean masks of identical shape in **array order** (``(Z, Y, X)``
in 3D, ``(Y, X)`` in 2D; no channel axis) and, for distances, ``spacing`` in the same array order
and in mm: use :attr:`volseg.io.Volume.spacing_zyx`, not ``Volume.spacing`` (ITK x, y, z order).
A non-zero voxel is foreground. See ``docs/metrics.md`` for the definitions and conventions.

Overlap (from the counts TP, FP, FN, TN): :func:`dice`, :func:`jaccard`, :func:`precision`,
:func:`recall` (sensitivity), :func:`specificity`, :func:`accuracy`.

Surface distances (:func:`hausdorff_distance`, :func:`average_surface_distance`,
:func:`surface_dice`):

* the **surface** of a mask is its foreground voxels with at least one face-neighbour in the
  background (the mask minus its erosion by the face-connected structuring element; voxels on
  the array border count as surface). This is the MONAI and MedPy convention;
* ``d(A->B)`` holds, for every surface voxel of A, the exact Euclidean distance in mm (voxel
  centres, anisotropic ``spacing``) to the nearest surface voxel of B. It is computed on the
  surface voxels only: their coordinates (found from the foreground's flat indices, no full-volume
  float copy) go into a k-d tree (``scipy.spatial.cKDTree``), an exact nearest-neighbour search.
  The tests check it against ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)`` on
  the union's bounding box and against brute force;
* ``HD = max(max d(A->B), max d(B->A))``; ``HD95`` (``percentile=95``) is by default
  ``max(P95 d(A->B), P95 d(B->A))`` with ``numpy.percentile``'s linear interpolation (MONAI's
  convention); ``combine="pooled"`` takes ``P95`` of both sets pooled instead (MedPy's ``hd95``);
* ``ASSD = (sum d(A->B) + sum d(B->A)) / (|dA| + |dB|)``, the mean over both surfaces (MONAI's
  symmetric average; MedPy's ``assd`` averages the two directed means instead);
* surface Dice at tolerance ``tau`` mm: the fraction of surface voxels of both masks that lie
  within ``tau`` of the other surface (voxels counted, not surfel areas).

Empty masks (BraTS-like): both empty -> every overlap score 1.0 (a correct "nothing there"),
distances 0.0, surface Dice 1.0. Exactly one empty -> Dice, Jaccard and surface Dice 0.0,
distances ``empty_distance`` (``inf`` by default, so the case stays visible; the BraTS evaluation
writes the image diagonal, 373.13 mm for its 240x240x155 grid: pass ``empty_distance=373.13``).
Any ratio whose denominator is zero scores 1.0 when the prediction equals the reference and 0.0
otherwise (precision with an empty prediction and a non-empty reference is 0.0).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from volseg._atomic import atomic_path
from volseg.regions import Region, get_regions, labels_to_regions

__all__ = [
    "DISTANCE_METRICS",
    "METRICS",
    "accuracy",
    "aggregate",
    "average_surface_distance",
    "dice",
    "evaluate_case",
    "hausdorff",
    "hausdorff95",
    "hausdorff_distance",
    "jaccard",
    "precision",
    "recall",
    "score_masks",
    "specificity",
    "summarize",
    "surface_dice",
    "surface_distances",
    "surface_voxels",
    "write_metrics_csv",
]

OVERLAP_METRICS = ("dice", "jaccard", "precision", "recall", "specificity", "accuracy")
DISTANCE_METRICS = ("hd", "hd95", "assd", "surface_dice")
METRICS = OVERLAP_METRICS + DISTANCE_METRICS
"""Names :func:`evaluate_case` and ``volseg evaluate --metrics`` accept."""

Combine = Literal["max", "pooled"]


def _as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    return p.astype(bool, copy=False), r.astype(bool, copy=False)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    sp = np.asarray([float(s) for s in spacing], dtype=np.float64)
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp)} does not have {ndim} entries (array order)")
    if not np.all(sp > 0):
        raise ValueError(f"spacing must be positive, got {tuple(sp)}")
    return sp


# ---------------------------------------------------------------------------------------------
# Overlap


def _counts(p: np.ndarray, r: np.ndarray) -> tuple[int, int, int, int]:
    """``(TP, FP, FN, TN)`` of two boolean masks."""
    tp = int(np.count_nonzero(p & r))
    n_p, n_r = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    return tp, n_p - tp, n_r - tp, p.size - n_p - n_r + tp


def _ratio(num: int, den: int, same: bool) -> float:
    """``num / den``; a zero denominator scores 1.0 if pred equals ref (``same``), else 0.0."""
    if den == 0:
        return 1.0 if same else 0.0
    return num / den


def _overlap(name: str, tp: int, fp: int, fn: int, tn: int) -> float:
    same = fp == 0 and fn == 0
    if name == "dice":
        return _ratio(2 * tp, 2 * tp + fp + fn, same)
    if name == "jaccard":
        return _ratio(tp, tp + fp + fn, same)
    if name == "precision":
        return _ratio(tp, tp + fp, same)
    if name == "recall":
        return _ratio(tp, tp + fn, same)
    if name == "specificity":
        return _ratio(tn, tn + fp, same)
    if name == "accuracy":
        return _ratio(tp + tn, tp + fp + fn + tn, same)
    raise ValueError(f"unknown overlap metric {name!r}; known: {', '.join(OVERLAP_METRICS)}")


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap ``2 TP / (2 TP + FP + FN) = 2 |P & R| / (|P| + |R|)``; 1.0 if both empty."""
    return _overlap("dice", *_counts(*_as_bool_pair(pred, ref)))


def jaccard(pred: np.ndarray, ref: np.ndarray) -> float:
    """Jaccard index (IoU) ``TP / (TP + FP + FN)``; 1.0 if both empty. Equals ``D / (2 - D)``."""
    return _overlap("jaccard", *_counts(*_as_bool_pair(pred, ref)))


def precision(pred: np.ndarray, ref: np.ndarray) -> float:
    """Precision ``TP / (TP + FP)``; empty prediction: 1.0 if the reference is empty, else 0.0."""
    return _overlap("precision", *_counts(*_as_bool_pair(pred, ref)))


def recall(pred: np.ndarray, ref: np.ndarray) -> float:
    """Recall (sensitivity) ``TP / (TP + FN)``; empty reference: 1.0 if pred empty, else 0.0."""
    return _overlap("recall", *_counts(*_as_bool_pair(pred, ref)))


def specificity(pred: np.ndarray, ref: np.ndarray) -> float:
    """Specificity ``TN / (TN + FP)``; a reference with no background: 1.0 if pred equals it."""
    return _overlap("specificity", *_counts(*_as_bool_pair(pred, ref)))


def accuracy(pred: np.ndarray, ref: np.ndarray) -> float:
    """Accuracy ``(TP + TN) / N``, the fraction of voxels labelled alike (Adeniji Eq. 7)."""
    return _overlap("accuracy", *_counts(*_as_bool_pair(pred, ref)))


# ---------------------------------------------------------------------------------------------
# Surfaces and distances


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Integer coordinates ``(n, ndim)`` of the surface voxels of a mask, in raster order.

    A foreground voxel is on the surface if a face-neighbour is background or lies outside the
    array. Only the foreground's sorted flat indices are visited (one pass over the mask finds
    them), so the cost follows the number of foreground voxels, not the array size.
    """
    m = np.ascontiguousarray(mask, dtype=bool)
    flat = m.reshape(-1)
    idx = np.flatnonzero(flat)
    if m.ndim == 0 or idx.size == 0:
        return np.zeros((0, m.ndim), dtype=np.int64)
    # last axis: neighbours in the sorted index list are neighbours in the row
    step = np.diff(idx) == 1
    interior = np.concatenate([[False], step]) & np.concatenate([step, [False]])
    stride = m.shape[-1]
    for n in reversed(m.shape[:-1]):
        keep = np.flatnonzero(interior)
        j = idx[keep]
        interior[keep] = flat.take(j - stride, mode="clip") & flat.take(j + stride, mode="clip")
        stride *= n
    # voxels on the array border are surface (the checks above may wrap around there)
    found = [idx[~interior]]
    for axis, n in enumerate(m.shape):
        for pos in {0, n - 1}:
            if m.ndim == 1:
                found.append(np.array([pos] if m[pos] else [], dtype=np.int64))
                continue
            face = list(np.nonzero(np.take(m, pos, axis=axis)))
            face.insert(axis, np.full(face[0].size, pos))
            found.append(np.ravel_multi_index(tuple(face), m.shape))
    surface = np.unique(np.concatenate(found))
    return np.stack(np.unravel_index(surface, m.shape), axis=1)


def _directed(from_pts: np.ndarray, to_pts: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Exact distance in mm from each voxel of ``from_pts`` to the nearest of ``to_pts``."""
    tree = cKDTree(to_pts * sp, leafsize=32, balanced_tree=False, compact_nodes=False)
    distances, _ = tree.query(from_pts * sp, k=1)
    return np.asarray(distances, dtype=np.float64)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: ``(d(pred->ref), d(ref->pred))``, one per surface voxel.

    Both masks must be non-empty (see the module docstring for the definitions). ``spacing`` is
    in array order; ``None`` means 1 mm on every axis.
    """
    p, r = _as_bool_pair(pred, ref)
    sp = _spacing(spacing, p.ndim)
    sp_, sr = surface_voxels(p), surface_voxels(r)
    if not len(sp_) or not len(sr):
        raise ValueError("surface distances need two non-empty masks")
    return _directed(sp_, sr, sp), _directed(sr, sp_, sp)


def _check_combine(combine: str) -> None:
    if combine not in ("max", "pooled"):
        raise ValueError(f"combine must be 'max' (MONAI) or 'pooled' (MedPy), got {combine!r}")


def _hd_from(d_pr: np.ndarray, d_rp: np.ndarray, percentile: float | None, combine: str) -> float:
    if percentile is None:
        return float(max(d_pr.max(), d_rp.max()))
    if combine == "pooled":
        return float(np.percentile(np.concatenate([d_pr, d_rp]), percentile))
    return float(max(np.percentile(d_pr, percentile), np.percentile(d_rp, percentile)))


def _empty_case(p: np.ndarray, r: np.ndarray) -> bool | None:
    """None if both masks have foreground; True if both are empty; False if exactly one is."""
    p_any, r_any = bool(p.any()), bool(r.any())
    if p_any and r_any:
        return None
    return not p_any and not r_any


def hausdorff_distance(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    percentile: float | None = None,
    *,
    combine: Combine = "max",
    empty_distance: float = math.inf,
) -> float:
    """Symmetric Hausdorff distance between the mask surfaces in mm, or a percentile of it.

    ``percentile=None``: ``max(max d(pred->ref), max d(ref->pred))``. ``percentile=95`` (HD95):
    ``max(P95 d(pred->ref), P95 d(ref->pred))`` with ``combine="max"`` (MONAI's
    ``compute_hausdorff_distance(percentile=95)``), or ``P95`` of both sets pooled with
    ``combine="pooled"`` (MedPy's ``hd95``). Both empty: 0.0; exactly one empty:
    ``empty_distance`` (``inf``; BraTS uses its image diagonal, 373.13 mm).

    Args:
        pred, ref: masks of one shape, array order.
        spacing: voxel size in mm in array order (``Volume.spacing_zyx``); None means 1 mm.
        percentile: in ``[0, 100]`` or None for the maximum.
    """
    _check_combine(combine)
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    p, r = _as_bool_pair(pred, ref)
    empty = _empty_case(p, r)
    if empty is not None:
        _spacing(spacing, p.ndim)
        return 0.0 if empty else float(empty_distance)
    d_pr, d_rp = surface_distances(p, r, spacing)
    return _hd_from(d_pr, d_rp, percentile, combine)


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Hausdorff distance in mm: ``hausdorff_distance(pred, ref, spacing)``."""
    return hausdorff_distance(pred, ref, spacing)


def hausdorff95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """HD95 in mm, MONAI's convention: ``hausdorff_distance(pred, ref, spacing, 95)``."""
    return hausdorff_distance(pred, ref, spacing, 95.0)


def average_surface_distance(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    *,
    empty_distance: float = math.inf,
) -> float:
    """Average symmetric surface distance (ASSD) in mm: the mean of both directed sets pooled.

    ``(sum d(pred->ref) + sum d(ref->pred)) / (|d pred| + |d ref|)``. Both empty: 0.0; exactly one
    empty: ``empty_distance``.
    """
    p, r = _as_bool_pair(pred, ref)
    empty = _empty_case(p, r)
    if empty is not None:
        return 0.0 if empty else float(empty_distance)
    d_pr, d_rp = surface_distances(p, r, spacing)
    return float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))


def surface_dice(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None, tolerance: float
) -> float:
    """Surface Dice at ``tolerance`` mm: the share of both surfaces within tolerance of the other.

    ``(#{d(pred->ref) <= tau} + #{d(ref->pred) <= tau}) / (|d pred| + |d ref|)`` in ``[0, 1]``,
    counting surface voxels (Nikolov et al. 2021 weight by surfel area instead). Both empty: 1.0;
    exactly one empty: 0.0.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 mm, got {tolerance}")
    p, r = _as_bool_pair(pred, ref)
    empty = _empty_case(p, r)
    if empty is not None:
        return 1.0 if empty else 0.0
    d_pr, d_rp = surface_distances(p, r, spacing)
    inside = np.count_nonzero(d_pr <= tolerance) + np.count_nonzero(d_rp <= tolerance)
    return float(inside / (d_pr.size + d_rp.size))


# ---------------------------------------------------------------------------------------------
# Per case: several metrics on one pair, per label and per region


def score_masks(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None,
    metrics: Sequence[str] = ("dice", "hd95"),
    *,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
) -> dict[str, float]:
    """Several metrics of one mask pair, sharing the counts and the surface distances.

    ``metrics`` are names from :data:`METRICS`; returns ``{name: value}`` in that order.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    p, r = _as_bool_pair(pred, ref)
    out: dict[str, float] = {}
    counts = _counts(p, r) if any(m in OVERLAP_METRICS for m in metrics) else (0, 0, 0, 0)
    distances: tuple[np.ndarray, np.ndarray] | None = None
    empty = _empty_case(p, r)
    for name in metrics:
        if name in OVERLAP_METRICS:
            out[name] = _overlap(name, *counts)
            continue
        if empty is not None:
            if name == "surface_dice":
                out[name] = 1.0 if empty else 0.0
            else:
                out[name] = 0.0 if empty else float(empty_distance)
            continue
        if distances is None:
            distances = surface_distances(p, r, spacing)
        d_pr, d_rp = distances
        if name == "hd":
            out[name] = _hd_from(d_pr, d_rp, None, "max")
        elif name == "hd95":
            out[name] = _hd_from(d_pr, d_rp, 95.0, "max")
        elif name == "assd":
            out[name] = float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
        else:
            inside = np.count_nonzero(d_pr <= tolerance) + np.count_nonzero(d_rp <= tolerance)
            out[name] = float(inside / (d_pr.size + d_rp.size))
    return out


def evaluate_case(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None,
    labels: Sequence[int],
    *,
    metrics: Sequence[str] = ("dice", "hd95"),
    regions: str | Sequence[Region] | None = None,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
) -> dict[str, float]:
    """Metrics per foreground label and per region of two label maps: ``{"dice_1": .., ...}``.

    ``pred`` and ``ref`` are integer label maps in array order. Label ``l`` is scored on the
    masks ``pred == l`` and ``ref == l`` (label 0, background, is skipped if listed); region
    ``R`` (e.g. ``regions="brats"``: WT, TC, ET, see :mod:`volseg.regions`) on the masks of the
    voxels whose label lies in ``R.labels``, keyed ``"dice_WT"``. Keys are ``<metric>_<label>``,
    labels first, metrics in the order given.
    """
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    out: dict[str, float] = {}
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = [
        (str(label), p == label, r == label) for label in labels if label != 0
    ]
    if regions is not None:
        region_set = get_regions(regions)
        p_regions = labels_to_regions(p[None], region_set)  # (1, *S): an explicit channel axis
        r_regions = labels_to_regions(r[None], region_set)
        pairs += [(reg.name, pm, rm) for reg, pm, rm in zip(region_set, p_regions, r_regions)]
    for key, pm, rm in pairs:
        scores = score_masks(
            pm, rm, spacing, metrics, tolerance=tolerance, empty_distance=empty_distance
        )
        out.update({f"{name}_{key}": value for name, value in scores.items()})
    return out


# ---------------------------------------------------------------------------------------------
# Over cases


def aggregate(rows: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Mean, std (population), median, count and non-finite count of every numeric metric.

    ``{key: {"mean", "std", "median", "n", "nonfinite"}}``; non-finite values (``inf`` from an
    empty mask, ``NaN``) are left out of the statistics but counted in ``nonfinite``; a key with
    no finite value gets NaN statistics. Non-numeric entries (a ``"case"`` name) are ignored.
    """
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k, v in row.items() if k not in keys and _is_number(v))
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([row[key] for row in rows if _is_number(row.get(key))], dtype=np.float64)
        finite = values[np.isfinite(values)]
        stats = (
            (float(finite.mean()), float(finite.std()), float(np.median(finite)))
            if finite.size
            else (math.nan, math.nan, math.nan)
        )
        out[key] = {
            "mean": stats[0],
            "std": stats[1],
            "median": stats[2],
            "n": float(finite.size),
            "nonfinite": float(values.size - finite.size),
        }
    return out


def summarize(rows: Sequence[Mapping[str, object]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of every numeric metric over cases: ``{key: (mean, std)}``.

    Non-finite values (``inf`` from an empty mask, ``NaN``) are left out of mean and std (the
    population std, ``ddof=0``) but counted: for each key that has any, the summary also holds
    ``"<key>_nonfinite": (count, number of cases)``. A key with no finite value gets
    ``(nan, nan)``. Non-numeric entries (a ``"case"`` name) are ignored. :func:`aggregate` adds
    the median.
    """
    summary: dict[str, tuple[float, float]] = {}
    for key, stats in aggregate(rows).items():
        summary[key] = (stats["mean"], stats["std"])
        if stats["nonfinite"]:
            summary[f"{key}_nonfinite"] = (stats["nonfinite"], stats["n"] + stats["nonfinite"])
    return summary


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_metrics_csv(
    rows: Sequence[Mapping[str, object]],
    summary: Mapping[str, tuple[float, float]],
    path: str | os.PathLike[str],
) -> Path:
    """Write one row per case, then ``mean``, ``std`` and ``median`` rows to a CSV file, atomically.

    The first column is ``case`` (the row's ``"case"`` entry, else its index); the metric columns
    are the rows' keys in order of first appearance. The file is written to a temporary file in
    the same folder and moved into place with ``os.replace``, so readers never see half a file.
    """
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k != "case" and k not in columns)
    lines: list[list[str]] = [["case", *columns]]
    for i, row in enumerate(rows):
        lines.append([_fmt(row.get("case", i)), *(_fmt(row.get(c, "")) for c in columns)])
    for name, idx in (("mean", 0), ("std", 1)):
        lines.append([name, *(_fmt(summary[c][idx]) if c in summary else "" for c in columns)])
    medians = aggregate(rows)
    lines.append(["median", *(_fmt(medians[c]["median"]) if c in medians else "" for c in columns)])

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(lines)
    return path
