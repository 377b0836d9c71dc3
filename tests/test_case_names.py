"""Case names are the same everywhere (issue 15): ``predict`` names its outputs by the case ids
the layouts give (nnU-Net's ``CASE_0000`` -> ``CASE``), ``evaluate`` pairs by those ids, and
``predict``, ``check`` and ``evaluate`` take every dataset layout (``--layout`` forces one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from volseg.cli import UsageError, main
from volseg.cli.predict import _prediction_jobs
from volseg.config import Config, InferConfig, ModelConfig, PreprocessConfig, config_to_dict
from volseg.data.layouts import case_id_of, find_cases, strip_channel
from volseg.data.synthetic import make_phantom
from volseg.evaluation import pair_cases
from volseg.io import Volume, write_volume
from volseg.nn import create_model
from volseg.training.checkpoint import Checkpoint, save_checkpoint

SHAPE = (8, 10, 12)  # tiny: a few windows at most


def _run(root: Path, in_channels: int) -> Path:
    """An untrained but complete run (naming needs no training)."""
    config = Config(
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        infer=InferConfig(window=(16, 16, 16)),
    )
    torch.manual_seed(0)
    model = create_model(
        "vnet", in_channels=in_channels, out_channels=2, base_channels=4, kernel_size=3
    )
    run = root / f"run{in_channels}"
    save_checkpoint(
        Checkpoint(model.state_dict(), config_to_dict(config), [0, 1], in_channels),
        run / "checkpoint_best.pt",
    )
    return run


def _scan(path: Path, seed: int = 0, label: Path | None = None) -> Path:
    image, seg = make_phantom(shape=SHAPE, seed=seed)
    if label is not None:
        write_volume(seg, label)
    return write_volume(image, path)


def _touch(path: Path) -> Path:
    """Layouts look at names only: an empty file is enough for them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _jobs(*args: object, **kwargs: object) -> list[tuple[list[str], str]]:
    jobs = _prediction_jobs(*args, **kwargs)  # type: ignore[arg-type]
    return [([p.name for p in images], out.name) for images, out in jobs]


# -- the shared case-id rule -------------------------------------------------------------------


def test_case_id_drops_the_nnunet_channel_suffix_only() -> None:
    assert case_id_of([Path("d/hip_008_0000.nii.gz")]) == "hip_008"
    assert case_id_of([Path("a_0000.mha"), Path("a_0001.mha")]) == "a"
    assert case_id_of([Path("scan_2021.nii.gz")]) == "scan_2021"  # not channel 0
    assert case_id_of([Path("a_0001.nii")]) == "a_0001"
    assert case_id_of([Path("a_0000.nii"), Path("b_0001.nii")]) == "a_0000"  # two cases
    assert case_id_of([Path("x.nrrd")]) == "x"
    assert strip_channel("hip_008_0000") == "hip_008" and strip_channel("hip_0001") == "hip_0001"


def test_folder_groups_channel_files_as_nnunet(tmp_path: Path) -> None:
    for case in ("b", "a"):
        for c in range(2):
            _touch(tmp_path / "imagesTs" / f"{case}_{c:04d}.nii.gz")
    ds = find_cases(tmp_path / "imagesTs")
    assert ds.layout == "folder" and ds.channel_names == ("0", "1")
    assert [(c.case_id, [p.name for p in c.images]) for c in ds.cases] == [
        ("a", ["a_0000.nii.gz", "a_0001.nii.gz"]),
        ("b", ["b_0000.nii.gz", "b_0001.nii.gz"]),
    ]
    # numbers that are not channels 0..n-1: one case per file, named by file
    for year in (2021, 2022):
        _touch(tmp_path / "years" / f"scan_{year}.nii.gz")
    assert [c.case_id for c in find_cases(tmp_path / "years").cases] == ["scan_2021", "scan_2022"]
    # x.nii.gz beside x_0000.nii.gz: both keep their file names
    _touch(tmp_path / "mixed" / "x.nii.gz")
    _touch(tmp_path / "mixed" / "x_0000.nii.gz")
    assert [c.case_id for c in find_cases(tmp_path / "mixed").cases] == ["x", "x_0000"]


# -- predict: output names -----------------------------------------------------------------------


def test_predict_msd_imagests_writes_case_names_that_evaluate_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's nnU-Net user: imagesTs/hip_008_0000.nii.gz -> pred/hip_008.nii.gz, and
    evaluate pairs pred with labelsTs without renaming anything."""
    task = tmp_path / "Task04_Hippocampus"
    for i, case in enumerate(("hip_008", "hip_011")):
        _scan(task / f"imagesTs/{case}_0000.nii.gz", i, task / f"labelsTs/{case}.nii.gz")
    pred = tmp_path / "pred"
    run = _run(tmp_path, 1)
    assert main(["predict", "-m", str(run), "-i", str(task / "imagesTs"), "-o", str(pred)]) == 0
    assert _names(pred) == ["hip_008.nii.gz", "hip_011.nii.gz"]
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pred), "--ref", str(task / "labelsTs")]) == 0
    captured = capsys.readouterr()
    assert "paired 2 prediction(s)" in captured.err
    assert "channel suffix" not in captured.err and "warning" not in captured.err
    assert "hip_008" in captured.out and "hip_011" in captured.out


def test_predict_bare_two_channel_folder(tmp_path: Path) -> None:
    """imagesTs without dataset.json: CASE_0000 + CASE_0001 are one two-channel case CASE."""
    for i, case in enumerate(("p1", "p2")):
        image, _ = make_phantom(shape=SHAPE, seed=i, channels=2)
        for c in range(2):
            channel = image.with_array(image.array[c : c + 1])
            write_volume(channel, tmp_path / f"imagesTs/{case}_{c:04d}.nii.gz")
    pred = tmp_path / "pred"
    run = _run(tmp_path, 2)
    assert main(["predict", "-m", str(run), "-i", str(tmp_path / "imagesTs"), "-o", str(pred)]) == 0
    assert _names(pred) == ["p1.nii.gz", "p2.nii.gz"]


def test_channel_files_matched_to_the_runs_channel_count(tmp_path: Path) -> None:
    folder = tmp_path / "imagesTs"
    for c in range(3):
        _touch(folder / f"scan_{c:04d}.nii.gz")
    out = str(tmp_path / "out")
    three = [(["scan_0000.nii.gz", "scan_0001.nii.gz", "scan_0002.nii.gz"], "scan.nii.gz")]
    assert _jobs([str(folder)], out, in_channels=3) == three
    # a one-channel run: numbered scans, one case each, named by file
    assert _jobs([str(folder)], out, in_channels=1) == [
        ([f"scan_{c:04d}.nii.gz"], f"scan_{c:04d}.nii.gz") for c in range(3)
    ]
    with pytest.raises(UsageError, match=r"3 channel files per case .* expects 2 channel"):
        _prediction_jobs([str(folder)], out, in_channels=2)
    # a run trained on named channels takes unnamed channel files in their order
    assert _jobs([str(folder)], out, ("t2", "adc", "dwi"), in_channels=3) == three


def test_txt_list_single_file_and_dataset_folder_names(tmp_path: Path) -> None:
    for c in range(2):
        _touch(tmp_path / f"imgs/a_{c:04d}.mha")
    _touch(tmp_path / "imgs/b_0000.nii")
    (tmp_path / "cases.txt").write_text(
        "imgs/a_0000.mha imgs/a_0001.mha\n# comment\nimgs/b_0000.nii\n", encoding="utf-8"
    )
    out = str(tmp_path / "out")
    assert _jobs([str(tmp_path / "cases.txt")], out) == [
        (["a_0000.mha", "a_0001.mha"], "a.mha"),
        (["b_0000.nii"], "b.nii"),
    ]
    one = str(tmp_path / "imgs/b_0000.nii")
    assert _jobs([one], out + "/") == [(["b_0000.nii"], "b.nii")]  # -o FOLDER/
    (tmp_path / "out").mkdir()
    assert _jobs([one], out) == [(["b_0000.nii"], "b.nii")]  # an existing folder
    assert _jobs([one], str(tmp_path / "x.nii.gz")) == [(["b_0000.nii"], "x.nii.gz")]
    # a dataset folder with dataset.json: its case ids (msd layout)
    task = tmp_path / "Dataset001"
    (task / "imagesTr").mkdir(parents=True)
    for c in range(2):
        _touch(task / f"imagesTr/hip_1_{c:04d}.nii.gz")
    (task / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}), encoding="utf-8")
    assert _jobs([str(task)], out) == [(["hip_1_0000.nii.gz", "hip_1_0001.nii.gz"], "hip_1.nii.gz")]


# -- every layout ------------------------------------------------------------------------------


def _manifest_folder(root: Path) -> Path:
    """Images named unlike their cases, and cases.csv naming them (no manifest.csv)."""
    for i in range(2):
        _scan(root / f"scan{i}.nii.gz", i, root / f"seg{i}.nii.gz")
    rows = "".join(f"liver_{c},scan{i}.nii.gz,seg{i}.nii.gz\n" for i, c in enumerate("ab"))
    (root / "cases.csv").write_text("case_id,image,label\n" + rows, encoding="utf-8")
    (root / "metrics.csv").write_text("case,dice_1\nx,1\n", encoding="utf-8")  # no manifest
    return root


def test_predict_a_manifest_csv_names_outputs_by_case_id(tmp_path: Path) -> None:
    root = _manifest_folder(tmp_path / "data")
    pred = tmp_path / "pred"
    run = _run(tmp_path, 1)
    args = ["predict", "-m", str(run), "-i", str(root / "cases.csv"), "-o", str(pred), "-q"]
    assert main(args) == 0
    assert _names(pred) == ["liver_a.nii.gz", "liver_b.nii.gz"]
    # the same from a JSON manifest
    cases = [{"case_id": "j", "images": ["data/scan0.nii.gz"]}]
    (tmp_path / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    assert _jobs([str(tmp_path / "cases.json")], str(pred)) == [(["scan0.nii.gz"], "j.nii.gz")]


def test_check_finds_any_manifest_in_a_folder_and_layout_forces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _manifest_folder(tmp_path / "data")
    assert main(["check", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "manifest layout, 2 case(s), 0 problem(s)"
    # forced: the folder's images, each an unlabeled case named by file
    assert main(["check", str(root), "--layout", "folder"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "folder layout, 4 case(s), 0 problem(s)"
    out = str(tmp_path / "out")
    assert [o for _, o in _jobs([str(root)], out)] == ["liver_a.nii.gz", "liver_b.nii.gz"]
    assert [o for _, o in _jobs([str(root)], out, layout="folder")] == [
        "scan0.nii.gz",
        "scan1.nii.gz",
        "seg0.nii.gz",
        "seg1.nii.gz",
    ]
    with pytest.raises(SystemExit):  # argparse: not a layout
        main(["check", str(root), "--layout", "nnunet"])
    # two manifests: one line naming both
    (root / "more.csv").write_text("image\nscan0.nii.gz\n", encoding="utf-8")
    assert main(["check", str(root)]) == 2
    assert "several manifests (cases.csv, more.csv)" in capsys.readouterr().err


# -- evaluate: pairing ---------------------------------------------------------------------------


def _label(path: Path, seed: int = 0) -> Volume:
    _, seg = make_phantom(shape=SHAPE, seed=seed)
    write_volume(seg, path)
    return seg


def test_evaluate_reports_unpaired_files_and_pairs_old_channel_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for i, case in enumerate(("a", "b", "c")):
        _label(ref / f"{case}.nii.gz", i)
    _label(pred / "a.nii.gz", 0)
    _label(pred / "b_0000.nii.gz", 1)  # left by an older volseg
    _label(pred / "z.nii.gz", 5)
    # a reference without a prediction would silently leave the mean: an error by default
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no prediction for case(s) c of" in err[0]
    assert "2 of 3 paired; --allow-missing" in err[0]
    assert not (pred / "metrics.csv").exists()
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--allow-missing"]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert f"volseg: paired 2 prediction(s) in {pred} with references in {ref}" in err
    assert "volseg: paired without the channel suffix: b_0000.nii.gz -> b" in err
    assert "volseg: warning: no reference for prediction(s) z.nii.gz (not scored)" in err
    assert "volseg: warning: no prediction for case(s) c (not scored)" in err
    table = captured.out.splitlines()
    assert any(line.split()[:2] == ["a", "1.0000"] for line in table)
    assert any(line.split()[:2] == ["b", "1.0000"] for line in table)
    # nothing pairs: the error it always was
    lone = tmp_path / "lone"
    _label(lone / "q.nii.gz")
    assert main(["evaluate", "--pred", str(lone), "--ref", str(ref)]) == 2
    assert "no prediction for case(s) a, b, c" in capsys.readouterr().err


def test_pairing_is_by_id_then_without_the_channel_suffix() -> None:
    p = {k: Path(f"p/{k}.nii.gz") for k in ("a", "a_0000", "b_0000", "c_0001", "d_0000")}
    r = {k: Path(f"r/{k}.nii.gz") for k in ("a", "b", "c", "d", "d_0000")}
    pairing = pair_cases(p, r)
    assert {k: v[0].name for k, v in pairing.pairs.items()} == {
        "a": "a.nii.gz",  # the same id wins over a_0000
        "b": "b_0000.nii.gz",
        "d_0000": "d_0000.nii.gz",
    }
    assert pairing.renamed == ("b",)
    assert [f.name for f in pairing.predictions] == ["a_0000.nii.gz", "c_0001.nii.gz"]
    assert pairing.references == ("c", "d")


def test_evaluate_ref_takes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _manifest_folder(tmp_path / "data")
    pred = tmp_path / "pred"
    for i, case in enumerate(("liver_a", "liver_b")):
        _label(pred / f"{case}.nii.gz", i)
    assert main(["evaluate", "--pred", str(pred), "--ref", str(root / "cases.csv")]) == 0
    assert "dice_1: 1.0000 +/- 0.0000" in capsys.readouterr().out
    assert main(["evaluate", "--pred", str(pred), "--ref", str(root)]) == 0  # folder w/ manifest
    assert "paired 2 prediction(s)" in capsys.readouterr().err
    # forced to a folder of label maps, nothing is named liver_*
    assert main(["evaluate", "--pred", str(pred), "--ref", str(root), "--layout", "folder"]) == 2
    assert "no prediction for case(s) scan0, scan1, seg0, seg1" in capsys.readouterr().err
    # an MSD dataset: labelsTr, by case id
    task = tmp_path / "Dataset002"
    for i, case in enumerate(("liver_a", "liver_b")):
        _scan(task / f"imagesTr/{case}_0000.nii.gz", i, task / f"labelsTr/{case}.nii.gz")
    (task / "dataset.json").write_text(json.dumps({"labels": {"liver": 1}}), encoding="utf-8")
    # the label is named in dataset.json: the columns say so
    assert (
        main(["evaluate", "--pred", str(pred), "--ref", str(task), "-o", str(tmp_path / "m.csv")])
        == 0
    )
    assert "dice_liver: 1.0000 +/- 0.0000" in capsys.readouterr().out


def test_a_folder_csv_is_a_manifest_only_when_it_lists_cases(tmp_path: Path) -> None:
    _touch(tmp_path / "a.nii.gz")
    (tmp_path / "metrics.csv").write_text("case,dice_1\na,1\n", encoding="utf-8")
    run_cases = "case,image,prediction,reference\na,a.nii.gz,p.nii.gz,r.nii.gz\n"
    (tmp_path / "cases.csv").write_text(run_cases, encoding="utf-8")  # a run's, not a manifest
    (tmp_path / "splits.json").write_text(json.dumps([{"train": ["a"]}]), encoding="utf-8")
    assert find_cases(tmp_path).layout == "folder"
    (tmp_path / "list.json").write_text(json.dumps({"cases": [{"image": "a.nii.gz"}]}), "utf-8")
    ds = find_cases(tmp_path)
    assert (ds.layout, ds.root.name) == ("manifest", "list.json")
    assert [c.case_id for c in ds.cases] == ["a"]


def test_evaluate_ignores_hidden_temp_files_of_a_cut_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    _label(ref / "a.nii.gz", 0)
    _label(pred / "a.nii.gz", 0)
    (pred / ".a.nii.gz.0123abcd.tmp.nii.gz").write_bytes(b"")  # left by a SIGKILL
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref)]) == 0
    err = capsys.readouterr().err
    assert "0123abcd" not in err and "warning" not in err
