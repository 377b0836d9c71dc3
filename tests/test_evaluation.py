"""Folder evaluation and ``volseg evaluate``: labels, BraTS regions, metric choice, CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from volseg.cli import main
from volseg.evaluation import evaluate_folders, evaluate_volumes
from volseg.io import Volume, VolumeReadError, write_volume

SPACING_XYZ = (0.8, 1.2, 2.5)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # a 90 degree rotation about z


def _brats_pair() -> tuple[Volume, Volume]:
    ref = np.zeros((1, 6, 8, 8), dtype=np.uint8)  # (C, Z, Y, X)
    ref[0, 1:5, 1:7, 1:7] = 2  # oedema
    ref[0, 2:4, 3:5, 3:5] = 1  # necrosis
    ref[0, 2, 3, 3] = 4  # enhancing
    pred = ref.copy()
    pred[0, 1, 1:7, 1:7] = 0  # one oedema slice missed (1 of 4 WT z-slices)
    return (
        Volume(pred, spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION),
        Volume(ref, spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION),
    )


def test_evaluate_volumes_labels_and_regions() -> None:
    pred, ref = _brats_pair()
    row = evaluate_volumes(pred, ref)
    assert list(row) == ["dice_1", "hd95_1", "dice_2", "hd95_2", "dice_4", "hd95_4"]
    assert row["dice_1"] == 1.0 and row["dice_4"] == 1.0
    regions = evaluate_volumes(pred, ref, regions="brats", metrics=["dice", "hd"])
    assert list(regions) == ["dice_WT", "hd_WT", "dice_TC", "hd_TC", "dice_ET", "hd_ET"]
    # WT: ref 4*36 = 144 voxels, pred 108, all shared -> 2*108/252
    assert regions["dice_WT"] == pytest.approx(216 / 252)
    # the missed slice is one z step away: z spacing is the ITK z entry, 2.5 mm
    assert regions["hd_WT"] == pytest.approx(2.5)
    assert regions["dice_TC"] == 1.0 and regions["hd_ET"] == 0.0


def test_grid_mismatch_is_an_error() -> None:
    pred, ref = _brats_pair()
    moved = Volume(pred.array, spacing=SPACING_XYZ, origin=(0.0, 2.0, 3.0), direction=DIRECTION)
    with pytest.raises(VolumeReadError, match="grid differs"):
        evaluate_volumes(moved, ref)


def test_folders_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, ref = _brats_pair()
    for case in ("a", "b"):
        write_volume(pred, tmp_path / "pred" / f"{case}.nii.gz")
        write_volume(ref, tmp_path / "ref" / f"{case}.nii.gz")
    rows, summary, _ = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", regions="brats", metrics=["dice", "assd"]
    )
    assert [r["case"] for r in rows] == ["a", "b"]
    assert summary["dice_WT"] == pytest.approx((216 / 252, 0.0))
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    out_csv = tmp_path / "m.csv"
    code = main([*args, "--regions", "brats", "--metrics", "dice", "recall", "-o", str(out_csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert "median" in out and "recall_ET" in out
    with out_csv.open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == [
        "case",
        "dice_WT",
        "recall_WT",
        "dice_TC",
        "recall_TC",
        "dice_ET",
        "recall_ET",
    ]
    assert [r[0] for r in table[1:]] == ["a", "b", "mean", "std", "median"]
    assert float(table[-1][1]) == pytest.approx(216 / 252, rel=1e-5)
    assert main([*args, "--metrics", "dice", "volume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--metrics: unknown volume" in err[0]


def test_empty_prediction_counts_as_nonfinite(tmp_path: Path) -> None:
    pred, ref = _brats_pair()
    empty = Volume(
        np.zeros_like(pred.array), spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION
    )
    write_volume(empty, tmp_path / "pred" / "a.nii.gz")
    write_volume(ref, tmp_path / "ref" / "a.nii.gz")
    rows, summary, _ = evaluate_folders(tmp_path / "pred", tmp_path / "ref", labels=[4])
    assert rows[0]["dice_4"] == 0.0 and rows[0]["hd95_4"] == math.inf
    assert summary["hd95_4_nonfinite"] == (1.0, 1.0)
    rows, _, _ = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", labels=[4], empty_distance=373.13
    )
    assert rows[0]["hd95_4"] == 373.13


def test_inferred_labels_read_each_file_once_and_match_explicit_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, ref = _brats_pair()

    def volume(array: np.ndarray) -> Volume:
        return Volume(array, spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION)

    only_oedema = np.where(ref.array == 2, 2, 0).astype(np.uint8)
    stray = pred.array.copy()
    stray[0, 0, 0, 0] = 7  # a label no reference holds: scored against empty references
    empty = np.zeros_like(ref.array)
    cases = {
        "a": (volume(stray), ref),
        "b": (volume(only_oedema), volume(only_oedema)),
        "c": (volume(empty), volume(empty)),
    }
    for case, (p, r) in cases.items():
        write_volume(p, tmp_path / "pred" / f"{case}.nii.gz")
        write_volume(r, tmp_path / "ref" / f"{case}.nii.gz")
    import volseg.evaluation as evaluation

    reads: list[str] = []
    real_read = evaluation.read_volume
    monkeypatch.setattr(
        evaluation, "read_volume", lambda path: reads.append(str(path)) or real_read(path)
    )
    notes: list[str] = []
    inferred, _, _ = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", metrics=["dice", "hd"], note=notes.append
    )
    warnings = [n for n in notes if n.startswith("warning: ")]
    assert len(reads) == len(set(reads)) == 6
    explicit, _, _ = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", labels=[1, 2, 4, 7], metrics=["dice", "hd"]
    )
    assert inferred == explicit
    keys = ["dice_1", "hd_1", "dice_2", "hd_2", "dice_4", "hd_4", "dice_7", "hd_7"]
    assert list(inferred[1]) == ["case", *keys]
    assert len(warnings) == 1 and "label 7" in warnings[0] and "case(s) a " in warnings[0]
    assert inferred[1]["dice_1"] == 1.0 and inferred[2]["dice_2"] == 1.0  # empty in both


def test_label_only_in_prediction_is_scored_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: a label only a prediction holds is scored (Dice 0 against an empty reference)
    and reported on stderr; before, the label list came from the references alone and such a
    label was silently left out."""
    pred, ref = _brats_pair()
    extra = pred.array.copy()
    extra[0, 0, 0, 0] = 3  # a label no reference holds
    pred = Volume(extra, spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION)
    assert evaluate_volumes(pred, ref, metrics=["dice"])["dice_3"] == 0.0
    write_volume(pred, tmp_path / "pred" / "a.nii.gz")
    write_volume(ref, tmp_path / "ref" / "a.nii.gz")
    rows, summary, _ = evaluate_folders(tmp_path / "pred", tmp_path / "ref", metrics=["dice"])
    assert rows[0]["dice_3"] == 0.0 and summary["dice_3"] == (0.0, 0.0)
    err = capsys.readouterr().err
    assert "label 3" in err and "no reference" in err
    code = main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")])
    assert code == 0
    captured = capsys.readouterr()
    assert "dice_3" in captured.out and "label 3" in captured.err


def test_cli_lesion_metrics_conventions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, ref = _brats_pair()
    write_volume(pred, tmp_path / "pred" / "a.nii.gz")
    write_volume(ref, tmp_path / "ref" / "a.nii.gz")
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref")]
    metrics = ["--metrics", "lesion_dice", "lesion_f1", "surface_dice", "hd95"]
    out_csv = tmp_path / "m.csv"
    assert main([*args, *metrics, "--regions", "brats", "--convention", "surfel"]) == 0
    out = capsys.readouterr().out
    assert "lesion_dice_WT" in out and "lesion_f1_ET" in out
    rows, _, _ = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", regions="brats", metrics=["lesion_f1"]
    )
    assert rows[0]["lesion_f1_WT"] == 1.0  # one lesion, found
    empty = Volume(
        np.zeros_like(pred.array), spacing=SPACING_XYZ, origin=(1.0, 2.0, 3.0), direction=DIRECTION
    )
    write_volume(empty, tmp_path / "pred" / "b.nii.gz")
    write_volume(empty, tmp_path / "ref" / "b.nii.gz")
    code = main([*args, "--labels", "4", "--metrics", "dice", "--empty", "nan", "-o", str(out_csv)])
    assert code == 0
    with out_csv.open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[2] == ["b", "nan"] and float(table[3][1]) == 1.0  # mean skips b's NaN
    assert "1" in capsys.readouterr().out.split("nonfinite")[1]
    assert main([*args, "--metrics", "lesion_dice", "--lesion-dilation", "-1"]) == 2
