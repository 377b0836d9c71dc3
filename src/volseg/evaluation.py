"""Score a folder of predicted label maps against a folder of references or a dataset's labels.

Files are paired by case id (the file name without its image suffix, so ``a.nii.gz`` pairs
with ``a.mha``); the references are a folder of label maps, or the labels of a dataset in any
layout (manifest, MSD, BraTS...: :func:`reference_files`). A prediction left with nnU-Net's
channel suffix (``a_0000.nii.gz``, as an older volseg wrote) still pairs with reference ``a``
(:func:`pair_cases`); what paired and what did not is said on stderr. Each pair must share one
grid: a prediction that does not line up with its reference is an error, never silently
resampled. Distances use the reference's spacing in mm. Without explicit labels, every non-zero
label of the predictions and the references is scored: a label only a prediction holds is scored
against an empty reference (Dice 0) and reported on stderr. Metrics and conventions:
:mod:`volseg.metrics` and ``docs/metrics.md``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from volseg._atomic import is_temp
from volseg.data.layouts import (
    LayoutError,
    detect_layout,
    find_cases,
    strip_channel,
)
from volseg.io import SUPPORTED_SUFFIXES, Volume, VolumeReadError, read_volume, strip_suffix
from volseg.metrics import (
    Convention,
    Empty,
    LesionRules,
    evaluate_case,
    summarize,
    write_metrics_csv,
)
from volseg.metrics.case import with_every_label
from volseg.metrics.names import config_label_names, names_beside
from volseg.regions import Region

if TYPE_CHECKING:  # scoring folders needs no torch: ``volseg evaluate`` stays light
    from volseg.data.layouts import Case
    from volseg.inference import Predictor

__all__ = [
    "Pairing",
    "evaluate_folders",
    "evaluate_volumes",
    "image_files",
    "pair_cases",
    "reference_files",
    "score_case",
]


def image_files(folder: str | Path) -> dict[str, Path]:
    """Case name -> file for every supported image in ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeReadError(f"{folder}: not a folder")
    files = {}
    for path in sorted(folder.iterdir()):
        if is_temp(path):  # a write cut short (e.g. SIGKILL) leaves a hidden temp file
            continue
        if path.is_file() and path.name.lower().endswith(SUPPORTED_SUFFIXES):
            files[strip_suffix(path)] = path
    return files


def reference_files(ref: str | Path, layout: str = "auto") -> dict[str, Path]:
    """Case id -> reference label map, from a folder of label maps or a labelled dataset.

    ``layout``: ``auto`` (detected: a folder of plain images, or a dataset whose cases have no
    label map, such as label maps named ``Case00.mhd``, is a folder of label maps), ``folder``
    (the folder's files, named by file), or a dataset layout of
    :func:`volseg.data.layouts.list_layouts` (its cases' labels, named by case id).

    Raises:
        LayoutError: naming ``ref`` when it cannot be read as that layout or (a forced dataset
            layout) holds no label map.
    """
    path = Path(ref).expanduser()
    chosen = detect_layout(path) if layout == "auto" else layout
    if chosen == "folder" and path.is_dir():
        return image_files(path)
    dataset = find_cases(path, chosen)
    labels = {case.case_id: case.label for case in dataset.cases if case.label is not None}
    if labels:
        return labels
    if layout == "auto" and path.is_dir():
        return image_files(path)
    raise LayoutError(f"{path}: the {dataset.layout} dataset has no label maps to score against")


@dataclass(frozen=True)
class Pairing:
    """Predictions matched with references by case id.

    Attributes:
        pairs: case id (the reference's) -> (prediction file, reference file), sorted by case.
        renamed: the pairs made by dropping a channel suffix (``a_0000`` -> ``a``).
        predictions: the prediction files no reference pairs with.
        references: the case ids of the references no prediction pairs with.
    """

    pairs: dict[str, tuple[Path, Path]]
    renamed: tuple[str, ...]
    predictions: tuple[Path, ...]
    references: tuple[str, ...]


def pair_cases(preds: dict[str, Path], refs: dict[str, Path]) -> Pairing:
    """Pair predictions with references by case id: the same id first, then the same id once a
    channel suffix is dropped from either (:func:`volseg.data.layouts.strip_channel`: a
    ``CASE_0000.nii.gz`` prediction pairs with reference ``CASE``), when that is unambiguous.
    """
    pairs = {case: (preds[case], refs[case]) for case in refs if case in preds}
    left_preds = {case: path for case, path in preds.items() if case not in pairs}
    by_key: dict[str, list[str]] = {}
    for case in left_preds:
        by_key.setdefault(strip_channel(case), []).append(case)
    left_refs = [case for case in refs if case not in pairs]
    ref_keys = [strip_channel(case) for case in left_refs]
    renamed = []
    for case, key in zip(left_refs, ref_keys, strict=True):
        found = by_key.get(key, [])
        if len(found) == 1 and ref_keys.count(key) == 1:
            pairs[case] = (left_preds.pop(found[0]), refs[case])
            renamed.append(case)
    return Pairing(
        dict(sorted(pairs.items())),
        tuple(sorted(renamed)),
        tuple(sorted(left_preds.values())),
        tuple(sorted(case for case in refs if case not in pairs)),
    )


def _listed(items: Sequence[str], shown: int = 10) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _say_pairing(pairing: Pairing, pred_dir: Path, ref: Path, note: Callable[[str], None]) -> None:
    """One line for what paired, one for each kind of file that did not."""
    note(f"paired {len(pairing.pairs)} prediction(s) in {pred_dir} with references in {ref}")
    if pairing.renamed:
        shown = [f"{pairing.pairs[c][0].name} -> {c}" for c in pairing.renamed]
        note(f"paired without the channel suffix: {_listed(shown)}")
    if pairing.predictions:
        names = [p.name for p in pairing.predictions]
        note(f"warning: no reference for prediction(s) {_listed(names)} (not scored)")
    if pairing.references:
        note(f"warning: no prediction for case(s) {_listed(pairing.references)} (not scored)")


def _note(message: str) -> None:
    print(f"volseg: {message}", file=sys.stderr)


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
    layout: str = "auto",
    note: Callable[[str], None] = _note,
    allow_missing: bool = False,
    names: Mapping[int, str] | None = None,
) -> tuple[list[dict[str, float | str]], dict[str, tuple[float, float]], Path]:
    """Score every reference that has a prediction; write per-case rows + mean/std/median to CSV.

    ``ref_dir`` is a folder of label maps or a labelled dataset (``layout``, default detected;
    :func:`reference_files`). Predictions pair with references by case id (:func:`pair_cases`);
    ``note`` is told what paired, which files did not and every warning (``"warning: ..."``;
    default: lines on stderr). Nothing
    pairing is an error; so is a reference without a prediction (a missing case would silently
    leave the mean), unless ``allow_missing`` scores the cases that pair and warns. A
    prediction without a reference is not scored (a warning).

    ``labels=None`` scores every non-zero label found in the predictions or the references
    (none when ``regions`` is given); a label no reference holds is scored (its reference masks
    are empty) and ``note`` is warned which cases predict it.
    ``metrics`` are names from :data:`volseg.metrics.METRICS`; ``convention``, ``empty`` and
    ``lesions`` are passed to :func:`volseg.metrics.evaluate_case`. ``names`` (label value ->
    name) names the columns, ``dice_liver`` for ``dice_1``; ``None`` reads them from a
    ``dataset.json`` in ``ref_dir`` or its parent (MSD ``labelsTr``), else keeps the values.

    Returns:
        The per-case rows (with a ``case`` key), the summary (mean, std) per metric, and the
        CSV path (default ``pred_dir/metrics.csv``).
    """
    preds, refs = image_files(pred_dir), reference_files(ref_dir, layout)
    pairing = pair_cases(preds, refs)
    if not refs:
        raise VolumeReadError(f"{ref_dir}: no reference label map found")
    if not pairing.pairs:
        raise VolumeReadError(f"{pred_dir}: no prediction for case(s) {_listed(sorted(refs))}")
    if pairing.references and not allow_missing:
        raise VolumeReadError(
            f"{pred_dir}: no prediction for case(s) {_listed(pairing.references)} of {ref_dir} "
            f"({len(pairing.pairs)} of {len(refs)} paired; --allow-missing scores those alone)"
        )
    infer_labels = labels is None and regions is None
    if names is None:
        names = names_beside(ref_dir)
    rows: list[dict[str, float | str]] = []
    found: set[int] = set()  # non-zero labels of the references
    predicted: dict[int, list[str]] = {}  # label -> cases whose prediction holds it
    for case, (pred_path, ref_path) in pairing.pairs.items():
        pred, ref = read_volume(pred_path), read_volume(ref_path)
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
            note(
                f"warning: {pred_dir}: label {label} is in the prediction of case(s) "
                f"{', '.join(predicted[label])} but in no reference; scored against empty "
                "references"
            )
        rows = with_every_label(
            rows,
            sorted(found | set(predicted)),
            metrics=metrics,
            tolerance=tolerance,
            empty_distance=empty_distance,
            convention=convention,
            empty=empty,
            lesions=lesions,
            names=names,
        )
    _say_pairing(pairing, Path(pred_dir), Path(ref_dir), note)  # once scored: errors stay 1 line
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
