"""Metrics over cases: statistics per key (:func:`aggregate`, :func:`summarize`) and the CSV."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from volseg._atomic import atomic_path

__all__ = ["aggregate", "summarize", "write_metrics_csv"]


def aggregate(rows: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Mean, std (population), median, count and non-finite count of every numeric metric.

    ``{key: {"mean", "std", "median", "n", "nonfinite"}}`` (``n`` and ``nonfinite`` are ``int``);
    non-finite values (``inf`` from an empty mask, ``NaN``) are left out of the statistics but
    counted in ``nonfinite``; a key with no finite value gets NaN statistics. Non-numeric
    entries (a ``"case"`` name) are ignored.
    """
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k, v in row.items() if k not in keys and _is_number(v))
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([row[key] for row in rows if _is_number(row.get(key))], dtype=np.float64)
        finite = values[np.isfinite(values)]
        stats = (
            (float(finite.mean()), float(finite.std()), float(np.median(finite)))
            if finite.size
            else (math.nan, math.nan, math.nan)
        )
        out[key] = {
            "mean": stats[0],
            "std": stats[1],
            "median": stats[2],
            "n": int(finite.size),  # counts stay integers: printed 2, not 2.0000
            "nonfinite": int(values.size - finite.size),
        }
    return out


def summarize(rows: Sequence[Mapping[str, object]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of every numeric metric over cases: ``{key: (mean, std)}``.

    Non-finite values (``inf`` from an empty mask, ``NaN``) are left out of mean and std (the
    population std, ``ddof=0``) but counted: for each key that has any, the summary also holds
    ``"<key>_nonfinite": (count, number of cases)``. A key with no finite value gets
    ``(nan, nan)``. Non-numeric entries (a ``"case"`` name) are ignored. :func:`aggregate` adds
    the median.
    """
    summary: dict[str, tuple[float, float]] = {}
    for key, stats in aggregate(rows).items():
        summary[key] = (stats["mean"], stats["std"])
        if stats["nonfinite"]:
            count, n = int(stats["nonfinite"]), int(stats["n"] + stats["nonfinite"])
            summary[f"{key}_nonfinite"] = (count, n)
    return summary


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_metrics_csv(
    rows: Sequence[Mapping[str, object]],
    summary: Mapping[str, tuple[float, float]],
    path: str | os.PathLike[str],
) -> Path:
    """Write one row per case, then ``mean``, ``std`` and ``median`` rows to a CSV file, atomically.

    The first column is ``case`` (the row's ``"case"`` entry, else its index); the metric columns
    are the rows' keys in order of first appearance. The file is written to a temporary file in
    the same folder and moved into place with ``os.replace``, so readers never see half a file.
    """
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k != "case" and k not in columns)
    lines: list[list[str]] = [["case", *columns]]
    for i, row in enumerate(rows):
        lines.append([_fmt(row.get("case", i)), *(_fmt(row.get(c, "")) for c in columns)])
    for name, idx in (("mean", 0), ("std", 1)):
        lines.append([name, *(_fmt(summary[c][idx]) if c in summary else "" for c in columns)])
    medians = aggregate(rows)
    lines.append(["median", *(_fmt(medians[c]["median"]) if c in medians else "" for c in columns)])

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(lines)
    return path
