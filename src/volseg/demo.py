"""The bundled demo: brain extraction (T1 head with skull -> brain mask) learnt from Colin27.

``run_demo(run_dir)`` trains V-Net on the single bundled Colin27 scan with strong augmentation,
then segments held-out heads it never saw (Colin27 deformed, re-oriented, re-sampled and with
other intensities, the way another scanner would show a head), writes the predicted masks
(NIfTI, on each input's own grid), a metrics CSV and a PNG overlay per case, lists the cases in
``run_dir/cases.csv`` and ends with the HTML report ``run_dir/report.html`` (``volseg report``),
printing where everything is. The trained run stays in ``run_dir`` for ``volseg predict -m``.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

from volseg._atomic import atomic_path
from volseg.config import load_config

__all__ = ["DEMO_DATA", "run_demo"]

DEMO_DATA = Path(__file__).parent / "demo_data"


def _write_manifest(run_dir: Path) -> Path:
    """A manifest listing the bundled training scan by absolute path."""
    train = DEMO_DATA / "train"
    manifest = run_dir / "demo_train.csv"
    manifest.write_text(
        "case_id,image,label\n"
        f"colin27,{train / 'colin27_t1.nii.gz'},{train / 'colin27_brain.nii.gz'}\n",
        encoding="utf-8",
    )
    return manifest


def run_demo(run_dir: Path, minutes: float | None = None, quiet: bool = False) -> Path:
    """Train, predict the held-out heads, evaluate, draw overlays; returns the metrics CSV."""
    from volseg.evaluation import evaluate_volumes
    from volseg.inference import Predictor
    from volseg.io import read_volume, write_volume
    from volseg.metrics import summarize, write_metrics_csv
    from volseg.report import format_table, save_overlay_png
    from volseg.report.cases import MANIFEST
    from volseg.report.page import write_report
    from volseg.training.trainer import train

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(DEMO_DATA / "demo.yaml")
    train_cfg = config.train
    if minutes is not None:
        stopping = dataclasses.replace(train_cfg.stopping, max_minutes=minutes)
        train_cfg = dataclasses.replace(train_cfg, stopping=stopping)
    config = dataclasses.replace(
        config,
        run_dir=str(run_dir),
        train=train_cfg,
        data=dataclasses.replace(config.data, root=str(_write_manifest(run_dir))),
    )
    start = time.monotonic()
    result = train(config, progress=not quiet)
    train_seconds = time.monotonic() - start

    predictor = Predictor.from_run(run_dir)
    out_dir = run_dir / "heldout"
    rows: list[dict[str, float | str]] = []
    listed = [["case", "image", "prediction", "reference"]]
    for image_path in sorted((DEMO_DATA / "heldout").glob("*_t1.nii.gz")):
        case = image_path.name.removesuffix("_t1.nii.gz")
        image = read_volume(image_path)
        reference = read_volume(image_path.with_name(f"{case}_brain.nii.gz"))
        t0 = time.monotonic()
        prediction = predictor.predict(image)
        seconds = time.monotonic() - t0
        write_volume(prediction, out_dir / f"{case}_pred.nii.gz")
        reference_path = image_path.with_name(f"{case}_brain.nii.gz")
        listed.append([case, str(image_path), f"heldout/{case}_pred.nii.gz", str(reference_path)])
        scores = evaluate_volumes(prediction, reference, labels=[1])
        rows.append({"case": case, **scores, "seconds": seconds})
        save_overlay_png(
            image,
            prediction,
            out_dir / f"{case}.png",
            reference=reference,
            title=f"{case}: Dice {scores['dice_1']:.3f}",
        )
    summary = summarize([{k: float(v) for k, v in r.items() if k != "case"} for r in rows])
    csv_path = out_dir / "metrics.csv"
    write_metrics_csv(rows, summary, csv_path)
    with (
        atomic_path(run_dir / MANIFEST) as tmp,
        tmp.open("w", newline="", encoding="utf-8") as handle,
    ):
        csv.writer(handle).writerows(listed)
    report = write_report(run_dir, run_dir / "report.html")
    if not quiet:
        print(format_table(rows, ["case", "dice_1", "hd95_1", "seconds"]))
        dice_mean, dice_std = summary["dice_1"]
        print(
            f"\nheld-out Dice {dice_mean:.3f} +/- {dice_std:.3f}; trained {result.epochs} "
            f"epochs in {train_seconds / 60:.1f} min"
        )
        print(f"model:       {run_dir} (volseg predict -m {run_dir} -i HEAD.nii.gz -o MASK.nii.gz)")
        print(f"predictions: {out_dir}/*_pred.nii.gz")
        print(f"overlays:    {out_dir}/*.png")
        print(f"metrics:     {csv_path}")
        for note in report.notes:
            print(f"note: {note}")
        print(f"report:      {report.path}")
    return csv_path
