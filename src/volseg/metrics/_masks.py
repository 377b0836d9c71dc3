"""Argument checks shared by the metric modules: masks, spacing, tolerance and the mode switches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "Convention",
    "Empty",
    "as_bool_pair",
    "check_convention",
    "check_empty",
    "check_tolerance",
    "spacing_array",
]

Convention = Literal["voxel", "surfel"]
"""``"voxel"``: surface voxels, each counted once (MONAI, MedPy); ``"surfel"``: surface elements
weighted by their area (DeepMind's surface-distance, MetricsReloaded)."""

Empty = Literal["documented", "nan"]
"""``"documented"``: a ratio 0/0 and a pair of empty masks score by volseg's rules (1.0 when the
prediction equals the reference, distances 0.0); ``"nan"``: they score NaN, as MONAI does, so
the aggregation leaves them out (and counts them)."""


def as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``ref`` as boolean arrays; ``ValueError`` if their shapes differ."""
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    return p.astype(bool, copy=False), r.astype(bool, copy=False)


def spacing_array(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    """``spacing`` (array order, mm) as ``ndim`` positive finite floats; ``None`` means 1 mm."""
    if spacing is None:
        return np.ones(ndim)
    sp = np.asarray([float(s) for s in spacing], dtype=np.float64)
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp)} does not have {ndim} entries (array order)")
    if not np.all((sp > 0) & np.isfinite(sp)):
        raise ValueError(f"spacing must be positive and finite, got {tuple(sp)}")
    return sp


def check_tolerance(tolerance: float) -> float:
    """The surface Dice tolerance in mm: finite and >= 0 (``inf`` would make every case 1.0)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 mm, got {tolerance}")
    return float(tolerance)


def check_convention(convention: str) -> None:
    if convention not in ("voxel", "surfel"):
        raise ValueError(f"convention must be 'voxel' or 'surfel', got {convention!r}")


def check_empty(empty: str) -> None:
    if empty not in ("documented", "nan"):
        raise ValueError(f"empty must be 'documented' or 'nan', got {empty!r}")
