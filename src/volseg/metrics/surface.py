"""Surface voxels and surface distances in mm: Hausdorff, HD95, ASSD and surface Dice.

Masks are integer or boolean arrays of one shape in array order; ``spacing`` is in the same
array order and in mm (``Volume.spacing_zyx``). Definitions (``docs/metrics.md`` has more):

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

Both masks empty -> distances 0.0, surface Dice 1.0. Exactly one empty -> surface Dice 0.0,
distances ``empty_distance`` (``inf`` by default, so the case stays visible; the BraTS evaluation
writes the image diagonal, 373.13 mm for its 240x240x155 grid: pass ``empty_distance=373.13``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from volseg.metrics._masks import as_bool_pair, spacing_array

__all__ = [
    "DISTANCE_METRICS",
    "Combine",
    "average_surface_distance",
    "hausdorff",
    "hausdorff95",
    "hausdorff_distance",
    "surface_dice",
    "surface_distances",
    "surface_voxels",
]

DISTANCE_METRICS = ("hd", "hd95", "assd", "surface_dice")

Combine = Literal["max", "pooled"]


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
    p, r = as_bool_pair(pred, ref)
    sp = spacing_array(spacing, p.ndim)
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
    p, r = as_bool_pair(pred, ref)
    empty = _empty_case(p, r)
    if empty is not None:
        spacing_array(spacing, p.ndim)
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
    p, r = as_bool_pair(pred, ref)
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
    p, r = as_bool_pair(pred, ref)
    empty = _empty_case(p, r)
    if empty is not None:
        return 1.0 if empty else 0.0
    d_pr, d_rp = surface_distances(p, r, spacing)
    inside = np.count_nonzero(d_pr <= tolerance) + np.count_nonzero(d_rp <= tolerance)
    return float(inside / (d_pr.size + d_rp.size))
