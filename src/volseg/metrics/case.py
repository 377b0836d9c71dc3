"""Several metrics of one case: per mask pair, and per label and region of two label maps.

:func:`score_masks` computes the counts, the surface distances and the lesion matching of a
pair once and derives every requested metric from them; :func:`evaluate_case` runs it per
foreground label and per region (:mod:`volseg.regions`). Validation, ``volseg evaluate`` and
cross-validation score with :func:`evaluate_case`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from volseg.metrics._masks import (
    Convention,
    Empty,
    check_convention,
    check_empty,
    check_tolerance,
    spacing_array,
)
from volseg.metrics.lesions import LESION_METRICS, LesionRules, lesion_scores
from volseg.metrics.names import label_keys
from volseg.metrics.overlap import OVERLAP_METRICS, _counts, overlap_from_counts
from volseg.metrics.surface import (
    DISTANCE_METRICS,
    Distances,
    _distances,
    _prepare,
    assd_from,
    empty_value,
    hd_from,
    surface_dice_from,
)
from volseg.regions import Region, get_regions, labels_to_regions

__all__ = ["METRICS", "evaluate_case", "score_masks", "with_every_label"]

METRICS = OVERLAP_METRICS + DISTANCE_METRICS + LESION_METRICS
"""Names :func:`evaluate_case` and ``volseg evaluate --metrics`` accept."""


def _check(metrics: Sequence[str], tolerance: float, convention: str, empty: str) -> None:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    check_tolerance(tolerance)
    check_convention(convention)
    check_empty(empty)


def score_masks(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None,
    metrics: Sequence[str] = ("dice", "hd95"),
    *,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
    eps: float = 0.0,
    convention: Convention = "voxel",
    empty: Empty = "documented",
    lesions: LesionRules | None = None,
) -> dict[str, float]:
    """Several metrics of one mask pair, sharing the counts and the surface distances.

    ``metrics`` are names from :data:`METRICS`; returns ``{name: value}`` in that order.
    ``eps`` smooths Dice, precision and recall (:func:`~volseg.metrics.overlap_from_counts`);
    ``convention`` picks voxel or surfel distances, ``empty`` volseg's documented values or NaN
    for 0/0 and empty pairs, ``lesions`` the rules of the ``lesion_*`` metrics. ``spacing`` and
    ``tolerance`` are checked whatever the masks hold.
    """
    _check(metrics, tolerance, convention, empty)
    p, r, sp, both = _prepare(pred, ref, spacing, convention, empty)
    out: dict[str, float] = {}
    counts = _counts(p, r) if any(m in OVERLAP_METRICS for m in metrics) else (0, 0, 0, 0)
    distances: Distances | None = None
    lesion: dict[str, float] | None = None
    for name in metrics:
        if name in OVERLAP_METRICS:
            out[name] = overlap_from_counts(name, *counts, eps=eps, empty=empty)
        elif name in LESION_METRICS:
            if lesion is None:
                found = lesion_scores(p, r, sp, lesions, convention=convention, empty=empty)
                lesion = found.scores
            out[name] = lesion[name]
        elif both is not None:
            out[name] = empty_value(name, both, empty_distance, empty)
        else:
            if distances is None:
                distances = _distances(p, r, sp, convention)
            if name == "hd":
                out[name] = hd_from(distances, None)
            elif name == "hd95":
                out[name] = hd_from(distances, 95.0)
            elif name == "assd":
                out[name] = assd_from(distances)
            else:
                out[name] = surface_dice_from(distances, tolerance)
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
    convention: Convention = "voxel",
    empty: Empty = "documented",
    lesions: LesionRules | None = None,
    names: Mapping[int, str] | None = None,
) -> dict[str, float]:
    """Metrics per foreground label and per region of two label maps: ``{"dice_1": .., ...}``.

    ``pred`` and ``ref`` are integer label maps in array order. Label ``l`` is scored on the
    masks ``pred == l`` and ``ref == l`` (label 0, background, is skipped if listed); region
    ``R`` (e.g. ``regions="brats"``: WT, TC, ET, see :mod:`volseg.regions`) on the masks of the
    voxels whose label lies in ``R.labels``, keyed ``"dice_WT"``. Keys are ``<metric>_<label>``,
    labels first, metrics in the order given; with ``names`` (label value -> name, e.g. from
    ``dataset.json``) a named label's key is its safe name, ``"dice_hippocampus_left"``
    (:func:`volseg.metrics.names.label_keys`). The other keyword arguments are those of
    :func:`score_masks`.
    """
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    _check(metrics, tolerance, convention, empty)
    spacing_array(spacing, p.ndim)  # also when no label is scored or every mask is empty
    out: dict[str, float] = {}
    keys = label_keys([int(v) for v in labels if v != 0], names)
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = [
        (key, p == label, r == label) for label, key in keys.items()
    ]
    if regions is not None:
        region_set = get_regions(regions)
        p_regions = labels_to_regions(p[None], region_set)  # (1, *S): an explicit channel axis
        r_regions = labels_to_regions(r[None], region_set)
        pairs += [(reg.name, pm, rm) for reg, pm, rm in zip(region_set, p_regions, r_regions)]
    for key, pm, rm in pairs:
        scores = score_masks(
            pm,
            rm,
            spacing,
            metrics,
            tolerance=tolerance,
            empty_distance=empty_distance,
            eps=eps,
            convention=convention,
            empty=empty,
            lesions=lesions,
        )
        out.update({f"{name}_{key}": value for name, value in scores.items()})
    return out


def with_every_label(
    rows: Sequence[Mapping[str, float | str]],
    labels: Sequence[int],
    keep: Sequence[str] = (),
    **options: object,
) -> list[dict[str, float | str]]:
    """Per-case rows with the same metric columns, in one order, for every label of ``labels``.

    Each case scores the labels its own maps hold; a label it lacks in both maps gets the
    values of an empty pair under the same ``options`` (the keyword arguments of
    :func:`evaluate_case`: metrics, names, empty-mask conventions...). Keys besides ``case``
    and the metric columns survive only if named in ``keep`` (e.g. volumes), after the metrics.
    """
    blank = np.zeros((1, 1, 1), np.uint8)
    template = evaluate_case(blank, blank, (1.0, 1.0, 1.0), sorted(labels) or [1], **options)  # type: ignore[arg-type]
    return [
        {
            "case": r["case"],
            **{k: r.get(k, v) for k, v in template.items()},
            **{k: r[k] for k in keep if k in r},
        }
        for r in rows
    ]
