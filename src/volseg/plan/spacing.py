"""Target spacing and the 2-D / 3-D choice, from a dataset's spacings and shapes.

The rule is nnU-Net's (its ``ExperimentPlanner.determine_fullres_target_spacing``), written
afresh: the target spacing is the median spacing per axis, except on data whose coarsest axis
is both **spaced** more than :data:`ANISOTROPY` times the finest other axis **and** holds fewer
than 1 / :data:`ANISOTROPY` of its voxels (thick slices, e.g. ACDC's 10 x 1.5 x 1.5 mm). There
the median would interpolate the many thin-slice cases down to the few thick ones' grid; the
coarse axis takes the 10th percentile of its spacings instead, but never finer than the other axes'
median spacings.

Everything is in array order ``(z, y, x)`` (``(y, x)`` in 2-D), as in the fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ANISOTROPY", "SpacingChoice", "shape_at", "target_spacing"]

ANISOTROPY = 3.0
"""nnU-Net's ``ANISO_THRESHOLD``: a spacing ratio (and a voxel-count ratio) beyond which an axis
is treated as a stack of thick slices."""


@dataclass(frozen=True)
class SpacingChoice:
    """The planned grid and why.

    Attributes:
        spacing: the target spacing, array order, mm.
        median_spacing: the median spacing per axis over cases.
        median_shape: the median shape per axis over cases (voxels at their own spacing).
        thick_axis: the axis treated as thick slices (``None``: the data is not anisotropic
            by both of the rules above).
        reason: the choice in words, for the recipe's comments.
    """

    spacing: tuple[float, ...]
    median_spacing: tuple[float, ...]
    median_shape: tuple[float, ...]
    thick_axis: int | None
    reason: str


def _fmt(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def target_spacing(
    spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]]
) -> SpacingChoice:
    """The target spacing of a dataset from each case's spacing and shape (array order).

    Example: spacings ``(10, 1.5, 1.5)`` for most cases and ``(5, 1.5, 1.5)`` for a tenth of
    them, shapes about ``(10, 200, 200)``: the median would be 10 mm, the plan takes the 10th
    percentile of the z spacings (``np.percentile(..., 10)``, linear interpolation).
    """
    s = np.asarray(spacings, dtype=float)
    n = np.asarray(shapes, dtype=float)
    if s.ndim != 2 or s.shape != n.shape or len(s) == 0:
        raise ValueError("target_spacing: needs one spacing and one shape per case, of one length")
    median = np.median(s, axis=0)
    median_shape = np.median(n, axis=0)
    target = median.copy()
    thick: int | None = None
    reason = f"median spacing {_fmt(median)} mm"
    if len(median) >= 2:
        worst = int(np.argmax(median))
        others = [i for i in range(len(median)) if i != worst]
        aniso_spacing = median[worst] > ANISOTROPY * max(median[i] for i in others)
        aniso_voxels = median_shape[worst] * ANISOTROPY < min(median_shape[i] for i in others)
        if aniso_spacing and aniso_voxels:
            thick = worst
            p10 = float(np.percentile(s[:, worst], 10))
            coarsest_other = max(median[i] for i in others)
            target[worst] = max(p10, coarsest_other)
            reason = (
                f"median spacing {_fmt(median)} mm, but axis {'zyx'[-len(median) :][worst]} is "
                f"thick slices (spacing > {ANISOTROPY:g}x and voxels < 1/{ANISOTROPY:g} of the "
                f"others): its 10th percentile {p10:.4g} mm instead of the median, as nnU-Net does"
            )
    return SpacingChoice(
        tuple(round(float(v), 6) for v in target),
        tuple(float(v) for v in median),
        tuple(float(v) for v in median_shape),
        thick,
        reason,
    )


def shape_at(
    median_shape: Sequence[float], median_spacing: Sequence[float], spacing: Sequence[float]
) -> tuple[float, ...]:
    """The median shape resampled to ``spacing`` (voxels, not rounded)."""
    return tuple(n * s / t for n, s, t in zip(median_shape, median_spacing, spacing, strict=True))
