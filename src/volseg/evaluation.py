"""Score a folder of predicted label maps against a folder of references.

Files are paired by case name (the file name without its image suffix, so ``a.nii.gz`` pairs
with ``a.mha``). Each pair must share one grid: a prediction that does not line up with its
reference is an error, never silently resampled. Distances use the reference's spacing in mm.
Without explicit labels, every non-zero label of the predictions and the references is scored:
a label only a prediction holds is scored against an empty reference (Dice 0) and reported on
stderr. Metrics and conventions: :mod:`volseg.metrics` and ``docs/metrics.md``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from volseg.io import SUPPORTED_SUFFIXES, Volume, VolumeReadError, read_volume, strip_suffix
from volseg.metrics import (
    Convention,
    Empty,
    LesionRules,
    evaluate_case,
    summarize,
    write_metrics_csv,
)
from volseg.metrics.names import config_label_names, names_beside
from volseg.regions import Region

if TYPE_CHECKING:  # scoring folders needs no torch: ``volseg evaluate`` stays light
    from volseg.data.layouts import Case
    from volseg.inference import Predictor

__all__ = ["evaluate_folders", "evaluate_volumes", "image_files", "score_case"]


def image_files(folder: str | Path) -> dict[str, Path]:
    """Case name -> file for every supported image in ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeReadError(f"{folder}: not a folder")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name.lower().endswith(SUPPORTED_SUFFIXES):
            files[strip_suffix(path)] = path
    return files


def evaluate_volumes(
    pred: Volume,
    ref: Volume,
    labels: Sequence[int] | None = None,
    *,
    metrics: Sequence[str] = ("dice", "hd95"),
    regions: str | Sequence[Region] | None = None,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
    convention: Convention = "voxel",
    empty: Empty = "documented",
    lesions: LesionRules | None = None,
    names: Mapping[int, str] | None = None,
) -> dict[str, float]:
    """Metrics per foreground label (and region) for one prediction/reference pair on one grid.

    ``labels=None`` scores the non-zero labels of both maps (``[1]`` if they hold none), unless
    ``regions`` is given, which then scores the regions alone. See
    :func:`volseg.metrics.evaluate_case` for the keys and the keyword arguments (``names``:
    label value -> name, naming the columns).
    """
    diff = ref.grid_difference(pred)
    if diff:
        raise VolumeReadError(f"{pred.source}: grid differs from {ref.source} ({diff})")
    if labels is None:
        labels = [] if regions is not None else _labels_of([ref, pred])
    return evaluate_case(
        pred.array[0],
        ref.array[0],
        ref.spacing_zyx,
        labels,
        metrics=metrics,
        regions=regions,
        tolerance=tolerance,
        empty_distance=empty_distance,
        convention=convention,
        empty=empty,
        lesions=lesions,
        names=names,
    )


def _stderr(message: str) -> None:
    print(f"volseg: warning: {message}", file=sys.stderr)


def _nonzero(volume: Volume) -> set[int]:
    return {int(v) for v in np.unique(volume.array) if v != 0}


def _labels_of(volumes: Iterable[Volume]) -> list[int]:
    """Every non-zero label in the volumes, or ``[1]`` when they hold none."""
    return sorted(set().union(*map(_nonzero, volumes))) or [1]


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    labels: Sequence[int] | None = None,
    output: str | Path | None = None,
    *,
    metrics: Sequence[str] = ("dice", "hd95"),
    regions: str | Sequence[Region] | None = None,
    tolerance: float = 1.0,
    empty_distance: float = math.inf,
    convention: Convention = "voxel",
    empty: Empty = "documented",
    lesions: LesionRules | None = None,
    warn: Callable[[str], None] = _stderr,
    names: Mapping[int, str] | None = None,
) -> tuple[list[dict[str, float | str]], dict[str, tuple[float, float]], Path]:
    """Score every reference that has a prediction; write per-case rows + mean/std/median to CSV.

    ``labels=None`` scores every non-zero label found in the predictions or the references
    (none when ``regions`` is given); a label no reference holds is scored (its reference masks
    are empty) and ``warn`` is told which cases predict it (default: a line on stderr).
    ``metrics`` are names from :data:`volseg.metrics.METRICS`; ``convention``, ``empty`` and
    ``lesions`` are passed to :func:`volseg.metrics.evaluate_case`. ``names`` (label value ->
    name) names the columns, ``dice_liver`` for ``dice_1``; ``None`` reads them from a
    ``dataset.json`` in ``ref_dir`` or its parent (MSD ``labelsTr``), else keeps the values.

    Returns:
        The per-case rows (with a ``case`` key), the summary (mean, std) per metric, and the
        CSV path (default ``pred_dir/metrics.csv``).
    """
    preds, refs = image_files(pred_dir), image_files(ref_dir)
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise VolumeReadError(f"{pred_dir}: no prediction for case(s) {', '.join(missing)}")
    infer_labels = labels is None and regions is None
    if names is None:
        names = names_beside(ref_dir)
    rows: list[dict[str, float | str]] = []
    found: set[int] = set()  # non-zero labels of the references
    predicted: dict[int, list[str]] = {}  # label -> cases whose prediction holds it
    for case, ref_path in refs.items():
        pred, ref = read_volume(preds[case]), read_volume(ref_path)
        if infer_labels:  # score what this pair holds; other labels are empty in both
            ref_labels, pred_labels = _nonzero(ref), _nonzero(pred)
            found |= ref_labels
            for label in pred_labels:
                predicted.setdefault(label, []).append(case)
            case_labels = sorted(ref_labels | pred_labels)
        else:
            case_labels = list(labels or [])
        scores = evaluate_volumes(
            pred,
            ref,
            case_labels,
            metrics=metrics,
            regions=regions,
            tolerance=tolerance,
            empty_distance=empty_distance,
            convention=convention,
            empty=empty,
            lesions=lesions,
            names=names,
        )
        rows.append({"case": case, **scores})
    if infer_labels:
        for label in sorted(set(predicted) - found):
            warn(
                f"{pred_dir}: label {label} is in the prediction of case(s) "
                f"{', '.join(predicted[label])} but in no reference; scored against empty "
                "references"
            )
        found |= set(predicted)
        # a label a case did not score is absent from both its maps: its values are the
        # empty-mask conventions, those of a one-voxel empty pair (which also fix the column order)
        blank = np.zeros((1, 1, 1), np.uint8)
        template = evaluate_case(
            blank,
            blank,
            (1.0, 1.0, 1.0),
            sorted(found) or [1],
            metrics=metrics,
            tolerance=tolerance,
            empty_distance=empty_distance,
            convention=convention,
            empty=empty,
            lesions=lesions,
            names=names,
        )
        rows = [{"case": r["case"], **{k: r.get(k, v) for k, v in template.items()}} for r in rows]
    summary = summarize([{k: float(v) for k, v in r.items() if k != "case"} for r in rows])
    csv_path = Path(output) if output else Path(pred_dir) / "metrics.csv"
    write_metrics_csv(rows, summary, csv_path)
    return rows, summary, csv_path


def score_case(
    predictor: Predictor, case: Case, metrics: Sequence[str] = ("dice",)
) -> dict[str, float]:
    """Predict a labelled case on its own grid and score it as ``volseg evaluate`` does.

    Keys are ``<metric>_<label>`` for a softmax model (the label's name when the run has one,
    ``data.label_names``) and ``<metric>_<region>`` for a region model (its labels are painted
    from the regions), plus ``<metric>``, their mean. Used by
    cross-validation and the paper experiments.
    """
    if case.label is None:
        raise VolumeReadError(f"case {case.case_id}: no label map to score against")
    pred = predictor.predict(list(case.images))
    ref = read_volume(case.label)
    scores = evaluate_case(
        pred.array[0],
        ref.array[0],
        tuple(reversed(ref.spacing)),
        () if predictor.regions else predictor.labels,
        metrics=tuple(metrics),
        regions=predictor.regions,
        names=config_label_names(predictor.config.data),
    )
    out: dict[str, float] = {}
    for metric in metrics:
        parts = {k: v for k, v in scores.items() if k.startswith(f"{metric}_")}
        out[metric] = float(np.mean(list(parts.values()))) if parts else math.nan
        out.update(parts)
    return out
