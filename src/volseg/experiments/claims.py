"""Test a paper's claim on an experiment's results: pair, compare, and say what was measured.

A :class:`volseg.experiments.base.Claim` says "``method`` beats ``baseline`` on ``measure``".
:func:`evaluate_claim` pairs the two variants' values (per held-out case, per run or per seed, see
``Claim``), computes :func:`volseg.experiments.stats.paired_stats` of ``method - baseline``
and gives one of three verdicts, by a rule fixed before any result was seen:

* ``supported`` — the 95 % bootstrap interval excludes 0 on the side the paper predicts and
  the Wilcoxon signed-rank p is below 0.05;
* ``contradicted`` — the same, on the other side;
* ``not shown`` — anything else (the interval holds 0, or p >= 0.05, or p cannot be
  computed). With 3 runs a signed-rank test cannot reach p < 0.05 (its smallest two-sided p
  is 0.25), so per-run claims over 3 seeds can only be ``not shown``: that is what 3 seeds
  can tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from volseg.experiments.base import Claim
from volseg.experiments.stats import PairedStats, paired_stats

__all__ = ["ClaimResult", "claim_values", "evaluate_claim"]

ALPHA = 0.05


@dataclass(frozen=True)
class ClaimResult:
    """A claim, the statistics of its paired differences, the verdict and what was paired."""

    claim: Claim
    stats: PairedStats
    verdict: str
    unit: str  # what one pair is: "(seed, case)", "run", ...
    method_mean: float
    baseline_mean: float


def _run_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["seed"], row.get("fold", ""))


def claim_values(
    claim: Claim,
    variant: str,
    rows: Sequence[Mapping[str, Any]],
    curves: Sequence[Mapping[str, Any]],
) -> tuple[dict[tuple[Any, ...], float], str]:
    """``{pair key: value}`` of ``variant`` on the claim's measure, and what a key is.

    ``rows``: ``results.csv`` rows (one per held-out case); ``curves``: ``curves.csv`` rows
    (one per run and epoch).
    """
    measure = claim.measure
    if measure in ("dice", "hd95"):
        folds = any("fold" in r and r["fold"] != "" for r in rows)
        key = ("seed", "fold", "case") if folds else ("seed", "case")
        values = {
            tuple(r[k] for k in key): float(r[measure]) for r in rows if r["variant"] == variant
        }
        return values, f"({', '.join(key)})"
    if measure == "fold_std":
        by_seed: dict[tuple[Any, ...], dict[Any, list[float]]] = {}
        for r in rows:
            if r["variant"] == variant:
                by_seed.setdefault((r["seed"],), {}).setdefault(r["fold"], []).append(
                    float(r["dice"])
                )
        return {
            seed: float(np.std([np.mean(v) for v in folds.values()]))
            for seed, folds in by_seed.items()
        }, "(seed): std over folds of the fold mean Dice"
    runs: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in curves:
        if r["variant"] == variant:
            runs.setdefault(_run_key(r), []).append(r)
    for epochs in runs.values():
        epochs.sort(key=lambda r: int(r["epoch"]))
    if measure == "gap":
        return {
            k: float(e[-1]["train_dice"]) - float(e[-1]["val_dice"]) for k, e in runs.items()
        }, "run (seed, fold): last-epoch train_dice - val_dice"
    kind, _, column = measure.partition(":")
    if kind not in ("last", "mean") or not column:
        raise ValueError(f"claim {claim.text!r}: unknown measure {measure!r}")
    if kind == "last":
        return {k: float(e[-1][column]) for k, e in runs.items()}, f"run: last-epoch {column}"
    return {
        k: float(np.nanmean([float(r[column]) for r in e])) for k, e in runs.items()
    }, f"run: mean of {column} over epochs"


def evaluate_claim(
    claim: Claim, rows: Sequence[Mapping[str, Any]], curves: Sequence[Mapping[str, Any]] = ()
) -> ClaimResult:
    """The paired statistics of ``method - baseline`` on the claim's measure, and the verdict."""
    a, unit = claim_values(claim, claim.method, rows, curves)
    b, _ = claim_values(claim, claim.baseline, rows, curves)
    pairs = sorted(k for k in set(a) & set(b) if np.isfinite(a[k]) and np.isfinite(b[k]))
    if not pairs:
        raise ValueError(
            f"claim {claim.text!r}: no finite pairs of {claim.method}, {claim.baseline}"
        )
    x = [a[k] for k in pairs]
    y = [b[k] for k in pairs]
    stats = paired_stats(x, y)
    return ClaimResult(
        claim,
        stats,
        verdict(stats, claim.higher_is_better),
        unit,
        float(np.mean(x)),
        float(np.mean(y)),
    )


def verdict(stats: PairedStats, higher_is_better: bool) -> str:
    """``supported``, ``contradicted`` or ``not shown`` by the rule of the module docstring."""
    if stats.p is None or stats.p >= ALPHA or stats.low <= 0 <= stats.high:
        return "not shown"
    method_better = (stats.low > 0) == higher_is_better
    return "supported" if method_better else "contradicted"
