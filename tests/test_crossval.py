"""``volseg cv``: deterministic splits, one run per fold, per-fold and pooled metrics, ensemble."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from volseg.cli import main
from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    dump_config,
)
from volseg.crossval import ensemble_predictor
from volseg.data.splits import kfold_splits
from volseg.data.synthetic import write_phantom_dataset
from volseg.inference import Predictor
from volseg.io import read_volume
from volseg.metrics import dice


def test_kfold_splits_are_deterministic_disjoint_and_cover() -> None:
    ids = [f"c{i}" for i in range(7)]
    splits = kfold_splits(ids, 3, seed=5)
    assert splits == kfold_splits(list(reversed(ids)), 3, seed=5)  # order of ids is irrelevant
    vals = [set(s["val"]) for s in splits]
    assert sorted(len(v) for v in vals) == [2, 2, 3]
    assert set().union(*vals) == set(ids) and sum(map(len, vals)) == 7
    for s in splits:
        assert set(s["train"]) == set(ids) - set(s["val"])
    with pytest.raises(ValueError, match="between 2 and the number of cases"):
        kfold_splits(ids, 8, seed=0)


def test_cv_two_folds_metrics_and_ensemble(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path / "data", cases=3, nested=True)
    config = Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=None),
        run_dir=str(tmp_path / "cv"),
    )
    dump_config(config, tmp_path / "cv.yaml")
    image = tmp_path / "data" / "case00_0000.nii.gz"
    out = tmp_path / "ensemble.nii.gz"
    argv = ["cv", str(tmp_path / "cv.yaml"), "--folds", "2", "-q"]
    assert main([*argv, "--predict", str(image), "-o", str(out)]) == 0
    cv = tmp_path / "cv"

    splits = json.loads((cv / "splits.json").read_text(encoding="utf-8"))
    assert [s["fold"] for s in splits] == [0, 1]
    assert sorted(i for s in splits for i in s["val"]) == ["case00", "case01", "case02"]

    rows = list(csv.DictReader((cv / "metrics.csv").open(encoding="utf-8")))
    assert sorted(r["case"] for r in rows) == ["case00", "case01", "case02"]
    # a row's Dice is recomputable from the fold's own prediction of that case
    row = rows[0]
    fold_dir = cv / f"fold_{row['fold']}"
    pred = Predictor.from_run(fold_dir).predict([tmp_path / "data" / f"{row['case']}_0000.nii.gz"])
    ref = read_volume(tmp_path / "data" / f"{row['case']}_label.nii.gz")
    assert float(row["dice_1"]) == pytest.approx(dice(pred.array == 1, ref.array == 1))

    summary = json.loads((cv / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["folds"]) == 2 and summary["cases"] == 3
    pooled = np.mean([float(r["dice_1"]) for r in rows])
    assert summary["pooled"]["dice_1"] == pytest.approx(pooled)
    for fold in summary["folds"]:
        mine = [float(r["dice_2"]) for r in rows if int(r["fold"]) == fold["fold"]]
        assert fold["dice_2"] == pytest.approx(np.mean(mine))

    # the ensemble averages the two folds' probabilities and keeps the scan's geometry
    written, scan = read_volume(out), read_volume(image)
    assert written.shape == scan.shape and written.spacing == pytest.approx(scan.spacing)
    folds = [cv / "fold_0", cv / "fold_1"]
    probs = ensemble_predictor(folds).predict_probabilities(scan).array
    each = [Predictor.from_run(f).predict_probabilities(scan).array for f in folds]
    np.testing.assert_allclose(probs, (each[0] + each[1]) / 2, atol=1e-5)

    # a second call reuses the splits, skips the finished folds and scores what it is asked
    stamp = (cv / "fold_0" / "checkpoint_last.pt").stat().st_mtime_ns
    assert main([*argv, "--metrics", "dice", "surface_dice"]) == 0
    assert (cv / "fold_0" / "checkpoint_last.pt").stat().st_mtime_ns == stamp
    assert json.loads((cv / "splits.json").read_text(encoding="utf-8")) == splits
    columns = set(next(csv.DictReader((cv / "metrics.csv").open(encoding="utf-8"))))
    assert {"dice_1", "surface_dice_1"} <= columns and "hd95_1" not in columns
    assert main([*argv, "--metrics", "dise"]) == 2  # one-line error, nothing trained
