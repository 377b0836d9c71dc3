from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import volseg
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


# every registered net, small (its own blocks and switches at their defaults), in its paper's
# dimension and in 3-D; input sizes are multiples of the net's divisor
SMALL_NETS = [
    ("vnet", 3, {"base_channels": 4, "kernel_size": 3}),
    ("resvolnet", 3, {"channels": (4, 8, 8)}),
    ("resunet", 2, {"channels": (4, 8, 8)}),
    ("resunet", 3, {"channels": (4, 8, 8)}),
    ("fcresnet", 2, {"stem_channels": 4, "widths": (4, 8, 8, 16, 16), "repeats": (1, 1, 2, 1, 1)}),
    ("segresnet_vae", 3, {"init_filters": 4, "vae_input_size": (16, 16, 16)}),
]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize(("name", "dims", "kwargs"), SMALL_NETS, ids=lambda v: str(v))
def test_every_registered_net_exports(
    tmp_path: Path, fmt: str, name: str, dims: int, kwargs: dict[str, object]
) -> None:
    assert {n for n, _, _ in SMALL_NETS} == set(volseg.list_models())
    torch.manual_seed(0)
    net = create_model(name, spatial_dims=dims, **kwargs).eval()
    d = int(net.divisor)  # type: ignore[arg-type]
    c = int(net.in_channels)  # type: ignore[arg-type]
    shapes = [(1, c, *(2 * d, d, 2 * d)[:dims]), (2, c, *(d, 3 * d, 2 * d)[:dims])]
    result = export_model(net, tmp_path / f"m.{fmt}", fmt, shapes)
    assert result.path.is_file()
    assert result.max_abs_diff < 1e-4 * max(1.0, result.output_scale)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_that_differs_is_refused_and_not_written(tmp_path: Path, fmt: str) -> None:
    """Tracing freezes a Python int taken from the input's shape: the second shape disagrees."""

    class ShapeDependent(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + float(x.shape[-1])

    out = tmp_path / f"m.{fmt}"
    with pytest.raises(ValueError, match="differs from PyTorch by 4"):
        export_model(ShapeDependent(), out, fmt, [(1, 1, 4, 4, 4), (1, 1, 4, 4, 8)])
    assert list(tmp_path.iterdir()) == []


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
