"""K-fold cross-validation: deterministic splits, one run per fold, pooled metrics, an ensemble.

``cross_validate(config, folds=4)`` (``volseg cv CONFIG --folds 4``; Liu et al. report four-fold
cross-validation) writes into ``CV_DIR`` (default ``config.run_dir``):

* ``splits.json`` — ``[{"fold": 0, "train": [...], "val": [...]}, ...]``: the case ids of each
  fold, drawn once from ``train.seed`` (cases dealt round-robin after a seeded shuffle) and reused
  on every later call, so an interrupted cross-validation resumes with the same folds;
* ``fold_K/`` — an ordinary training run validating on fold K (resumed if interrupted, skipped
  if finished);
* ``metrics.csv`` — every metric of ``metrics`` (default :data:`CV_METRICS`: Dice, Jaccard,
  precision, recall, HD95, ASSD) per held-out case and label (per region for region models;
  columns named by the run's ``data.label_names``, ``dice_liver``), and each metric's mean over
  the labels (``dice``, ``hd95``, ...): the :class:`volseg.inference.Predictor`'s label map on
  the scan's own grid, scored by :func:`volseg.evaluation.score_case` (``volseg evaluate``'s
  metrics);
* ``summary.json`` (strict JSON: a NaN statistic is ``null``) — ``folds``: the mean of every
  column per fold; ``pooled``: the mean over all held-out cases; ``pooled_stats``: mean, std,
  median, ``n`` and ``nonfinite`` of every column (:func:`volseg.metrics.aggregate`; non-finite
  distances, an empty prediction's ``inf``, are left out of the means and counted); ``cases``:
  the number of held-out cases.

:func:`ensemble_predictor` averages the folds' class probabilities for new scans.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from volseg._atomic import atomic_path
from volseg.config import Config
from volseg.data.layouts import find_cases
from volseg.data.splits import kfold_splits
from volseg.evaluation import score_case
from volseg.inference import Predictor
from volseg.metrics import METRICS, aggregate
from volseg.training.checkpoint import run_finished
from volseg.training.trainer import train

__all__ = [
    "CV_METRICS",
    "CVResult",
    "cross_validate",
    "ensemble_predictor",
    "fold_config",
    "read_splits",
    "write_splits",
]


CV_METRICS: tuple[str, ...] = ("dice", "jaccard", "precision", "recall", "hd95", "assd")
"""The metrics :func:`cross_validate` scores by default (any of :data:`volseg.metrics.METRICS`)."""


@dataclass(frozen=True)
class CVResult:
    """Where the folds went and their scores: the mean of every metric column per fold, pooled.

    ``pooled_stats`` holds :func:`volseg.metrics.aggregate`'s statistics of every column over
    all held-out cases (mean, std, median, ``n``, ``nonfinite``).
    """

    cv_dir: Path
    run_dirs: list[Path]
    fold_metrics: list[dict[str, float]]
    pooled: dict[str, float]
    pooled_stats: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


def write_splits(splits: Sequence[dict[str, Any]], path: str | Path) -> None:
    Path(path).write_text(json.dumps(list(splits), indent=1) + "\n", encoding="utf-8")


def read_splits(path: str | Path) -> list[dict[str, Any]]:
    try:
        splits = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable splits file ({err})") from None
    if not isinstance(splits, list) or not all(
        isinstance(s, dict) and {"fold", "train", "val"} <= set(s) for s in splits
    ):
        raise ValueError(f"{path}: expected a list of {{fold, train, val}} entries")
    return splits


def fold_config(config: Config, split: dict[str, Any], run_dir: str | Path) -> Config:
    """The fold's config: validate on its held-out cases, write into its own run directory."""
    data = dataclasses.replace(config.data, val_cases=tuple(split["val"]))
    return dataclasses.replace(config, data=data, run_dir=str(run_dir))


def _mean_rows(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of every metric column over the finite values (not ``fold``)."""
    return {k: v["mean"] for k, v in aggregate(rows).items() if k != "fold"}


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinities as ``null``: strict JSON that every reader accepts."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cross_validate(
    config: Config,
    folds: int,
    progress: bool = True,
    cv_dir: str | Path | None = None,
    metrics: Sequence[str] = CV_METRICS,
) -> CVResult:
    """Train and score every fold (resuming or skipping finished ones); see the module docstring.

    Warning: trains ``folds`` models one after another.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    cv_dir = Path(cv_dir or config.run_dir)
    cv_dir.mkdir(parents=True, exist_ok=True)
    dataset = find_cases(config.data.root, config.data.layout, config.data.channels)
    by_id = {c.case_id: c for c in dataset.cases}
    splits_path = cv_dir / "splits.json"
    if splits_path.is_file():
        splits = read_splits(splits_path)
        listed = {i for s in splits for i in s["val"]}
        if len(splits) != folds or listed != set(by_id):
            raise ValueError(
                f"{splits_path}: holds {len(splits)} folds over other cases; "
                "use another run_dir or delete it"
            )
    else:
        splits = kfold_splits(list(by_id), folds, config.train.seed)
        write_splits(splits, splits_path)

    rows: list[dict[str, Any]] = []
    fold_metrics, run_dirs = [], []
    for split in splits:
        run_dir = cv_dir / f"fold_{split['fold']}"
        cfg = fold_config(config, split, run_dir)
        if not run_finished(run_dir, config.train.epochs):
            resume = (run_dir / "checkpoint_last.pt").is_file()
            if progress:
                print(f"fold {split['fold']}: {'resuming' if resume else 'training'} in {run_dir}")
            train(cfg, progress=progress, resume=resume)
        run_dirs.append(run_dir)
        predictor = Predictor.from_run(run_dir)
        fold_rows = [
            {"fold": split["fold"], "case": i, **score_case(predictor, by_id[i], metrics)}
            for i in split["val"]
        ]
        rows += fold_rows
        fold_metrics.append(_mean_rows(fold_rows))
    pooled = _mean_rows(rows)
    stats = {k: v for k, v in aggregate(rows).items() if k != "fold"}
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with (
        atomic_path(cv_dir / "metrics.csv") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "folds": [{"fold": s["fold"], **m} for s, m in zip(splits, fold_metrics)],
        "pooled": pooled,
        "pooled_stats": stats,
        "cases": len(rows),
    }
    with atomic_path(cv_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(_strict(summary), indent=1) + "\n", encoding="utf-8")
    return CVResult(cv_dir, run_dirs, fold_metrics, pooled, stats)


def ensemble_predictor(run_dirs: Sequence[str | Path]) -> Predictor:
    """A :class:`volseg.inference.Predictor` averaging the runs' probabilities (the folds)."""
    return Predictor.from_runs(list(run_dirs))
