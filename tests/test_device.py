"""Device choice (``train.runtime.device``, ``infer.device``, ``--device``) and DICOM ``--series``.

CUDA paths (pinned, non-blocking copies) are exercised only where a GPU exists; on a CPU
machine the tests check the choice, the one-line errors and that CPU copies are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from volseg._device import resolve_device, to_device
from volseg.cli import main
from volseg.config import (
    Config,
    ModelConfig,
    TrainConfig,
)
from volseg.inference import Predictor
from volseg.io import read_volume

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_auto_is_cuda_exactly_when_cuda_exists() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto", "infer.device").type == expected
    assert resolve_device("cpu", "infer.device") == torch.device("cpu")


@needs_no_cuda
def test_cuda_without_a_gpu_is_one_line_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"^infer\.device is cuda but no CUDA device"):
        resolve_device("cuda", "infer.device")


def test_cpu_copy_is_the_same_tensor() -> None:
    x = torch.arange(6.0)
    assert to_device(x, torch.device("cpu")) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_copy_goes_through_pinned_memory() -> None:
    x = torch.arange(6.0)
    y = to_device(x, torch.device("cuda"))
    torch.cuda.synchronize()
    assert y.device.type == "cuda" and torch.equal(y.cpu(), x)


def test_predictor_runs_on_the_chosen_device(run_dir: Path) -> None:
    predictor = Predictor.from_run(run_dir, device="cpu")
    assert predictor.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in predictor.model.parameters())


@needs_no_cuda
def test_predict_device_cuda_without_a_gpu_is_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8, 8), np.float32)), str(scan))
    out = tmp_path / "out.nii.gz"
    code = main(
        ["predict", "-m", str(run_dir), "-i", str(scan), "-o", str(out), "--device", "cuda"]
    )
    assert code == 2
    assert "infer.device is cuda but no CUDA device" in capsys.readouterr().err
    assert not out.exists()


@needs_no_cuda
def test_train_device_cuda_without_a_gpu_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from volseg.config import DataConfig, dump_config
    from volseg.data.synthetic import write_phantom_dataset

    root = write_phantom_dataset(tmp_path / "data", cases=2)
    config = Config(
        data=DataConfig(root=str(root)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, patch_size=(16, 16, 16)),
        run_dir=str(tmp_path / "run"),
    )
    dump_config(config, tmp_path / "c.yaml")
    assert main(["train", str(tmp_path / "c.yaml"), "--device", "cuda", "-q"]) == 2
    assert "train.runtime.device is cuda but no CUDA device" in capsys.readouterr().err


def _dicom_series(folder: Path, uid: str, value: int) -> None:
    """A 6-slice CT series of constant ``value``, written slice by slice by SimpleITK."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(np.full((6, 12, 10), value, np.int16))
    volume.SetSpacing((1.0, 1.0, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(6):
        s = volume[:, :, k]
        s.SetMetaData("0020|000e", uid)
        s.SetMetaData("0020|000d", uid + ".9")
        s.SetMetaData("0008|0060", "CT")
        s.SetMetaData("0020|0013", str(k + 1))
        s.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        s.SetMetaData("0020|0032", f"0\\0\\{2.0 * k:g}")
        s.SetMetaData("0028|0030", "1\\1")
        writer.SetFileName(str(folder / f"{uid[-1]}_{k:03d}.dcm"))
        writer.Execute(s)


def test_predict_series_picks_one_of_two_dicom_series(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ct"
    _dicom_series(folder, "1.2.826.0.1.3680043.2.1125.1", 0)
    _dicom_series(folder, "1.2.826.0.1.3680043.2.1125.2", 100)
    out = tmp_path / "mask.nii.gz"
    args = ["predict", "-m", str(run_dir), "-i", str(folder), "-o", str(out), "-q"]
    assert main(args) == 2
    assert "2 DICOM series in one folder" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--series", "1.2.826.0.1.3680043.2.1125.2"]) == 0
    assert read_volume(out).shape == (6, 12, 10)
