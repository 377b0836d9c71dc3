"""volseg.metrics.summary: aggregate, summarize and the metrics CSV over cases."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from volseg.metrics import (
    aggregate,
    summarize,
    write_metrics_csv,
)


def test_summarize_ignores_but_counts_nonfinite() -> None:
    rows = [
        {"case": "a", "dice_1": 0.8, "hd95_1": 2.0},
        {"case": "b", "dice_1": 0.6, "hd95_1": math.inf},
        {"case": "c", "dice_1": 1.0, "hd95_1": 4.0},
    ]
    s = summarize(rows)
    assert s["dice_1"] == pytest.approx((0.8, np.std([0.8, 0.6, 1.0])))
    assert s["hd95_1"] == pytest.approx((3.0, 1.0))
    assert s["hd95_1_nonfinite"] == (1.0, 3.0)
    assert "dice_1_nonfinite" not in s and "case" not in s
    assert all(math.isnan(v) for v in summarize([{"x": math.nan}])["x"])


def test_aggregate_mean_std_median() -> None:
    rows = [{"case": "a", "x": 1.0}, {"case": "b", "x": 2.0}, {"case": "c", "x": 10.0}]
    rows.append({"case": "d", "x": math.inf})
    stats = aggregate(rows)["x"]
    assert stats["mean"] == pytest.approx(13 / 3)
    assert stats["median"] == 2.0
    assert stats["std"] == pytest.approx(np.std([1.0, 2.0, 10.0]))
    assert (stats["n"], stats["nonfinite"]) == (3.0, 1.0)


def test_write_metrics_csv(tmp_path: Path) -> None:
    rows = [
        {"case": "a", "dice_1": 0.5, "hd95_1": 1.25},
        {"case": "b", "dice_1": 0.75, "hd95_1": math.inf},
    ]
    path = write_metrics_csv(rows, summarize(rows), tmp_path / "out" / "metrics.csv")
    with path.open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["case", "dice_1", "hd95_1"]
    assert [r[0] for r in table[1:]] == ["a", "b", "mean", "std", "median"]
    assert float(table[2][2]) == math.inf
    assert float(table[3][1]) == pytest.approx(0.625)
    assert float(table[3][2]) == pytest.approx(1.25)
    assert float(table[4][1]) == pytest.approx(0.125)
    assert float(table[5][1]) == pytest.approx(0.625) and float(table[5][2]) == 1.25
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]


def test_aggregate_counts_the_nan_cases_each_mean_skips() -> None:
    """With ``empty="nan"`` a both-empty case is NaN: left out of the mean, counted."""
    rows = [{"dice_1": 0.5}, {"dice_1": math.nan}, {"dice_1": math.nan}, {"dice_1": math.inf}]
    rows.append({"dice_1": 1.0})
    stats = aggregate(rows)["dice_1"]
    assert stats["mean"] == 0.75 and (stats["n"], stats["nonfinite"]) == (2.0, 3.0)
    assert summarize(rows)["dice_1_nonfinite"] == (3.0, 5.0)
