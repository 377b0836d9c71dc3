"""``volseg report``: the per-case numbers, the self-contained page and its inlined volumes."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from volseg.cli import main
from volseg.evaluation import evaluate_folders
from volseg.report.cases import cases_from_folders, outliers, score_cases
from volseg.report.overlay import disagreement_centre
from volseg.report.page import write_report
from volseg.report.plots import training_curves
from volseg.report.viewer import NIIVUE_MARK, NIIVUE_VERSION, find_niivue, shrink_factor

ROOT = Path(__file__).resolve().parents[2]
# any external reference in an attribute or an import
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*https?:|import\s*\(?\s*["']https?:""", re.I)


def _data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="volseg-data">(.*?)</script>', page)
    assert match
    return json.loads(match.group(1))


def _decode(b64: str, tmp: Path) -> sitk.Image:
    path = tmp / "decoded.nii.gz"
    path.write_bytes(base64.b64decode(b64))
    return sitk.ReadImage(str(path))


def test_rows_hold_what_evaluate_computes_plus_volumes_and_components(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    images, refs, preds = case_folders
    rows = score_cases(cases_from_folders(preds, refs, images))
    expected, _, _ = evaluate_folders(preds, refs, output=tmp_path / "m.csv")
    assert [r["case"] for r in rows] == [r["case"] for r in expected]
    for row, ref_row in zip(rows, expected, strict=True):
        metrics = {k: v for k, v in row.items() if k not in ("pred_ml", "ref_ml", "components")}
        assert metrics == ref_row
        # independent references: SimpleITK's voxel count x spacing, and its fully connected
        # component labelling
        pred = sitk.ReadImage(str(preds / f"{row['case']}.nii.gz"))
        ref = sitk.ReadImage(str(refs / f"{row['case']}.nii.gz"))
        for image, key in ((pred, "pred_ml"), (ref, "ref_ml")):
            count = int(np.count_nonzero(sitk.GetArrayFromImage(image)))
            assert row[key] == pytest.approx(count * np.prod(image.GetSpacing()) / 1000)
        components = sitk.ConnectedComponent(pred != 0, True)
        assert row["components"] == int(sitk.GetArrayFromImage(components).max())
    assert rows[-1]["components"] == 2 and rows[0]["components"] == 1  # the stray blob


def test_page_is_one_self_contained_file_worst_first(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    images, refs, preds = case_folders
    out = tmp_path / "r.html"
    report = write_report(preds, out, ref=refs, images=images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # nothing else written
    page = out.read_text(encoding="utf-8")
    assert not EXTERNAL.search(page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    dice = [np.mean([float(v) for k, v in r.items() if k.startswith("dice_")]) for r in report.rows]
    assert dice == sorted(dice)  # worst first
    table = page[page.index('<table id="cases"') :]
    table = table[: table.index("</table>")]
    order = re.findall(r'data-case="([^"]+)"', table)
    assert order == [r["case"] for r in report.rows]
    for column in ("dice_1", "hd95_2", "pred_ml", "ref_ml", "components"):
        assert f"<th>{column}</th>" in table
    assert page.count('src="data:image/png;base64,') >= len(report.rows) + 1  # overlays + plots
    assert (NIIVUE_MARK in page) == (find_niivue() is not None)


def test_viewer_volumes_keep_the_geometry_on_disk(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    images, refs, preds = case_folders
    out = write_report(preds, tmp_path / "r.html", ref=refs, images=images, viewer=False).path
    data = _data(out.read_text(encoding="utf-8"))
    assert sorted(data["order"]) == [f"case{i}" for i in range(5)]
    item = data["cases"]["case3"]
    assert item["factor"] == 1
    for role, path in (
        ("image", images / "case3_0000.nii.gz"),
        ("prediction", preds / "case3.nii.gz"),
        ("reference", refs / "case3.nii.gz"),
    ):
        disk, shown = sitk.ReadImage(str(path)), _decode(item[role], tmp_path)
        assert shown.GetSize() == disk.GetSize()
        assert shown.GetSpacing() == pytest.approx(disk.GetSpacing(), abs=1e-5)
        assert shown.GetOrigin() == pytest.approx(disk.GetOrigin(), abs=1e-4)
        assert shown.GetDirection() == pytest.approx(disk.GetDirection(), abs=1e-5)
        np.testing.assert_allclose(
            sitk.GetArrayFromImage(shown), sitk.GetArrayFromImage(disk), rtol=1e-6
        )


def test_large_cases_are_subsampled_and_the_page_says_so(
    case_folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    images, refs, preds = case_folders
    out = write_report(preds, tmp_path / "r.html", ref=refs, images=images, max_voxels=1000)
    page = out.path.read_text(encoding="utf-8")
    item = _data(page)["cases"]["case0"]
    # step 2 leaves 10*12*14 = 1680 voxels, step 3 leaves 7*8*10 = 560 <= 1000
    assert item["factor"] == shrink_factor((20, 24, 28), 1000) == 3
    assert "Subsampled here: case" in page and "every 3th voxel per axis" in page
    disk = sitk.ReadImage(str(preds / "case0.nii.gz"))
    shown = _decode(item["prediction"], tmp_path)
    assert shown.GetSize() == (10, 8, 7)
    assert shown.GetSpacing() == pytest.approx([3 * s for s in disk.GetSpacing()], abs=1e-5)
    assert shown.GetOrigin() == pytest.approx(disk.GetOrigin(), abs=1e-4)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(shown), sitk.GetArrayFromImage(disk)[::3, ::3, ::3]
    )


def test_without_niivue_the_page_says_how_to_get_it(
    case_folders: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images, refs, preds = case_folders
    monkeypatch.setattr("volseg.report.page.find_niivue", lambda: None)
    report = write_report(preds, tmp_path / "r.html", ref=refs)
    assert len(report.notes) == 1 and f"@niivue/niivue@{NIIVUE_VERSION}" in report.notes[0]
    page = report.path.read_text(encoding="utf-8")
    assert NIIVUE_MARK not in page and "NiiVue was not found" in page
    assert "(no scan given)" in page  # no --images: no overlay picture


def test_niivue_env_var_naming_no_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOLSEG_NIIVUE_JS", str(tmp_path / "absent.js"))
    with pytest.raises(OSError, match="absent.js"):
        find_niivue()


def test_pinned_niivue_version_is_the_one_the_code_names() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["@niivue/niivue"] == NIIVUE_VERSION  # exact, no range
    assert lock["packages"]["node_modules/@niivue/niivue"]["version"] == NIIVUE_VERSION


def test_cli_errors_name_the_case_and_leave_nothing(
    case_folders: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _images, refs, preds = case_folders
    partial = tmp_path / "refs"
    partial.mkdir()
    (partial / "case0.nii.gz").write_bytes((refs / "case0.nii.gz").read_bytes())
    out = tmp_path / "r.html"
    assert main(["report", str(preds), "--ref", str(partial), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "case1, case2, case3, case4" in err[0] and str(partial) in err[0]
    assert not out.exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("epoch,train_loss\n1,0.5\n", encoding="utf-8")
    assert main(["report", str(run), "--ref", str(refs), "-o", str(out)]) == 2
    assert "cases.csv" in capsys.readouterr().err


def test_run_dir_report_has_recipe_and_curves(
    case_folders: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, refs, preds = case_folders
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        "model: {name: vnet, kwargs: {base_channels: 4}}\nloss: {name: dice_ce}\n"
        "data: {root: /data/x, labels: [0, 1, 2]}\ntrain: {epochs: 3}\n",
        encoding="utf-8",
    )
    (run / "log.csv").write_text(
        "epoch,train_loss,train_dice,val_loss,val_dice,lr,seconds\n"
        "1,0.9,0.2,0.8,0.3,0.001,6\n2,0.7,0.4,0.6,0.5,0.0005,12\n3,0.5,0.6,0.5,0.55,0.0001,18\n",
        encoding="utf-8",
    )
    (run / "grad_norms.csv").write_text(
        "epoch,layer,norm\n1,a,0.1\n1,b,0.2\n3,a,0.05\n3,b,0.1\n", encoding="utf-8"
    )
    lines = ["case,image,prediction,reference"]
    lines += [
        f"case{i},{images}/case{i}_0000.nii.gz,{preds}/case{i}.nii.gz,{refs}/case{i}.nii.gz"
        for i in (1, 2)
    ]
    (run / "cases.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["report", str(run)]) == 0
    assert f"report (2 case(s)): {run / 'report.html'}" in capsys.readouterr().out
    page = (run / "report.html").read_text(encoding="utf-8")
    assert not EXTERNAL.search(page)
    for text in ("vnet", "dice_ce", "/data/x", "0.3 min", "best validation Dice", "0.55"):
        assert text in page
    for alt in ("training curves", "learning rate", "gradient norms", "Dice over cases"):
        assert f'alt="{alt}"' in page


def _png_width(uri: str) -> int:
    data = base64.b64decode(uri.split(",", 1)[1])
    return int(struct.unpack(">I", data[16:20])[0])


def test_no_empty_validation_panel_without_a_validation_set() -> None:
    with_val = [{"epoch": 1.0, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.3}]
    without = [{"epoch": 1.0, "train_loss": 0.9}, {"epoch": 2.0, "train_loss": 0.7}]
    two, one = training_curves(with_val), training_curves(without)
    assert two and one
    assert _png_width(two) == 2 * _png_width(one)  # one panel: loss alone, no empty Dice axes
    assert training_curves([{"epoch": 1.0}]) is None


def test_outliers_are_tukeys_fences() -> None:
    # nine values, numpy's linear rule: quartiles at sorted positions 2 and 6, i.e. 3 and 7;
    # IQR 4, fences 3 - 6 = -3 and 7 + 6 = 13
    assert outliers([1, 2, 3, 4, 5, 6, 7, 8, 12.9]) == [False] * 9
    assert outliers([1, 2, 3, 4, 5, 6, 7, 8, 13.1]) == [False] * 8 + [True]
    assert outliers([-3.1, 2, 3, 4, 5, 6, 7, 8, 9]) == [True] + [False] * 8
    assert outliers([1.0, float("inf"), 2.0]) == [False, True, False]  # too few: non-finite only


def test_disagreement_centre_is_the_slice_with_most_differences() -> None:
    pred = np.zeros((5, 6, 7), np.uint8)
    ref = pred.copy()
    pred[1, 2:5, 3] = 1  # 3 voxels differ in axial slice 1
    pred[4, 0, 0:2] = 1  # 2 in axial slice 4
    assert disagreement_centre(pred, ref) == (1, 0, 3)  # y: rows 0 (2) vs 2,3,4 (1 each)
    assert disagreement_centre(ref, ref) is None


def test_a_label_only_one_prediction_holds_keeps_its_columns(tmp_path: Path) -> None:
    """Case b predicts label 2, which no reference holds: the report scores it (as `evaluate`
    does) instead of dropping its columns, and case a gets the empty-pair values for it."""
    from volseg.io import Volume, write_volume

    preds, refs = tmp_path / "pred", tmp_path / "ref"
    ref = np.zeros((1, 6, 7, 8), np.uint8)
    ref[0, 1:4, 2:5, 2:6] = 1
    pred_b = ref.copy()
    pred_b[0, 5, 5, 6] = 2  # a false-positive class
    for folder, case, array in (
        (refs, "a", ref),
        (refs, "b", ref),
        (preds, "a", ref),
        (preds, "b", pred_b),
    ):
        write_volume(
            Volume(array, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel())),
            folder / f"{case}.nii.gz",
        )
    rows = score_cases(cases_from_folders(preds, refs), ("dice",))
    expected, _, _ = evaluate_folders(
        preds, refs, metrics=("dice",), output=tmp_path / "m.csv", note=lambda _: None
    )
    assert [r["dice_2"] for r in rows] == [1.0, 0.0]  # a: both empty; b: a false positive
    for row, ref_row in zip(rows, expected, strict=True):
        assert {k: v for k, v in row.items() if k.startswith("dice")} == {
            k: v for k, v in ref_row.items() if k != "case"
        }
