"""Several metrics of one case: per mask pair, and per label and region of two label maps.

:func:`score_masks` computes the counts and the surface distances of a pair once and derives
every requested metric from them; :func:`evaluate_case` runs it per foreground label and per
region (:mod:`volseg.regions`). Validation, ``volseg evaluate`` and cross-validation score
with :func:`evaluate_case`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from volseg.metrics._masks import as_bool_pair
from volseg.metrics.overlap import OVERLAP_METRICS, _counts, overlap_from_counts
from volseg.metrics.surface import DISTANCE_METRICS, _empty_case, _hd_from, surface_distances
from volseg.regions import Region, get_regions, labels_to_regions

__all__ = ["METRICS", "evaluate_case", "score_masks"]

METRICS = OVERLAP_METRICS + DISTANCE_METRICS
"""Names :func:`evaluate_case` and ``volseg evaluate --metrics`` accept."""


def score_masks(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None,
    metrics: Sequence[str] = ("dice", "hd95"),
    *,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
    eps: float = 0.0,
) -> dict[str, float]:
    """Several metrics of one mask pair, sharing the counts and the surface distances.

    ``metrics`` are names from :data:`METRICS`; returns ``{name: value}`` in that order.
    ``eps`` smooths Dice, precision and recall (:func:`~volseg.metrics.overlap_from_counts`).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    p, r = as_bool_pair(pred, ref)
    out: dict[str, float] = {}
    counts = _counts(p, r) if any(m in OVERLAP_METRICS for m in metrics) else (0, 0, 0, 0)
    distances: tuple[np.ndarray, np.ndarray] | None = None
    empty = _empty_case(p, r)
    for name in metrics:
        if name in OVERLAP_METRICS:
            out[name] = overlap_from_counts(name, *counts, eps=eps)
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
    eps: float = 0.0,
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
            pm, rm, spacing, metrics, tolerance=tolerance, empty_distance=empty_distance, eps=eps
        )
        out.update({f"{name}_{key}": value for name, value in scores.items()})
    return out
