"""The path an nnU-Net user walks, end to end, with no renaming and no YAML edited by hand.

A tiny MSD dataset (``volseg synth brain-structures`` at 3 mm: ``imagesTs/CASE_0000.nii.gz``
inputs with the channel suffix, ``labelsTs/CASE.nii.gz`` references, label names in
``dataset.json``): ``check`` -> ``train RECIPE --set ...`` -> ``predict -i imagesTs`` ->
``evaluate --ref labelsTs``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from volseg.cli import main
from volseg.io import read_volume
from volseg.synth import write_synth

RECIPE = """\
# a recipe written once, for no dataset in particular: the command line points it at one
data:
  root: to/be/set
preprocess:
  target_spacing: [6.0, 6.0, 6.0]
model:
  name: vnet
  kwargs: {base_channels: 4, kernel_size: 3}
train:
  epochs: 5
  iterations_per_epoch: 2
  patch_size: [16, 16, 16]
infer:
  window: null
"""


def test_check_train_predict_evaluate_without_renaming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory
    write_synth("brain-structures", tmp_path / "Task01", cases=3, test_cases=2, spacing=3.0)
    images = sorted(p.name for p in (tmp_path / "Task01" / "imagesTs").iterdir())
    assert images == ["brainstructures_003_0000.nii.gz", "brainstructures_004_0000.nii.gz"]

    assert main(["check", "Task01"]) == 0
    assert "msd layout, 3 case(s), 0 problem(s)" in capsys.readouterr().out

    (tmp_path / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    train = ["train", "recipe.yaml", "--set", "data.root=Task01", "--set", "train.epochs=1"]
    assert main([*train, "--set", "run_dir=runs/hip", "-q"]) == 0
    assert (tmp_path / "runs" / "hip" / "checkpoint_last.pt").is_file()
    log = (tmp_path / "runs" / "hip" / "log.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "val_dice_hippocampus_left" in log.split(",")  # the training log names labels too

    predict = ["predict", "-m", "runs/hip", "-i", "Task01/imagesTs", "-o", "pred", "-q"]
    assert main(predict) == 0
    written = sorted(p.name for p in (tmp_path / "pred").glob("*.nii.gz"))
    references = sorted(p.name for p in (tmp_path / "Task01" / "labelsTs").iterdir())
    assert written == references == ["brainstructures_003.nii.gz", "brainstructures_004.nii.gz"]
    for name in written:  # each prediction on its reference's grid
        assert read_volume(tmp_path / "pred" / name).same_grid(
            read_volume(tmp_path / "Task01" / "labelsTs" / name)
        )

    capsys.readouterr()
    assert main(["evaluate", "--pred", "pred", "--ref", "Task01/labelsTs"]) == 0
    err = capsys.readouterr().err
    assert "paired 2 prediction(s)" in err and "warning" not in err
    with (tmp_path / "pred" / "metrics.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cases = [r["case"] for r in rows]
    assert cases[:2] == ["brainstructures_003", "brainstructures_004"]
    assert "dice_hippocampus_left" in rows[0]  # names from dataset.json, not dice_1
