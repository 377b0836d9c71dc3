"""Paired comparison of two variants: bootstrap interval and Wilcoxon signed-rank test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedStats", "paired_stats"]


@dataclass(frozen=True)
class PairedStats:
    """Paired differences ``method - baseline``: mean, 95 % bootstrap interval, Wilcoxon p.

    ``p`` is ``None`` when the Wilcoxon test cannot be computed; ``note`` then says why.
    """

    n: int
    mean: float
    low: float
    high: float
    p: float | None
    note: str = ""


def paired_stats(
    method: Sequence[float], baseline: Sequence[float], resamples: int = 2000, seed: int = 0
) -> PairedStats:
    """Mean paired difference with a percentile bootstrap 95 % interval and a Wilcoxon p-value.

    The pairs are resampled with replacement ``resamples`` times from
    ``numpy.random.default_rng(seed)`` (so the interval is reproducible); the p-value is
    ``scipy.stats.wilcoxon(method - baseline)`` (two-sided), ``None`` when every difference is
    zero or there are fewer than two pairs.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(method, dtype=float) - np.asarray(baseline, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(
            f"need two equal-length non-empty sequences, got {len(method)}, {len(baseline)}"
        )
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p: float | None = None
    note = ""
    if d.size < 2:
        note = "Wilcoxon not computed: fewer than two pairs"
    elif np.all(d == 0):
        note = "Wilcoxon not computed: every difference is zero"
    else:
        p = float(wilcoxon(d).pvalue)
    return PairedStats(int(d.size), float(d.mean()), float(low), float(high), p, note)
