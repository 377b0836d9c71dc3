"""The cases of a report: which files belong together, and one table row per case.

A row holds what ``volseg evaluate`` computes (:func:`volseg.evaluation.evaluate_volumes`, the
same labels and empty-label conventions as :func:`volseg.evaluation.evaluate_folders`), plus
the predicted and reference foreground volumes in ml, the number of connected components of
the predicted foreground (26-connectivity in 3-D, 8 in 2-D) and, when ``volseg predict
--uncertainty`` wrote one, the case's uncertainty score.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volseg.io import Volume, VolumeReadError, read_volume

__all__ = [
    "CaseFiles",
    "cases_from_folders",
    "cases_from_manifest",
    "foreground_ml",
    "n_components",
    "outliers",
    "score_cases",
]

MANIFEST = "cases.csv"
"""A run directory's list of scored cases: ``case,image,prediction,reference`` (paths relative
to the file's folder or absolute); ``volseg demo`` writes one."""

UNCERTAINTY = Path("uncertainty") / "scores.csv"
"""Per-case uncertainty scores beside the predictions (``volseg predict --uncertainty``)."""


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: its prediction, and where known its reference and scan."""

    case: str
    prediction: Path
    reference: Path | None = None
    image: Path | None = None


def _pair(names: Sequence[str], files: dict[str, Path], what: str, folder: Path) -> list[Path]:
    """The file of each name in ``files`` (a scan may carry nnU-Net's ``_0000`` suffix)."""
    out, missing = [], []
    for name in names:
        path = files.get(name) or files.get(f"{name}_0000")
        if path is None:
            missing.append(name)
        else:
            out.append(path)
    if missing:
        raise VolumeReadError(f"{folder}: no {what} for case(s) {', '.join(missing)}")
    return out


def cases_from_folders(
    pred_dir: str | Path, ref_dir: str | Path | None = None, image_dir: str | Path | None = None
) -> list[CaseFiles]:
    """Every prediction in ``pred_dir``, paired by case name with a reference and a scan.

    Each prediction must have its reference (and scan) when those folders are given; the error
    names the cases without one. References without a prediction are left out.
    """
    from volseg.evaluation import image_files

    preds = image_files(pred_dir)
    if not preds:
        raise VolumeReadError(f"{pred_dir}: no predicted label maps (.nii.gz, .nii, .mha, ...)")
    names = sorted(preds)
    refs = _pair(names, image_files(ref_dir), "reference", Path(ref_dir)) if ref_dir else None
    imgs = _pair(names, image_files(image_dir), "scan", Path(image_dir)) if image_dir else None
    return [
        CaseFiles(
            name,
            preds[name],
            None if refs is None else refs[i],
            None if imgs is None else imgs[i],
        )
        for i, name in enumerate(names)
    ]


def cases_from_manifest(path: str | Path) -> list[CaseFiles]:
    """The cases listed in a ``cases.csv`` (see :data:`MANIFEST`)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"case", "prediction"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs the columns case,prediction[,reference,image]")
        rows = list(reader)

    def resolve(value: str | None) -> Path | None:
        return None if not value else (path.parent / value).resolve()

    cases = []
    for row in rows:
        prediction = resolve(row["prediction"])
        assert prediction is not None
        cases.append(
            CaseFiles(
                row["case"], prediction, resolve(row.get("reference")), resolve(row.get("image"))
            )
        )
    return cases


def foreground_ml(volume: Volume) -> float:
    """Volume of the non-zero voxels in ml (mm^3 / 1000)."""
    voxel = float(np.prod(volume.spacing))
    return float(np.count_nonzero(volume.array[0])) * voxel / 1000.0


def n_components(volume: Volume) -> int:
    """Connected components of the non-zero voxels (full connectivity: 26 in 3-D, 8 in 2-D)."""
    from scipy import ndimage

    mask = volume.array[0] != 0
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    return int(ndimage.label(mask, structure=structure)[1])


def _uncertainty_scores(cases: Sequence[CaseFiles]) -> dict[str, float]:
    """Scores from each prediction folder's ``uncertainty/scores.csv``, when present."""
    scores: dict[str, float] = {}
    for folder in {c.prediction.parent for c in cases}:
        path = folder / UNCERTAINTY
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                scores.update({r["case"]: float(r["uncertainty"]) for r in csv.DictReader(handle)})
    return scores


def score_cases(
    cases: Sequence[CaseFiles],
    metrics: Sequence[str] = ("dice", "hd95"),
    tolerance: float = 1.0,
    names: Mapping[int, str] | None = None,
) -> list[dict[str, float | str]]:
    """One row per case: metrics (with a reference), volumes in ml, components, uncertainty.

    Labels as ``volseg evaluate`` without ``--labels``: each case scores the non-zero labels of
    its prediction and reference; a label another case has but this one lacks in both maps gets
    the empty-mask values, so every row has the same columns. ``names`` (label value -> name)
    names the columns, ``dice_liver`` for ``dice_1`` (:mod:`volseg.metrics.names`).
    """
    from volseg.evaluation import evaluate_volumes
    from volseg.metrics.case import with_every_label

    uncertainty = _uncertainty_scores(cases)
    rows: list[dict[str, float | str]] = []
    found: set[int] = set()
    for case in cases:
        pred = read_volume(case.prediction)
        row: dict[str, float | str] = {"case": case.case}
        ref = None if case.reference is None else read_volume(case.reference)
        if ref is not None:
            ref_labels = {int(v) for v in np.unique(ref.array) if v != 0}
            pred_labels = {int(v) for v in np.unique(pred.array) if v != 0}
            labels = sorted(ref_labels | pred_labels)
            found |= set(labels)  # a label only a prediction holds keeps its columns too
            row.update(
                evaluate_volumes(
                    pred, ref, labels, metrics=metrics, tolerance=tolerance, names=names
                )
            )
        row["pred_ml"] = foreground_ml(pred)
        if ref is not None:
            row["ref_ml"] = foreground_ml(ref)
        row["components"] = n_components(pred)
        if case.case in uncertainty:
            row["uncertainty"] = uncertainty[case.case]
        rows.append(row)
    if any(c.reference is not None for c in cases):  # the columns of evaluate_folders
        extra = ("pred_ml", "ref_ml", "components", "uncertainty")
        rows = with_every_label(
            rows, sorted(found), extra, metrics=metrics, tolerance=tolerance, names=names
        )
    return rows


def outliers(values: Sequence[float]) -> list[bool]:
    """Tukey's fences: True where a value lies beyond 1.5 IQR of the quartiles (needs 4 values).

    Non-finite values are flagged too (an empty prediction's infinite distance is worth a look).
    """
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    if finite.size < 4:
        return [not math.isfinite(v) for v in array]
    q1, q3 = np.percentile(finite, [25.0, 75.0])
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    return [not math.isfinite(v) or v < low or v > high for v in array]
