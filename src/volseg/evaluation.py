"""Score a folder of predicted label maps against a folder of references.

Files are paired by case name (the file name without its image suffix, so ``a.nii.gz`` pairs
with ``a.mha``). Each pair must share one grid: a prediction that does not line up with its
reference is an error, never silently resampled. Distances use the reference's spacing in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from volseg.io import SUPPORTED_SUFFIXES, Volume, VolumeReadError, read_volume, strip_suffix
from volseg.metrics import evaluate_case, summarize, write_metrics_csv

__all__ = ["evaluate_folders", "evaluate_volumes", "image_files"]


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
    pred: Volume, ref: Volume, labels: Sequence[int] | None = None
) -> dict[str, float]:
    """Dice and HD95 per foreground label for one prediction/reference pair on one grid."""
    diff = ref.grid_difference(pred)
    if diff:
        raise VolumeReadError(f"{pred.source}: grid differs from {ref.source} ({diff})")
    if labels is None:
        labels = sorted(int(v) for v in np.unique(ref.array) if v != 0) or [1]
    return evaluate_case(pred.array[0], ref.array[0], ref.spacing_zyx, labels)


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    labels: Sequence[int] | None = None,
    output: str | Path | None = None,
) -> tuple[list[dict[str, float | str]], dict[str, tuple[float, float]], Path]:
    """Score every reference that has a prediction; write per-case rows + mean/std to CSV.

    Returns:
        The per-case rows (with a ``case`` key), the summary (mean, std) per metric, and the
        CSV path (default ``pred_dir/metrics.csv``).
    """
    preds, refs = image_files(pred_dir), image_files(ref_dir)
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise VolumeReadError(f"{pred_dir}: no prediction for case(s) {', '.join(missing)}")
    if labels is None:
        found: set[int] = set()
        for path in refs.values():
            found.update(int(v) for v in np.unique(read_volume(path).array) if v != 0)
        labels = sorted(found) or [1]
    rows: list[dict[str, float | str]] = []
    for case, ref_path in refs.items():
        scores = evaluate_volumes(read_volume(preds[case]), read_volume(ref_path), labels)
        rows.append({"case": case, **scores})
    summary = summarize([{k: float(v) for k, v in r.items() if k != "case"} for r in rows])
    csv_path = Path(output) if output else Path(pred_dir) / "metrics.csv"
    write_metrics_csv(rows, summary, csv_path)
    return rows, summary, csv_path
