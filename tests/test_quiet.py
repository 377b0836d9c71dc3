"""``-q`` silences every progress bar: training's loading and epoch bars, predict's, cv's."""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
from volseg.data.synthetic import write_phantom_dataset

BAR = re.compile(r"\r|it/s|s/it|\d+%\|")  # what a tqdm bar writes


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Four phantom cases: three train (the loading bar shows from three on), one validates."""
    root = write_phantom_dataset(tmp_path / "data", cases=4, shape=(16, 16, 16))
    config = Config(
        data=DataConfig(root=str(root), val_cases=("case03",)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=None),
        run_dir=str(tmp_path / "run"),
    )
    dump_config(config, tmp_path / "config.yaml")
    return tmp_path / "config.yaml"


def test_train_bars_show_and_q_silences_them(
    config_file: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = config_file.parent / "run"
    # training draws its bars on a terminal only (a log gets epoch lines): pretend to be one
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["train", str(config_file), "--run-dir", str(run / "loud")]) == 0
    err = capfd.readouterr().err
    assert "loading" in err and BAR.search(err)  # the bars this test silences exist
    assert main(["train", str(config_file), "--run-dir", str(run / "quiet"), "-q"]) == 0
    out, err = capfd.readouterr()
    assert not BAR.search(err) and "loading" not in err, err
    assert "run:" in out  # the result line is no progress bar: it stays


def test_predict_and_cv_q_print_no_bar(
    config_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = config_file.parent / "data"
    run = config_file.parent / "run"
    assert main(["train", str(config_file), "-q"]) == 0
    cases = config_file.parent / "cases.txt"  # three scans, one per line
    cases.write_text(
        "".join(f"{data / f'case{i:02d}_0000.nii.gz'}\n" for i in range(3)), encoding="utf-8"
    )
    out_dir = config_file.parent / "preds"
    capfd.readouterr()
    assert main(["predict", "-m", str(run), "-i", str(cases), "-o", str(out_dir)]) == 0
    assert BAR.search(capfd.readouterr().err)  # three scans: a bar without -q
    argv = ["predict", "-m", str(run), "-i", str(cases), "-o", str(out_dir), "--overwrite", "-q"]
    assert main(argv) == 0
    assert not BAR.search(capfd.readouterr().err)
    cv = ["cv", str(config_file), "--folds", "2", "--run-dir", str(config_file.parent / "cv")]
    assert main([*cv, "-q"]) == 0
    out, err = capfd.readouterr()
    assert not BAR.search(err) and "loading" not in err, err
    assert "fold_0" in out  # the table of results is printed
