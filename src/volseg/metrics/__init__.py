"""Segmentation metrics on numpy masks: overlap scores and surface distances in mm.

All functions take integer or boolean masks of identical shape in **array order** (``(Z, Y, X)``
in 3D, ``(Y, X)`` in 2D; no channel axis) and, for distances, ``spacing`` in the same array order
and in mm: use :attr:`volseg.io.Volume.spacing_zyx`, not ``Volume.spacing`` (ITK x, y, z order).
A non-zero voxel is foreground. See ``docs/metrics.md`` for the definitions and conventions.

Modules (one concept each): :mod:`~volseg.metrics.overlap` (:func:`dice`, :func:`jaccard`,
:func:`precision`, :func:`recall`, :func:`specificity`, :func:`accuracy`),
:mod:`~volseg.metrics.surface` (surface voxels and distances: :func:`hausdorff_distance`,
:func:`average_surface_distance`, :func:`surface_dice`, under ``convention="voxel"`` or
``"surfel"``), :mod:`~volseg.metrics.surfels` (DeepMind's area-weighted surface elements),
:mod:`~volseg.metrics.lesions` (:func:`lesion_scores`: lesion-wise Dice, HD95, detection F1,
count and volume differences, BraTS 2023 and ISLES 2022), :mod:`~volseg.metrics.case`
(:func:`score_masks`, :func:`evaluate_case`: several metrics per label and region) and
:mod:`~volseg.metrics.summary` (:func:`aggregate`, :func:`summarize`, :func:`write_metrics_csv`);
argument checks in ``_masks``.

Empty masks (BraTS-like): both empty -> every overlap score 1.0 (a correct "nothing there"),
distances 0.0, surface Dice 1.0. Exactly one empty -> Dice, Jaccard and surface Dice 0.0,
distances ``empty_distance`` (``inf`` by default, so the case stays visible; the BraTS evaluation
writes about the image diagonal (373.13 mm for its 240x240x155 grid; BraTS 2023's script writes
374): pass ``empty_distance=374``).
Any ratio whose denominator is zero scores 1.0 when the prediction equals the reference and 0.0
otherwise (precision with an empty prediction and a non-empty reference is 0.0). ``empty="nan"``
(every function) makes those 0/0 cases and the both-empty distances NaN instead, as MONAI does.
``spacing`` and ``tolerance`` are checked in every case, also when a mask is empty.
"""

from __future__ import annotations

from volseg.metrics._masks import Convention, Empty
from volseg.metrics.case import METRICS, evaluate_case, score_masks
from volseg.metrics.lesions import LESION_METRICS, LesionResult, LesionRules, lesion_scores
from volseg.metrics.overlap import (
    OVERLAP_METRICS,
    accuracy,
    dice,
    jaccard,
    overlap_from_counts,
    precision,
    recall,
    specificity,
)
from volseg.metrics.summary import aggregate, summarize, write_metrics_csv
from volseg.metrics.surface import (
    DISTANCE_METRICS,
    Combine,
    Distances,
    average_surface_distance,
    hausdorff,
    hausdorff95,
    hausdorff_distance,
    surface_dice,
    surface_distances,
    surface_voxels,
)

__all__ = [
    "DISTANCE_METRICS",
    "LESION_METRICS",
    "METRICS",
    "OVERLAP_METRICS",
    "Combine",
    "Convention",
    "Distances",
    "Empty",
    "LesionResult",
    "LesionRules",
    "accuracy",
    "aggregate",
    "average_surface_distance",
    "dice",
    "evaluate_case",
    "hausdorff",
    "hausdorff95",
    "hausdorff_distance",
    "jaccard",
    "lesion_scores",
    "overlap_from_counts",
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
