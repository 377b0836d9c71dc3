"""Segmentation metrics on numpy masks: Dice, Hausdorff distance and its 95th percentile, in mm.

All functions take integer or boolean masks of identical shape in **array order** (``(Z, Y, X)``
in 3D, ``(Y, X)`` in 2D; no channel axis) and, for distances, ``spacing`` in the same array order
and in mm: use :attr:`volseg.io.Volume.spacing_zyx`, not ``Volume.spacing`` (ITK x, y, z order).
A non-zero voxel is foreground.

Surface distances (the V-Net paper reports "Hausdorff distance ... in mm"):

* the **surface** of a mask is the mask minus its binary erosion with the face-connected
  structuring element (``scipy.ndimage.generate_binary_structure(ndim, 1)``: 6 neighbours in 3D,
  4 in 2D), i.e. the foreground voxels with at least one face-neighbour in the background; voxels
  on the array border count as surface. This is the convention of MONAI and MedPy, so the numbers
  are comparable with theirs;
* the directed distances ``d(A->B)`` are, for every surface voxel of A, the Euclidean distance in
  mm (voxel centres, anisotropic ``spacing``) to the nearest surface voxel of B, read from
  ``scipy.ndimage.distance_transform_edt(~surface_B, sampling=spacing)``. The transform runs on
  the bounding box of ``A | B`` padded by one voxel, which gives exactly the same distances (all
  surface voxels lie inside it) at a fraction of the cost;
* ``HD = max(max d(A->B), max d(B->A))`` and
  ``HD95 = max(P95 d(A->B), P95 d(B->A))`` (``numpy.percentile``, linear interpolation; the
  MONAI convention, which takes the percentile of each direction and then the maximum).

Edge cases: both masks empty -> Dice 1.0 and HD/HD95 0.0 (a correct "nothing there"); exactly
one empty -> Dice 0.0 and HD/HD95 ``inf`` (no surface to measure to). The BraTS evaluation
replaces that ``inf`` by the image diagonal (373.13 mm for BraTS); we keep ``inf`` so the case is
visible, and :func:`summarize` leaves it out of mean and std but counts it.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = [
    "dice",
    "evaluate_case",
    "hausdorff",
    "hausdorff95",
    "summarize",
    "surface_distances",
    "write_metrics_csv",
]


def _as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    return p.astype(bool, copy=False), r.astype(bool, copy=False)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap ``2 |P & R| / (|P| + |R|)`` of two masks; 1.0 when both are empty."""
    p, r = _as_bool_pair(pred, ref)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, r).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: ``(d(pred->ref), d(ref->pred))``, one per surface voxel.

    Both masks must be non-empty (see the module docstring for the definitions). ``spacing`` is
    in array order; ``None`` means 1 mm on every axis.
    """
    p, r = _as_bool_pair(pred, ref)
    sp = _spacing(spacing, p.ndim)
    if not p.any() or not r.any():
        raise ValueError("surface distances need two non-empty masks")
    # Bounding box of the union, padded by one voxel (clipped to the array).
    coords = np.nonzero(p | r)
    box = tuple(
        slice(max(int(c.min()) - 1, 0), min(int(c.max()) + 2, n))
        for c, n in zip(coords, p.shape, strict=True)
    )
    sp_, sr = _surface(p[box]), _surface(r[box])
    dist_to_r = ndimage.distance_transform_edt(~sr, sampling=sp)
    dist_to_p = ndimage.distance_transform_edt(~sp_, sampling=sp)
    return np.asarray(dist_to_r[sp_], dtype=np.float64), np.asarray(dist_to_p[sr], dtype=np.float64)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise ValueError(f"spacing {sp} does not have {ndim} entries (array order)")
    if any(not s > 0 for s in sp):
        raise ValueError(f"spacing must be positive, got {sp}")
    return sp


def _hd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None, q: float) -> float:
    p, r = _as_bool_pair(pred, ref)
    p_any, r_any = bool(p.any()), bool(r.any())
    if not p_any and not r_any:
        return 0.0
    if not p_any or not r_any:
        return math.inf
    d_pr, d_rp = surface_distances(p, r, spacing)
    return float(max(np.percentile(d_pr, q), np.percentile(d_rp, q)))


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric Hausdorff distance between the mask surfaces, in mm.

    ``max(max d(pred->ref), max d(ref->pred))``; 0.0 if both masks are empty, ``inf`` if exactly
    one is. ``spacing`` is in array order (``Volume.spacing_zyx``).
    """
    return _hd(pred, ref, spacing, 100.0)


def hausdorff95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance (MONAI convention), in mm.

    ``max(P95 d(pred->ref), P95 d(ref->pred))``; 0.0 if both masks are empty, ``inf`` if exactly
    one is (BraTS would report the image diagonal). ``spacing`` is in array order.
    """
    return _hd(pred, ref, spacing, 95.0)


def evaluate_case(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None,
    labels: Sequence[int],
) -> dict[str, float]:
    """Dice and HD95 of each foreground label of two label maps: ``{"dice_1": .., "hd95_1": ..}``.

    ``pred`` and ``ref`` are integer label maps in array order; label ``l`` is scored on the
    masks ``pred == l`` and ``ref == l``. Label 0 (background) is skipped if listed.
    """
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    out: dict[str, float] = {}
    for label in labels:
        if label == 0:
            continue
        pm, rm = p == label, r == label
        out[f"dice_{label}"] = dice(pm, rm)
        out[f"hd95_{label}"] = hausdorff95(pm, rm, spacing)
    return out


def summarize(rows: Sequence[Mapping[str, object]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of every numeric metric over cases: ``{key: (mean, std)}``.

    Non-finite values (``inf`` from an empty mask, ``NaN``) are left out of mean and std (the
    population std, ``ddof=0``) but counted: for each key that has any, the summary also holds
    ``"<key>_nonfinite": (count, number of cases)``. A key with no finite value gets
    ``(nan, nan)``. Non-numeric entries (a ``"case"`` name) are ignored.
    """
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k, v in row.items() if k not in keys and _is_number(v))
    summary: dict[str, tuple[float, float]] = {}
    for key in keys:
        numbers = [row[key] for row in rows if _is_number(row.get(key))]
        values = np.array(numbers, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            summary[key] = (float(finite.mean()), float(finite.std()))
        else:
            summary[key] = (math.nan, math.nan)
        n_bad = int(values.size - finite.size)
        if n_bad:
            summary[f"{key}_nonfinite"] = (float(n_bad), float(values.size))
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
    """Write one row per case, then a ``mean`` and a ``std`` row, to a CSV file, atomically.

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

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            csv.writer(f).writerows(lines)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
