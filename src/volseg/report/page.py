"""``volseg report``: one self-contained HTML page about a run or a folder of predictions.

Sections: the run's recipe and the summary statistics per metric; the cases to look at first
(outliers of predicted volume or uncertainty); a sortable per-case table, worst first; the
plots (Dice over cases, training curves, learning rate, gradient norms); the NiiVue viewer
(scan, prediction, reference in three planes and 3-D, with opacity and label toggles); and per
case a tri-planar overlay at the slices where prediction and reference disagree most.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from volseg.io import VolumeReadError, read_volume
from volseg.metrics.names import names_beside
from volseg.report import plots
from volseg.report.cases import (
    MANIFEST,
    CaseFiles,
    cases_from_folders,
    cases_from_manifest,
    outliers,
    score_cases,
)
from volseg.report.html import esc, json_script, page, table, write_page
from volseg.report.viewer import (
    GET_NIIVUE,
    MAX_VOXELS,
    find_niivue,
    nifti_base64,
    niivue_script,
    shrink_factor,
    subsample,
)

__all__ = ["Report", "is_run_dir", "write_report"]


@dataclass
class Report:
    """What :func:`write_report` wrote: the page, the table rows and notes for the terminal."""

    path: Path
    rows: list[dict[str, float | str]]
    notes: list[str] = field(default_factory=list)


def is_run_dir(folder: Path) -> bool:
    """A training run directory (``log.csv`` or ``config.yaml``), not a folder of predictions."""
    return (folder / "log.csv").is_file() or (folder / "config.yaml").is_file()


def _recipe(run: Path) -> list[dict[str, object]]:
    """Key facts of a run: network, loss, data, epochs, training time, from its own files."""
    import yaml

    facts: list[dict[str, object]] = []
    if (run / "config.yaml").is_file():
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        model, loss, data = config.get("model", {}), config.get("loss", {}), config.get("data", {})
        train = config.get("train", {})
        facts += [
            {"item": "network", "value": f"{model.get('name')} {model.get('kwargs') or ''}"},
            {"item": "loss", "value": f"{loss.get('name')} {loss.get('kwargs') or ''}"},
            {"item": "data", "value": f"{data.get('root')} (labels {_labels_text(data)})"},
            {"item": "epochs planned", "value": train.get("epochs")},
            {
                "item": "patch, batch",
                "value": f"{train.get('patch_size')}, {train.get('batch_size')}",
            },
        ]
    log = _log(run)
    if log:
        facts.append({"item": "epochs run", "value": int(log[-1].get("epoch", len(log)))})
        seconds = log[-1].get("seconds", math.nan)
        if math.isfinite(seconds):
            facts.append({"item": "training time", "value": f"{seconds / 60:.1f} min"})
        if any(math.isfinite(r.get("val_dice", math.nan)) for r in log):
            best = max(
                r.get("val_dice", -1.0) for r in log if math.isfinite(r.get("val_dice", math.nan))
            )
            facts.append({"item": "best validation Dice", "value": round(best, 4)})
        else:
            facts.append({"item": "validation", "value": "none (no validation set)"})
    return facts


def _labels_text(data: dict[str, Any]) -> str:
    """``0 background, 1 liver`` from a config's ``labels`` and ``label_names``."""
    labels, names = data.get("labels"), data.get("label_names")
    if isinstance(labels, list) and isinstance(names, list) and len(labels) == len(names):
        return ", ".join(f"{v} {n}" for v, n in zip(labels, names, strict=True))
    return str(labels)


def _run_label_names(run: Path) -> dict[int, str]:
    """Label value -> name saved in a run's ``config.yaml`` (``data.label_names``), or ``{}``."""
    import yaml

    if not (run / "config.yaml").is_file():
        return {}
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    data = config.get("data") or {}
    labels, names = data.get("labels"), data.get("label_names")
    if not isinstance(labels, list) or not isinstance(names, list) or len(labels) != len(names):
        return {}
    return {int(v): str(n) for v, n in zip(labels, names, strict=True)}


def _log(run: Path) -> list[dict[str, float]]:
    return plots.read_csv_floats(run / "log.csv") if (run / "log.csv").is_file() else []


def _worst_first(rows: list[dict[str, float | str]]) -> list[dict[str, float | str]]:
    """Lowest mean Dice first; without Dice, highest uncertainty first; else by name."""
    dice = [k for k in (rows[0] if rows else {}) if k.startswith("dice_")]

    def key(row: dict[str, float | str]) -> tuple[float, str]:
        if dice:
            values = [float(row[k]) for k in dice]
            return (float(np.mean(values)) if values else math.nan, str(row["case"]))
        if "uncertainty" in row:
            return (-float(row["uncertainty"]), str(row["case"]))
        return (0.0, str(row["case"]))

    return sorted(rows, key=key)


def _flags(rows: Sequence[dict[str, float | str]]) -> list[str]:
    """Why each case is worth a look first: outlying predicted volume or uncertainty."""
    reasons: list[list[str]] = [[] for _ in rows]
    for column, text in (("pred_ml", "predicted volume"), ("uncertainty", "uncertainty")):
        if rows and all(column in r for r in rows):
            for i, flagged in enumerate(outliers([float(r[column]) for r in rows])):
                if flagged:
                    reasons[i].append(f"{text} outlier")
    return ["; ".join(r) for r in reasons]


def _overlay_uri(case: CaseFiles, row: dict[str, float | str]) -> str | None:
    from volseg.report.overlay import save_overlay_png

    if case.image is None:
        return None
    image = read_volume(case.image)
    pred = read_volume(case.prediction)
    ref = None if case.reference is None else read_volume(case.reference)
    dice = [float(v) for k, v in row.items() if k.startswith("dice_")]
    title = case.case + (f": Dice {np.mean(dice):.3f}" if dice else "")
    with tempfile.TemporaryDirectory(prefix="volseg-report-") as tmp:
        path = save_overlay_png(image, pred, Path(tmp) / "o.png", ref, title, where="disagreement")
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _viewer_data(case: CaseFiles, max_voxels: int) -> dict[str, object]:
    """The case's volumes as base64 gzip NIfTI on the scan's grid (subsampled above the limit)."""
    pred = read_volume(case.prediction)
    factor = shrink_factor(pred.shape, max_voxels)
    item: dict[str, object] = {"factor": factor, "note": ""}
    if factor > 1:
        item["note"] = f"every {factor}th voxel per axis: {math.prod(pred.shape)} voxels"
    item["prediction"] = nifti_base64(subsample(pred, factor), label=True)
    for role, path in (("image", case.image), ("reference", case.reference)):
        item[role] = (
            None
            if path is None
            else nifti_base64(subsample(read_volume(path), factor), label=role != "image")
        )
    return item


def write_report(
    source: str | Path,
    output: str | Path,
    *,
    ref: str | Path | None = None,
    images: str | Path | None = None,
    metrics: Sequence[str] = ("dice", "hd95"),
    tolerance: float = 1.0,
    max_voxels: int = MAX_VOXELS,
    viewer: bool = True,
) -> Report:
    """Write the HTML report of a run directory or a folder of predictions.

    Args:
        source: a run directory (``log.csv``/``config.yaml``; its scored cases listed in
            ``cases.csv``, which ``volseg demo`` writes) or a folder of predicted label maps.
        output: the HTML file, written atomically.
        ref, images: folders of references and scans, paired by case name (prediction
            folders only; a scan may be named ``CASE_0000``).
        metrics, tolerance: as ``volseg evaluate``.
        max_voxels: cases with more voxels are subsampled in the viewer (the page says so).
        viewer: inline the NiiVue viewer when its bundle is found (:func:`find_niivue`).
    """
    source = Path(source)
    if not source.is_dir():
        raise VolumeReadError(f"{source}: not a folder")
    run = is_run_dir(source)
    if run and (ref or images):
        raise ValueError(
            f"{source}: a run directory lists its cases in {MANIFEST}; --ref and "
            "--images are for a folder of predictions"
        )
    if run:
        manifest = source / MANIFEST
        cases = cases_from_manifest(manifest) if manifest.is_file() else []
        names = _run_label_names(source)
    else:
        cases = cases_from_folders(source, ref, images)
        names = names_beside(ref) if ref else {}
    rows = _worst_first(score_cases(cases, metrics, tolerance, names))
    by_name = {c.case: c for c in cases}
    cases = [by_name[str(r["case"])] for r in rows]
    flags = _flags(rows)
    notes: list[str] = []
    bundle = find_niivue() if viewer and cases else None
    if viewer and cases and bundle is None:
        notes.append(
            f"the interactive viewer is left out: NiiVue not found; get it with: {GET_NIIVUE}"
        )

    parts = [
        f'<p class="meta">{"run directory" if run else "predictions"}: {esc(source.resolve())}</p>'
    ]
    if run:
        parts += ["<h2>Recipe</h2>", table(_recipe(source), ["item", "value"])]
    parts.append(_summary(rows))
    flagged = [(r["case"], f) for r, f in zip(rows, flags, strict=True) if f]
    if flagged:
        items = "".join(f"<li><b>{esc(c)}</b>: {esc(f)}</li>" for c, f in flagged)
        parts.append(f'<div class="warn"><b>Look at these first</b><ul>{items}</ul></div>')
    if rows:
        columns = [k for k in rows[0] if k != "case"]
        shown = [{**r, "flag": f} for r, f in zip(rows, flags, strict=True)]
        buttons = [f'<button class="view" data-case="{esc(r["case"])}">view</button>' for r in rows]
        parts += [
            "<h2>Cases</h2>",
            '<p class="note">Worst first; click a header to sort. Volumes in ml; components: '
            "connected components of the predicted foreground (26-connected).</p>",
            table(
                shown,
                ["case", *columns, "flag"],
                table_id="cases",
                sortable=True,
                row_classes=["flagged" if f else "" for f in flags],
                extra=buttons,
            ),
        ]
    parts.append(_plots(source if run else None, rows))
    scripts: list[str] = []
    if cases:
        data: dict[str, Any] = {
            "order": [c.case for c in cases],
            "cases": {c.case: _viewer_data(c, max_voxels) for c in cases},
        }
        shrunk = [f"{c}: {d['note']}" for c, d in data["cases"].items() if d["factor"] != 1]
        parts.append(_viewer_html(bundle is not None, max_voxels, shrunk))
        parts.append(json_script("volseg-data", data))
        if bundle is not None:
            scripts.append(niivue_script(bundle))
        parts.append("<h2>Per case: where prediction and reference disagree most</h2>")
        for case, row in zip(cases, rows, strict=True):
            uri = _overlay_uri(case, row)
            picture = (
                f'<img alt="overlay of {esc(case.case)}" src="{uri}">' if uri else "(no scan given)"
            )
            parts.append(
                f'<div class="overlay"><h3>{esc(case.case)} '
                f'<button class="view" data-case="{esc(case.case)}">open in viewer</button></h3>'
                f"{picture}</div>"
            )
    title = f"volseg report: {source.resolve().name}"
    path = write_page(page(title, "\n".join(parts), scripts), output)
    return Report(path, rows, notes)


def _summary(rows: Sequence[dict[str, float | str]]) -> str:
    from volseg.metrics import aggregate

    if not rows:
        return "<h2>Summary</h2><p>No scored cases.</p>"
    stats: list[dict[str, object]] = [
        {"metric": k, **v, "n": int(v["n"]), "nonfinite": int(v["nonfinite"])}
        for k, v in aggregate(rows).items()
    ]
    return f"<h2>Summary</h2><p>{len(rows)} case(s).</p>" + table(
        stats, ["metric", "mean", "std", "median", "n", "nonfinite"]
    )


def _plots(run: Path | None, rows: Sequence[dict[str, float | str]]) -> str:
    log = _log(run) if run else []
    figures = [
        ("Dice over cases", plots.dice_distribution(rows)),
        ("training curves", plots.training_curves(log)),
        ("learning rate", plots.lr_plot(log)),
        ("gradient norms", plots.grad_norm_plot(run / "grad_norms.csv") if run else None),
    ]
    images = [f'<img alt="{esc(name)}" src="{uri}">' for name, uri in figures if uri]
    return '<h2>Plots</h2><div class="plots">' + "".join(images) + "</div>" if images else ""


def _viewer_html(available: bool, max_voxels: int, shrunk: Sequence[str]) -> str:
    options = [(3, "three planes + 3-D"), (0, "axial"), (1, "coronal"), (2, "sagittal"), (4, "3-D")]
    select = "".join(f'<option value="{v}">{esc(t)}</option>' for v, t in options)
    note = (
        f"Volumes are on each scan's own grid (geometry as on disk); a case above {max_voxels} "
        "voxels is shown with every n-th voxel per axis. "
        + ("Subsampled here: " + "; ".join(shrunk) + "." if shrunk else "No case was subsampled.")
    )
    missing = (
        ""
        if available
        else (
            f'<p class="warn">NiiVue was not found when this file was written; the viewer is left '
            f"out. Get it with <code>{esc(GET_NIIVUE)}</code> and write the report again.</p>"
        )
    )
    toggles = "".join(
        f'<label><input type="checkbox" id="show-{role}" checked> '
        f'<span class="swatch" style="background:{colour}"></span>'
        f'<span id="name-{role}">{role}</span></label>'
        for role, colour in (("prediction", "#f00"), ("reference", "#0f0"))
    )
    return (
        '<h2 id="viewer-section">Viewer</h2>'
        + missing
        + f'<p class="note">{esc(note)}</p>'
        + '<p><b id="viewer-case"></b> <span id="viewer-status"></span></p>'
        + '<div id="viewer-wrap"><div id="viewer-box"><canvas id="viewer"></canvas></div>'
        + f'<div id="viewer-controls">{toggles}'
        + '<label>label opacity <input type="range" id="opacity" min="0" max="100" value="50">'
        + f'</label><label>view <select id="layout">{select}</select></label>'
        + "</div></div>"
    )
