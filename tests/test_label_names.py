"""Label names in metric columns (``dice_hippocampus_left``), from dataset.json to every table."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from volseg.cli import main
from volseg.config import (
    Config,
    ConfigError,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from volseg.data.synthetic import make_phantom
from volseg.evaluation import evaluate_folders, score_case
from volseg.inference import Predictor
from volseg.io import read_volume, write_volume
from volseg.metrics import aggregate, dice, evaluate_case, summarize
from volseg.metrics.names import (
    dataset_label_names,
    label_keys,
    names_beside,
    read_label_names,
    safe_name,
)
from volseg.report import format_table
from volseg.report.cases import cases_from_folders, score_cases

# MSD v1 labels, with a name that needs cleaning and one label left unnamed in the keys' test
MSD_LABELS = {"0": "background", "1": "hippocampus_left", "2": "Hippocampus Right"}
LEFT, RIGHT = "hippocampus_left", "hippocampus_right"


def write_msd(folder: Path, cases: int = 3) -> Path:
    """A tiny nnU-Net v2-style MSD dataset (labels 0, 1, 2) whose dataset.json names its labels."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for i in range(cases):
        image, label = make_phantom(seed=i, nested=True)
        write_volume(image, folder / "imagesTr" / f"case{i:02d}_0000.nii.gz")
        write_volume(label, folder / "labelsTr" / f"case{i:02d}.nii.gz")
    meta = {
        "name": "tiny",
        "channel_names": {"0": "MRI"},
        "labels": MSD_LABELS,
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def tiny_config(root: Path, run_dir: Path, **data: object) -> Config:
    return Config(
        data=DataConfig(root=str(root), **data),  # type: ignore[arg-type]
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


# --- the names and their keys ------------------------------------------------------------------


def test_safe_name_and_keys_fall_back_to_the_value() -> None:
    assert safe_name("Hippocampus Right") == "hippocampus_right"
    assert safe_name("  NCR/NET (core) ") == "ncr_net_core"
    assert safe_name("***") == ""
    keys = label_keys([1, 2, 3, 4, 5], {1: "Left lobe", 2: "left-lobe", 3: "!!", 4: "5"})
    # 2 collides with 1, 3 has nothing safe, 4's name is another label's value: all fall back
    assert keys == {1: "left_lobe", 2: "2", 3: "3", 4: "4", 5: "5"}
    assert label_keys([1, 2], None) == {1: "1", 2: "2"}


def test_read_label_names_msd_v1_v2_manifest_and_brats(tmp_path: Path) -> None:
    v1, v2, manifest = tmp_path / "v1.json", tmp_path / "v2.json", tmp_path / "m.json"
    v1.write_text(json.dumps({"labels": MSD_LABELS}), encoding="utf-8")
    v2.write_text(
        json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2, "all": [1, 2]}}),
        encoding="utf-8",
    )
    manifest.write_text(json.dumps({"cases": [], "label_names": {"1": "lesion"}}), "utf-8")
    assert read_label_names(v1) == {0: "background", 1: LEFT, 2: "Hippocampus Right"}
    assert read_label_names(v2) == {0: "background", 1: "liver", 2: "tumour"}  # region skipped
    assert read_label_names(manifest) == {1: "lesion"}
    assert dataset_label_names(tmp_path, "brats", (0, 1, 2, 4)) == {
        1: "necrotic_core",
        2: "edema",
        4: "enhancing_tumor",
    }
    assert dataset_label_names(tmp_path / "nothing.csv", "manifest", (0, 1)) == {}
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json: unreadable label names"):
        read_label_names(tmp_path / "bad.json")


def test_evaluate_case_names_labels_and_keeps_regions() -> None:
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[:2], ref[2:] = 1, 4
    pred = ref.copy()
    pred[0] = 0
    row = evaluate_case(
        pred, ref, (1.0, 1.0, 1.0), [1, 4], metrics=("dice",), regions="brats",
        names={1: "Necrotic core", 4: "enhancing tumor"},
    )  # fmt: skip
    assert list(row) == ["dice_necrotic_core", "dice_enhancing_tumor", "dice_WT", "dice_TC",
                         "dice_ET"]  # fmt: skip
    assert row["dice_necrotic_core"] == pytest.approx(dice(pred == 1, ref == 1))


def test_config_label_names_must_match_labels() -> None:
    with pytest.raises(ConfigError, match="label_names: 2 name"):
        DataConfig(labels=(0, 1, 2), label_names=("background", "liver"))


# --- through a run: train -> evaluate, score_case, report, cv ------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-iteration run on the MSD dataset: (dataset folder, run directory)."""
    from volseg.training.trainer import train

    base = tmp_path_factory.mktemp("names")
    root = write_msd(base / "msd")
    run = base / "run"
    train(tiny_config(root, run, val_cases=("case02",)), progress=False)
    return root, run


def test_run_keeps_the_names_and_scores_by_them(trained: tuple[Path, Path]) -> None:
    root, run = trained
    config = load_config(run / "config.yaml")
    assert config.data.labels == (0, 1, 2)
    assert config.data.label_names == ("background", LEFT, "Hippocampus Right")
    predictor = Predictor.from_run(run)
    assert predictor.config.data.label_names == config.data.label_names  # from the checkpoint
    from volseg.data.layouts import find_cases

    case = find_cases(root).cases[0]
    scores = score_case(predictor, case, ("dice", "hd95"))
    assert list(scores) == ["dice", f"dice_{LEFT}", f"dice_{RIGHT}", "hd95", f"hd95_{LEFT}",
                            f"hd95_{RIGHT}"]  # fmt: skip
    pred = predictor.predict(list(case.images))
    ref = read_volume(case.label or "")
    assert scores[f"dice_{RIGHT}"] == pytest.approx(dice(pred.array == 2, ref.array == 2))


def test_evaluate_cli_names_columns_from_dataset_json(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    preds = tmp_path / "preds"
    predictor = Predictor.from_run(run)
    for image in sorted((root / "imagesTr").iterdir()):
        case = image.name.removesuffix("_0000.nii.gz")
        predictor.predict_file([image], preds / f"{case}.nii.gz")
    # the dataset.json beside labelsTr names the columns
    assert main(["evaluate", "--pred", str(preds), "--ref", str(root / "labelsTr")]) == 0
    out = capsys.readouterr().out
    assert f"dice_{LEFT}" in out and f"hd95_{RIGHT}" in out and "dice_1" not in out
    with (preds / "metrics.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["case", f"dice_{LEFT}", f"hd95_{LEFT}", f"dice_{RIGHT}", f"hd95_{RIGHT}"]
    # references elsewhere: names from --labels dataset.json; without it, the values
    refs = tmp_path / "refs"
    shutil.copytree(root / "labelsTr", refs)
    rows, _, _ = evaluate_folders(preds, refs, output=tmp_path / "plain.csv")
    assert "dice_1" in rows[0] and f"dice_{LEFT}" not in rows[0]
    argv = ["evaluate", "--pred", str(preds), "--ref", str(refs), "-o", str(tmp_path / "m.csv")]
    assert main([*argv, "--labels", str(root / "dataset.json")]) == 0
    assert f"dice_{LEFT}" in capsys.readouterr().out
    assert names_beside(refs) == {}


def test_report_names_columns(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run = trained
    preds = tmp_path / "preds"
    Predictor.from_run(run).predict_file(
        [root / "imagesTr" / "case00_0000.nii.gz"], preds / "case00.nii.gz"
    )
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(root / "labelsTr" / "case00.nii.gz", refs)
    cases = cases_from_folders(preds, refs, None)
    rows = score_cases(cases, ("dice",), names=read_label_names(root / "dataset.json"))
    assert f"dice_{LEFT}" in rows[0] and f"dice_{RIGHT}" in rows[0]


def test_report_of_a_run_uses_its_saved_names(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from volseg.report.page import write_report

    root, run = trained
    report_run = tmp_path / "run"
    shutil.copytree(run, report_run)
    pred = report_run / "case00_pred.nii.gz"
    Predictor.from_run(run).predict_file([root / "imagesTr" / "case00_0000.nii.gz"], pred)
    (report_run / "cases.csv").write_text(
        f"case,prediction,reference\ncase00,{pred.name},{root / 'labelsTr' / 'case00.nii.gz'}\n",
        encoding="utf-8",
    )
    report = write_report(report_run, tmp_path / "report.html", viewer=False)
    assert f"dice_{LEFT}" in report.rows[0] and f"hd95_{RIGHT}" in report.rows[0]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "1 hippocampus_left, 2 Hippocampus Right" in page  # the recipe names the labels


def test_cv_summary_carries_every_metric_by_name(tmp_path: Path) -> None:
    from volseg.crossval import CV_METRICS, cross_validate

    root = write_msd(tmp_path / "msd", cases=3)
    result = cross_validate(tiny_config(root, tmp_path / "cv"), folds=2, progress=False)
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text(encoding="utf-8"))
    for metric in CV_METRICS:
        for key in (metric, f"{metric}_{LEFT}", f"{metric}_{RIGHT}"):
            assert key in summary["pooled"] and key in summary["pooled_stats"]
            assert all(key in fold for fold in summary["folds"])
    assert summary["cases"] == 3 and summary["pooled_stats"]["dice"]["n"] == 3
    assert isinstance(summary["pooled_stats"]["dice"]["n"], int)
    with (tmp_path / "cv" / "metrics.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    hd = [float(r[f"hd95_{LEFT}"]) for r in rows]
    finite = [v for v in hd if math.isfinite(v)]
    expected = float(np.mean(finite)) if finite else None
    assert summary["pooled"][f"hd95_{LEFT}"] == (
        pytest.approx(expected) if expected is not None else None
    )
    assert result.pooled_stats[f"assd_{RIGHT}"]["nonfinite"] == len(hd) - len(finite)


def test_cv_cli_prints_a_table_of_every_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_msd(tmp_path / "msd", cases=2)
    dump_config(tiny_config(root, tmp_path / "cv"), tmp_path / "cv.yaml")
    assert main(["cv", str(tmp_path / "cv.yaml"), "--folds", "2", "-q"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["metric", "fold_0", "fold_1", "mean", "std", "n", "nonfinite"]
    line = next(x for x in out.splitlines() if x.startswith(f"assd_{LEFT} "))
    n, nonfinite = line.split()[-2:]
    assert int(n) + int(nonfinite) == 2  # counts print as integers


# --- counts print as integers -------------------------------------------------------------------


def test_counts_print_as_integers() -> None:
    rows = [
        {"case": "a", "dice_1": 1.0, "lesion_count_diff_1": 2.0},
        {"case": "b", "dice_1": 0.5, "lesion_count_diff_1": 0.0},
    ]
    table = format_table(rows, ["case", "dice_1", "lesion_count_diff_1"]).splitlines()
    assert table[2].split() == ["a", "1.0000", "2"]
    stats = aggregate(rows)["dice_1"]
    assert stats["n"] == 2 and isinstance(stats["n"], int) and isinstance(stats["nonfinite"], int)
    text = format_table([{"metric": "dice_1", **stats}], ["metric", "mean", "n", "nonfinite"])
    assert text.splitlines()[2].split() == ["dice_1", "0.7500", "2", "0"]
    # a count column holding a fraction keeps its decimals
    half = format_table([{"n": 1.5}], ["n"]).splitlines()[2].strip()
    assert half == "1.5000"
    summary = summarize([{"hd95_1": 1.0}, {"hd95_1": math.inf}])
    assert summary["hd95_1_nonfinite"] == (1, 2)
    assert all(isinstance(v, int) for v in summary["hd95_1_nonfinite"])


def test_html_tables_write_counts_as_integers() -> None:
    from volseg.report.html import table

    rows = [{"case": "a", "dice_1": 1.0, "lesion_count_diff_1": 2.0, "components": 3}]
    html = table(rows, ["case", "dice_1", "lesion_count_diff_1", "components"])
    assert ">1.0000</td>" in html and ">2</td>" in html and ">3</td>" in html


def test_evaluate_labels_argument_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", "--pred", str(tmp_path), "--ref", str(tmp_path), "--labels", "1", "x"]
    assert main(argv) == 2
    assert "--labels 1 x: expected integers or one .json file" in capsys.readouterr().err
    assert main([*argv[:-2], str(tmp_path / "missing.json")]) == 2
    assert "missing.json: unreadable label names" in capsys.readouterr().err
