"""Recipe-against-data checks: one-line errors (exit 2) before the run directory exists."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from volseg.cli import main
from volseg.config import (
    Config,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from volseg.data.sampling import LoadedCase
from volseg.data.synthetic import write_phantom_dataset
from volseg.training.pretrain_checks import (
    LabelPresenceWarning,
    check_label_presence,
    present_labels,
)
from volseg.training.trainer import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three one-channel cases with labels 0, 1, 2 (``nested``)."""
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=3, nested=True)


def tiny_config(root: Path, run_dir: Path, data: dict[str, object], **kwargs: object) -> Config:
    return Config(
        data=DataConfig(root=str(root), **data),  # type: ignore[arg-type]
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3, **kwargs}),
        train=TrainConfig(epochs=1, iterations_per_epoch=1, batch_size=1, patch_size=(16, 16, 16)),
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


def run_cli(config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "recipe.yaml"
    dump_config(config, path)
    code = main(["train", str(path), "-q"])
    return code, capsys.readouterr().err.strip()


def test_region_absent_from_every_label_map_is_an_error(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the phantoms hold labels 0, 1, 2: BraTS's enhancing tumour (4) never occurs
    run = tmp_path / "run"
    config = tiny_config(phantoms, run, {"labels": (0, 1, 2, 4), "regions": "brats"})
    code, err = run_cli(config, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "data.regions: region ET (label(s) 4) occurs in none of the 2 training" in err
    assert "values present: 0, 1, 2" in err
    assert not run.exists()


def test_recipe_in_channels_against_one_channel_data(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    config = tiny_config(phantoms, run, {"labels": (0, 1, 2)}, in_channels=4)
    code, err = run_cli(config, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "model.kwargs.in_channels: the recipe declares 4 input channel(s)" in err
    assert f"the data at {phantoms} has 1 (0)" in err
    assert not run.exists()


def test_brats_recipe_on_one_channel_data_names_both(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the shipped recipe names its 4 modalities: on 1-channel data it stops, listing both
    recipe = load_config(CONFIGS / "segresnet_vae_brats.yaml")
    run = tmp_path / "run"
    data = dataclasses.replace(recipe.data, root=str(phantoms), layout="manifest")
    config = dataclasses.replace(recipe, data=data, run_dir=str(run))
    code, err = run_cli(config, tmp_path, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown channel 't1'; available: 0" in err
    assert not run.exists()


@pytest.mark.parametrize("name", ["vnet_promise12", "fcresnet_isbi2012", "resunet_isles2018"])
def test_every_recipe_declares_its_channels(name: str) -> None:
    recipe = load_config(CONFIGS / f"{name}.yaml")
    assert recipe.model.kwargs["in_channels"] == {"resunet_isles2018": 5}.get(name, 1)


def test_vnet_recipe_on_two_channel_data(tmp_path: Path) -> None:
    data = write_phantom_dataset(tmp_path / "two", cases=2, channels=2)
    recipe = load_config(CONFIGS / "vnet_promise12.yaml")
    run = tmp_path / "run"
    config = dataclasses.replace(
        recipe,
        data=dataclasses.replace(recipe.data, root=str(data), layout="manifest"),
        run_dir=str(run),
    )
    with pytest.raises(ValueError, match=r"declares 1 input channel\(s\), but the data .* has 2"):
        train(config, progress=False)
    assert not run.exists()


def loaded(target: np.ndarray) -> LoadedCase:
    """A loaded case holding only a label map of class indices (the checks read nothing else)."""
    tensor = torch.from_numpy(target[None].astype(np.int64))
    return LoadedCase("c", torch.zeros(1), tensor, np.zeros((0, 3)), None)  # type: ignore[arg-type]


def test_present_labels_by_hand() -> None:
    cases = [loaded(np.array([[0, 1], [0, 0]])), loaded(np.array([[0, 3], [3, 0]]))]
    # class indices 0, 1, 3 of labels (0, 1, 2, 4): values 0, 1, 4
    assert present_labels(cases, [0, 1, 2, 4]) == [0, 1, 4]


def test_absent_label_is_a_warning_absent_foreground_an_error() -> None:
    config = Config()
    with pytest.warns(LabelPresenceWarning, match=r"data.labels: label\(s\) 2 of \[0, 1, 2\]"):
        check_label_presence(config, [0, 1, 2], [loaded(np.array([0, 1, 1]))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every label present: silent
        check_label_presence(config, [0, 1, 2], [loaded(np.array([0, 1, 2]))])
    with pytest.raises(ValueError, match="no foreground label of \\[0, 1\\] occurs"):
        check_label_presence(config, [0, 1], [loaded(np.zeros(4, dtype=int))])


def test_region_with_one_of_its_labels_present_passes() -> None:
    # TC = {1, 4}: label 1 alone keeps the region non-empty; ET = {4} is the empty one
    config = Config(data=DataConfig(labels=(0, 1, 2, 4), regions=((1, 2, 4), (1, 4))))
    with pytest.warns(LabelPresenceWarning):
        check_label_presence(config, [0, 1, 2, 4], [loaded(np.array([0, 1, 2]))])
    config = Config(data=DataConfig(labels=(0, 1, 2, 4), regions="brats"))
    with pytest.raises(ValueError, match="region ET"):
        check_label_presence(config, [0, 1, 2, 4], [loaded(np.array([0, 1, 2]))])
