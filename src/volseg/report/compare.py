"""``volseg compare``: several methods scored on the same cases, compared pair by pair.

Each folder holds the ``metrics.csv`` of ``volseg evaluate`` (one method) or an experiment's
``results.csv`` (one method per variant, a case being a (seed, fold, case) triple). For every
metric: mean +/- std per method and, for each method against the first, the mean paired
difference with a seeded 95 % bootstrap interval and the Wilcoxon signed-rank p-value
(:func:`volseg.experiments.stats.paired_stats`), and wins/losses/ties per case. Pairs where
either value is not finite (an infinite distance of an empty mask) are left out of the
statistics and counted.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Comparison", "compare_folders", "format_comparison", "load_methods"]

_SUMMARY_ROWS = ("mean", "std", "median")  # appended by volseg.metrics.write_metrics_csv
_KEYS = ("experiment", "variant", "seed", "fold", "case")
_LOWER_IS_BETTER = ("hd", "hd95", "assd")


def lower_is_better(metric: str) -> bool:
    """Distances (``hd``, ``hd95``, ``assd`` and their ``_<label>`` columns) improve downwards."""
    return metric in _LOWER_IS_BETTER or metric.startswith(tuple(f"{m}_" for m in _LOWER_IS_BETTER))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class Method:
    """One method's scores: ``scores[case][metric]``, and where its predictions lie."""

    name: str
    scores: dict[str, dict[str, float]]
    folder: Path


def load_methods(source: str | Path) -> list[Method]:
    """The methods of an evaluation folder (``metrics.csv``) or experiment (``results.csv``)."""
    source = Path(source)
    folder = source.parent if source.is_file() else source
    if source.is_file():
        path = source
    elif (source / "metrics.csv").is_file():
        path = source / "metrics.csv"
    elif (source / "results.csv").is_file():
        path = source / "results.csv"
    else:
        raise OSError(f"{source}: no metrics.csv (volseg evaluate) or results.csv (experiment)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "case" not in rows[0]:
        raise ValueError(f"{path}: no 'case' column or no rows")
    if "variant" not in rows[0]:  # volseg evaluate: one method, its summary rows last
        rows = [r for r in rows if r["case"] not in _SUMMARY_ROWS]
        return [Method(folder.name, _scores(path, rows, lambda r: r["case"]), folder)]
    methods = []
    for variant in dict.fromkeys(r["variant"] for r in rows):

        def key(r: Mapping[str, str]) -> str:
            parts = [
                f"seed{r['seed']}" if r.get("seed") else "",
                f"fold{r['fold']}" if r.get("fold") else "",
            ]
            return "/".join([p for p in parts if p] + [r["case"]])

        chosen = [r for r in rows if r["variant"] == variant]
        methods.append(Method(f"{folder.name}:{variant}", _scores(path, chosen, key), folder))
    return methods


def _scores(
    path: Path, rows: Sequence[Mapping[str, str]], key: object
) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, float]] = {}
    for row in rows:
        name = key(row)  # type: ignore[operator]
        if name in scores:
            raise ValueError(f"{path}: case {name} appears twice")
        values = {k: _number(v) for k, v in row.items() if k not in _KEYS}
        scores[name] = {k: v for k, v in values.items() if v is not None}
    return scores


@dataclass
class Comparison:
    """Methods x cases per metric, and the paired statistics of each method against the first."""

    names: list[str]
    cases: list[str]
    values: dict[str, np.ndarray]  # metric -> (methods, cases)
    folders: list[Path] = field(default_factory=list)

    def rows(self, metric: str) -> list[dict[str, object]]:
        """The table of one metric: a row per method (differences against the first)."""
        from volseg.experiments.stats import paired_stats

        table = self.values[metric]
        base = table[0]
        out: list[dict[str, object]] = []
        for i, name in enumerate(self.names):
            values = table[i]
            finite = values[np.isfinite(values)]
            row: dict[str, object] = {
                "method": name,
                "mean": float(finite.mean()) if finite.size else math.nan,
                "std": float(finite.std()) if finite.size else math.nan,
            }
            if i:
                ok = np.isfinite(values) & np.isfinite(base)
                stats = paired_stats(values[ok], base[ok]) if ok.any() else None
                sign = -1.0 if lower_is_better(metric) else 1.0
                better = sign * (values[ok] - base[ok])
                row.update(
                    {
                        "diff": stats.mean if stats else math.nan,
                        "ci_low": stats.low if stats else math.nan,
                        "ci_high": stats.high if stats else math.nan,
                        "p_wilcoxon": stats.p if stats and stats.p is not None else math.nan,
                        "wins": int(np.sum(better > 0)),
                        "losses": int(np.sum(better < 0)),
                        "ties": int(np.sum(better == 0)),
                        "pairs": int(ok.sum()),
                        "left_out": int((~ok).sum()),
                    }
                )
            out.append(row)
        return out

    def most_different(self, metric: str, count: int = 5) -> list[tuple[str, float]]:
        """Cases where the methods spread most on ``metric`` (max - min over methods)."""
        table = self.values[metric]
        with np.errstate(invalid="ignore"):
            spread = np.nanmax(table, axis=0) - np.nanmin(table, axis=0)
        spread = np.where(np.isfinite(spread), spread, np.inf)
        order = np.argsort(-spread, kind="stable")[:count]
        return [(self.cases[j], float(spread[j])) for j in order]


def compare_folders(
    folders: Sequence[str | Path],
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> Comparison:
    """Load the methods and check that they scored the same cases (the error names the others).

    ``metrics`` default: every numeric column all methods share.
    """
    methods = [m for folder in folders for m in load_methods(folder)]
    if len(methods) < 2:
        raise ValueError(f"need at least two methods to compare, got {len(methods)}")
    if names:
        if len(names) != len(methods):
            raise ValueError(f"--names: {len(names)} names for {len(methods)} methods")
        for method, name in zip(methods, names, strict=True):
            method.name = name
    base = methods[0]
    for other in methods[1:]:
        missing, extra = (
            sorted(set(base.scores) - set(other.scores)),
            sorted(set(other.scores) - set(base.scores)),
        )
        if missing or extra:
            parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
                [f"has {', '.join(extra)} that {base.name} lacks"] if extra else []
            )
            raise ValueError(
                f"{other.folder}: the cases differ from {base.folder}: {'; '.join(parts)}"
            )
    cases = list(base.scores)
    shared = [
        k
        for k in next(iter(base.scores.values()), {})
        if all(k in m.scores[c] for m in methods for c in cases)
    ]
    chosen = list(metrics) if metrics else shared
    unknown = [m for m in chosen if m not in shared]
    if unknown:
        raise ValueError(
            f"--metrics: {', '.join(unknown)} not scored by every method; "
            f"shared: {', '.join(shared)}"
        )
    values = {k: np.array([[m.scores[c][k] for c in cases] for m in methods]) for k in chosen}
    return Comparison([m.name for m in methods], cases, values, [m.folder for m in methods])


_COLUMNS = [
    "method",
    "mean",
    "std",
    "diff",
    "ci_low",
    "ci_high",
    "p_wilcoxon",
    "wins",
    "losses",
    "ties",
    "pairs",
    "left_out",
]


def format_comparison(comparison: Comparison) -> str:
    """The terminal table of each metric."""
    from volseg.report.tables import format_table

    blocks = []
    for metric in comparison.values:
        better = "lower" if lower_is_better(metric) else "higher"
        title = (
            f"{metric} ({len(comparison.cases)} cases; {better} is better; diff = method - "
            f"{comparison.names[0]}, 95% bootstrap interval, Wilcoxon signed-rank p)"
        )
        blocks.append(title + "\n" + format_table(comparison.rows(metric), _COLUMNS))
    return "\n\n".join(blocks)
