from __future__ import annotations

from pathlib import Path

import pytest

from volseg.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = config_from_dict(
        {"train": {"patch_size": [32, 32, 16], "lr": 1}, "model": {"kwargs": {"a": 1}}}
    )
    assert config.train.patch_size == (32, 32, 16) and config.train.lr == 1.0
    dump_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize(
    "data,message",
    [
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer"),
        ({"train": {"epcohs": 3}}, "train: unknown key\\(s\\) epcohs"),
        ({"train": {"patch_size": 32}}, "train.patch_size: expected a list"),
        ({"preprocess": {"clip_percentiles": [1]}}, "clip_percentiles: expected 2 values"),
        ({"data": {"root": 3}}, "data.root: expected a string"),
        ({"train": {"amp": None}}, "train.amp: expected a string, got None"),
        ({"train": {"max_minutes": "x"}}, "train.max_minutes: expected a number"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_relative_root_resolves_against_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("data:\n  root: data/manifest.csv\n")
    assert load_config(tmp_path / "c.yaml").data.root == str(tmp_path / "data" / "manifest.csv")


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path: Path) -> None:
    assert isinstance(load_config(path), Config)
