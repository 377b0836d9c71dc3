"""Argument checks shared by the metric modules: a pair of masks and a spacing in array order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_bool_pair", "spacing_array"]


def as_bool_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``ref`` as boolean arrays; ``ValueError`` if their shapes differ."""
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and ref {r.shape} differ in shape")
    return p.astype(bool, copy=False), r.astype(bool, copy=False)


def spacing_array(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    """``spacing`` (array order, mm) as ``ndim`` positive floats; ``None`` means 1 mm."""
    if spacing is None:
        return np.ones(ndim)
    sp = np.asarray([float(s) for s in spacing], dtype=np.float64)
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp)} does not have {ndim} entries (array order)")
    if not np.all(sp > 0):
        raise ValueError(f"spacing must be positive, got {tuple(sp)}")
    return sp
