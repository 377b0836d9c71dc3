"""The cases (and classes) of a dataset worth a look before training, by stated rules.

1. **orientation**: a case whose orientation code differs from the most common one (ties: the
   alphabetically first of the most common).
2. **spacing** (3 cases or more; per axis): the robust z-score of the log spacing,
   ``|log s - median| / (1.4826 MAD)``, exceeds :data:`Z_LIMIT` (3) **and** the spacing differs
   from the median by more than :data:`SPACING_RATIO` (a factor 1.2), so a dataset of equal
   spacings (MAD 0) does not flag a rounding difference.
3. **intensity** (3 cases or more; per channel): a case's 0.5th or 99.5th foreground percentile
   lies more than :data:`Z_LIMIT` robust standard deviations from the median over cases, the
   robust standard deviation (1.4826 MAD) taken at least :data:`RANGE_SHARE` (10 %) of the
   median intensity range (median 99.5th minus median 0.5th percentile): a shift of more than
   30 % of the typical range.
4. **label**: a class present in fewer than half of the labeled cases (``case_id`` ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from volseg.fingerprint.schema import CaseFingerprint, Outlier, Summary

__all__ = ["MIN_CASES", "RANGE_SHARE", "SPACING_RATIO", "Z_LIMIT", "find_outliers", "robust_z"]

Z_LIMIT = 3.0
SPACING_RATIO = 1.2
RANGE_SHARE = 0.1
MIN_CASES = 3
"""The spacing and intensity rules need this many cases (a median of two is their mean)."""
_MAD_TO_STD = 1.4826  # MAD x this = the standard deviation of a normal distribution


def robust_z(values: Sequence[float] | np.ndarray, floor: float = 0.0) -> np.ndarray:
    """``|v - median| / max(1.4826 MAD, floor)``; where that scale is 0, ``inf`` off the median."""
    array = np.asarray(values, dtype=np.float64)
    median = float(np.median(array))
    scale = max(_MAD_TO_STD * float(np.median(np.abs(array - median))), floor)
    distance = np.abs(array - median)
    if scale > 0:
        return distance / scale
    return np.where(distance > 0, math.inf, 0.0)


def _axis_names(dims: int) -> str:
    return "zyx"[3 - dims :]


def _spacing(cases: Sequence[CaseFingerprint]) -> list[Outlier]:
    found: list[Outlier] = []
    dims = len(cases[0].spacing)
    for axis, name in enumerate(_axis_names(dims)):
        spacing = [c.spacing[axis] for c in cases]
        logs = np.log(spacing)
        z = robust_z(logs)
        median = math.exp(float(np.median(logs)))
        for case, s, zi in zip(cases, spacing, z, strict=True):
            ratio = max(s / median, median / s)
            if zi > Z_LIMIT and ratio > SPACING_RATIO:
                found.append(
                    Outlier(
                        case.case_id,
                        "spacing",
                        f"{name} spacing {s:.4g} mm vs median {median:.4g} mm (factor "
                        f"{ratio:.2f}; robust z of log spacing {_z(zi)} > {Z_LIMIT:g})",
                    )
                )
    return found


def _z(value: float) -> str:
    return "inf (MAD 0)" if math.isinf(value) else f"{value:.1f}"


def _intensity(cases: Sequence[CaseFingerprint]) -> list[Outlier]:
    found: list[Outlier] = []
    for i, name in enumerate(c.name for c in cases[0].channels):
        region = "foreground" if any(c.foreground_voxels is not None for c in cases) else "image"
        measured = [
            c for c in cases if c.channels[i].intensity.voxels and c.channels[i].region == region
        ]
        if len(measured) < MIN_CASES:
            continue
        low = [float(c.channels[i].intensity.p0_5) for c in measured]  # type: ignore[arg-type]
        high = [float(c.channels[i].intensity.p99_5) for c in measured]  # type: ignore[arg-type]
        floor = RANGE_SHARE * (float(np.median(high)) - float(np.median(low)))
        for what, values in (("0.5th", low), ("99.5th", high)):
            median = float(np.median(values))
            for case, v, zi in zip(measured, values, robust_z(values, floor), strict=True):
                if zi > Z_LIMIT:
                    found.append(
                        Outlier(
                            case.case_id,
                            "intensity",
                            f"{name}: {region} {what} percentile {v:.4g} vs median "
                            f"{median:.4g} (robust z {_z(zi)} > {Z_LIMIT:g})",
                        )
                    )
    return found


def find_outliers(cases: Sequence[CaseFingerprint], summary: Summary) -> tuple[Outlier, ...]:
    """Every finding of the four rules, case findings in case order, then class findings."""
    found: list[Outlier] = []
    if len(cases) >= 2 and len(summary.orientations) > 1:
        usual = next(iter(summary.orientations))  # most common first, ties alphabetical
        found += [
            Outlier(
                c.case_id,
                "orientation",
                f"orientation {c.orientation}; {summary.orientations[usual]} of {len(cases)} "
                f"cases are {usual}",
            )
            for c in cases
            if c.orientation != usual
        ]
    if len(cases) >= MIN_CASES:
        found += _spacing(cases)
        found += _intensity(cases)
    order = {c.case_id: i for i, c in enumerate(cases)}
    found.sort(key=lambda o: order.get(o.case_id or "", len(cases)))
    labeled = sum(1 for c in cases if c.foreground_fraction is not None)
    for label in summary.labels:
        if label.present_fraction < 0.5:
            found.append(
                Outlier(
                    None,
                    "label",
                    f"label {label.label} is present in {label.present_in} of {labeled} labeled "
                    "case(s) (fewer than half)",
                )
            )
    return tuple(found)
