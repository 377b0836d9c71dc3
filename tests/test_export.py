from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from volseg.cli import main
from volseg.config import Config, ModelConfig, PreprocessConfig, TrainConfig, config_to_dict
from volseg.data.synthetic import make_phantom
from volseg.export import export_model, export_run, load_onnx
from volseg.inference import Predictor
from volseg.nn import create_model
from volseg.training.checkpoint import Checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = Config(
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(patch_size=(16, 16, 16)),
    )
    torch.manual_seed(0)
    model = create_model("vnet", in_channels=1, out_channels=2, base_channels=4, kernel_size=3)
    run = tmp_path_factory.mktemp("export") / "run"
    save_checkpoint(
        Checkpoint(model.state_dict(), config_to_dict(config), [0, 3], 1),
        run / "checkpoint_best.pt",
    )
    return run


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_agrees_with_pytorch(run_dir: Path, fmt: str) -> None:
    out = run_dir.parent / f"model.{fmt}"
    result = export_run(run_dir, out, fmt)
    assert out.is_file() and result.max_abs_diff < 1e-4
    # an independent check on a fresh input of another shape
    model = Predictor.from_run(run_dir, channels_last=False).model
    x = torch.randn(1, 1, 32, 16, 48)
    with torch.no_grad():
        expected = model(x).numpy()
    if fmt == "onnx":
        network, config, labels, in_channels = load_onnx(out)
        assert labels == [0, 3] and in_channels == 1
        assert config.preprocess.target_spacing == (1.5, 1.5, 1.5)
        got = network(x).numpy()
    else:
        with torch.no_grad():
            got = torch.jit.load(str(out))(x).numpy()
    assert np.abs(got - expected).max() < 1e-4


def test_vae_branch_is_left_out(tmp_path: Path) -> None:
    """A net returning (segmentation, reconstruction) exports its segmentation only."""

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 2, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.conv(x), x * 2

    net = TwoHeads().eval()
    out = tmp_path / "m.pt"
    result = export_model(net, out, "torchscript", [(1, 1, 4, 4, 4)])
    y = torch.jit.load(str(out))(torch.ones(1, 1, 4, 4, 4))
    assert result.max_abs_diff == 0.0 and y.shape == (1, 2, 4, 4, 4)


def test_predict_with_onnx_matches_the_run(run_dir: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "-o", str(onnx_path)]) == 0
    image, _ = make_phantom()
    from_run = Predictor.from_run(run_dir).predict_probabilities(image).array
    from_onnx = Predictor.from_run(onnx_path).predict_probabilities(image).array
    assert np.abs(from_run - from_onnx).max() < 1e-4
    scan = tmp_path / "scan.nii.gz"
    from volseg.io import read_volume, write_volume

    write_volume(image, scan)
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "-m", str(onnx_path), "-i", str(scan), "-o", str(out), "-q"]) == 0
    assert read_volume(out).same_grid(image)


def test_unknown_format_and_foreign_onnx_are_clear_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        export_run(run_dir, tmp_path / "m.x", "tflite")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bogus.onnx"):
        load_onnx(bogus)
