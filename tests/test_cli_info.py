"""``volseg info`` on a run directory, an exported ``.onnx`` and a registered model name."""

from __future__ import annotations

import json
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
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.nn import create_model
from volseg.nn.analysis import count_parameters

NAMES = ("background", "Outer Shell", "core")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-iteration run (vnet, labels 0-2 named in the config) validated on one case."""
    from volseg.training.trainer import train

    base = tmp_path_factory.mktemp("info")
    root = write_phantom_dataset(base / "data", cases=2, nested=True)
    config = Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), label_names=NAMES, val_cases=("case01",)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(epochs=2, iterations_per_epoch=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=None),
        run_dir=str(base / "run"),
    )
    train(config, progress=False)
    return base / "run"


def facts(text: str) -> dict[str, str]:
    """``name  value`` lines of info's output as a dict (names may hold one space)."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition("  ")
        out[name.strip()] = value.strip()
    return out


def test_info_on_a_run(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(run)]) == 0
    got = facts(capsys.readouterr().out)
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    assert got["parameters"] == f"{count_parameters(model):,}"
    assert got["network"].startswith("vnet")
    assert got["epochs trained"] == "2"
    assert got["best"].startswith("val_dice ") and "(epoch " in got["best"]
    assert got["labels"] == ("0 background, 1 Outer Shell (columns *_outer_shell), 2 core")
    assert got["input channels"].startswith("1 ")
    assert "target_spacing [1.5, 1.5, 1.5]" in got["preprocessing"]
    # a checkpoint file works too
    assert main(["info", str(run / "checkpoint_last.pt")]) == 0
    assert facts(capsys.readouterr().out)["epochs trained"] == "2"


def test_info_on_an_exported_onnx(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    from volseg.export import export_run

    path = run.parent / "model.onnx"
    export_run(run, path, "onnx")
    assert main(["info", str(path)]) == 0
    got = facts(capsys.readouterr().out)
    proto = onnx.load(str(path))
    name = proto.graph.input[0].name
    shape = json.loads(got[f"input {name}"].replace("'", '"'))
    assert shape[1] == 1 and len(shape) == 5  # channels static, batch and space dynamic
    output = proto.graph.output[0].name
    assert json.loads(got[f"output {output}"].replace("'", '"'))[1] == 3
    assert got["opset"] == ", ".join(
        f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import
    )
    model = create_model("vnet", in_channels=1, out_channels=3, base_channels=4, kernel_size=3)
    count = int(got["parameters"].split()[0].replace(",", ""))
    assert count >= count_parameters(model)  # the weights, and the graph's few constants
    assert got["metadata volseg.labels"] == "[0, 1, 2]"
    assert got["metadata volseg.in_channels"] == "1"
    assert got["labels"].startswith("0 background, 1 Outer Shell")


def test_info_on_a_name_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["info", "vnet", "--input-size", "16", "16", "16", "--kwargs", "base_channels=4"]
    assert main(argv) == 0
    assert "vnet" in capsys.readouterr().out
    assert main(["info", "vnet"]) == 2
    assert "needs --input-size" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.onnx")]) == 2
    assert "ONNX model not found" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["info", str(bad)]) == 2
    assert "unreadable ONNX model" in capsys.readouterr().err
