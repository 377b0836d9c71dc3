from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from volseg._legacy_config import MOVED_KEYS
from volseg.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIGS_DIR.glob("*.yaml"))


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "train": {"patch_size": [32, 32, 16], "optimizer": {"lr": 1}},
            "data": {"regions": [[1, 2], [2]]},
            "model": {"kwargs": {"a": 1}},
        }
    )
    assert config.train.patch_size == (32, 32, 16) and config.train.optimizer.lr == 1.0
    assert config.data.regions == ((1, 2), (2,))
    dump_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize(
    "data,message",
    [
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer"),
        ({"train": {"a\nb": 3}}, "train: unknown key\\(s\\) 'a\\\\nb'; allowed"),
        ({"train": {"epcohs": 3}}, "train: unknown key\\(s\\) epcohs"),
        ({"train": {"patch_size": 32}}, "train.patch_size: expected a list"),
        ({"preprocess": {"clip_percentiles": [1]}}, "clip_percentiles: expected 2 values"),
        ({"data": {"root": 3}}, "data.root: expected a string"),
        ({"train": {"runtime": {"amp": None}}}, "train.runtime.amp: expected one of none, "),
        ({"train": {"runtime": {"amp": "fp8"}}}, "train.runtime.amp: .*got 'fp8'"),
        ({"train": {"stopping": {"max_minutes": "x"}}}, "train.stopping.max_minutes: expected a"),
        ({"train": {"monitor": "dice"}}, "train.monitor: expected one of val_dice, val_loss"),
        ({"train": {"optimizer": {"name": "rmsprop"}}}, "train.optimizer.name: expected one of"),
        ({"train": {"optimizer": {"lr": 0}}}, "train.optimizer.lr: must be > 0"),
        ({"train": {"schedule": {"name": "cosine"}}}, "train.schedule.name: expected one of"),
        ({"train": {"schedule": {"step_size": 0}}}, "train.schedule.step_size: must be >= 1"),
        (
            {"train": {"schedule": {"warmup_epochs": 1, "warmup_end_lr": 1e-5}}},
            "train.schedule.warmup_end_lr: needs warmup_epochs >= 2",
        ),
        ({"preprocess": {"normalize": "minmax"}}, "preprocess.normalize: expected one of"),
        ({"infer": {"blend": "max"}}, "infer.blend: expected one of gaussian, constant"),
        ({"infer": {"overlap": 1.0}}, "infer.overlap: must be in"),
        ({"train": {"lr": 0.1, "optimizer": {"lr": 0.2}}}, "train.lr and train.optimizer.lr both"),
        ({"data": {"channels": []}}, "data.channels: name at least one channel"),
        ({"data": {"channels": ["t1", "flair", "t1"]}}, "data.channels: t1 listed more than once"),
        ({"data": {"channels": "flair"}}, "data.channels: expected a list"),
        ({"data": {"regions": "brats2021"}}, "data.regions: unknown region set 'brats2021'"),
        (
            {"data": {"labels": [0, 1, 2, 3], "regions": "brats"}},
            "data.regions: 'brats' uses label\\(s\\) \\[4\\] not in the labels \\[0, 1, 2, 3\\] "
            ".*BraTS 2023\\+.*regions brats2023",
        ),
        ({"data": {"labels": [0, 1], "regions": [[1, 2]]}}, "uses label\\(s\\) \\[2\\] not in"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_data_channels_and_brats2023_regions() -> None:
    data = config_from_dict(
        {"data": {"channels": ["t1ce", "flair"], "labels": [0, 1, 2, 3], "regions": "brats2023"}}
    ).data
    assert data.channels == ("t1ce", "flair")
    assert (data.labels, data.regions) == ((0, 1, 2, 3), "brats2023")
    assert Config().data.channels is None
    # a region set is checked against labels read from the dataset later too (the trainer
    # fills in data.labels from the dataset with dataclasses.replace)
    undeclared = config_from_dict({"data": {"regions": "brats"}}).data
    with pytest.raises(ConfigError, match="regions: 'brats' uses label"):
        dataclasses.replace(undeclared, labels=(0, 1, 2, 3))


def test_relative_root_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text("data:\n  root: data/m.csv\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/c.yaml").data.root == str(tmp_path / "data" / "m.csv")


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path: Path) -> None:
    assert isinstance(load_config(path), Config)


def test_keys_of_earlier_versions_move_with_one_warning() -> None:
    old = {
        "train": {
            "optimizer": "sgd",
            "lr": 1e-4,
            "momentum": 0.99,
            "schedule": "step",
            "step_size": 25000,
            "early_stopping_patience": 5,
            "max_minutes": 8.0,
            "amp": "bf16",
            "num_workers": 2,
            "regions": "brats",
        }
    }
    with pytest.warns(FutureWarning, match="train.lr -> train.optimizer.lr") as caught:
        config = config_from_dict(old)
    assert len(caught) == 1
    train = config.train
    assert (train.optimizer.name, train.optimizer.lr, train.optimizer.momentum) == (
        "sgd",
        1e-4,
        0.99,
    )
    assert (train.schedule.name, train.schedule.step_size) == ("step", 25000)
    assert (train.stopping.patience, train.stopping.max_minutes) == (5, 8.0)
    assert (train.runtime.amp, train.runtime.num_workers) == ("bf16", 2)
    assert config.data.regions == "brats"
    assert old["train"]["lr"] == 1e-4  # the caller's data is left alone
    new = config_from_dict(config_to_dict(config))
    assert new == config


def test_moved_keys_point_at_existing_fields() -> None:
    plain = config_to_dict(Config())
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".")
        assert key not in plain[section] or isinstance(plain[section][key], dict), old
        table = plain
        for name in new.split("."):
            assert name in table, f"{old} -> {new}: {name} does not exist"
            table = table[name]


def test_shipped_configs_use_current_keys() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        for path in CONFIGS:
            load_config(path)


def test_metric_names_match_the_metrics_module() -> None:
    import typing

    from volseg.config import MetricName
    from volseg.metrics import METRICS

    assert typing.get_args(MetricName) == METRICS
    with pytest.raises(ConfigError, match=r"train.val_metrics\[1\]: expected one of dice"):
        config_from_dict({"train": {"val_metrics": ["dice", "f1"]}})


def test_segresnet_vae_brats_warms_up_as_adeniji() -> None:
    # "per-epoch linear warmup starting from 1e-6 to 1e-5 for the first 10 epochs", then
    # lr0 * (1 - e / N_e) ** 0.9, lr0 = 1e-4, N_e = 300
    train = load_config(CONFIGS_DIR / "segresnet_vae_brats.yaml").train
    assert (train.epochs, train.optimizer.name, train.optimizer.lr) == (300, "adam", 1e-4)
    schedule = train.schedule
    assert (schedule.name, schedule.poly_power, schedule.warmup_epochs) == ("poly", 0.9, 10)
    assert (schedule.warmup_start_lr, schedule.warmup_end_lr) == (1e-6, 1e-5)


def test_vnet_promise12_is_the_papers_recipe() -> None:
    config = load_config(CONFIGS_DIR / "vnet_promise12.yaml")
    train, preprocess = config.train, config.preprocess
    # "initial learning rate of 0.0001 which decreases by one order of magnitude every 25K
    # iterations", "momentum of 0.99", "mini-batches ... contained two volumes each"
    assert (train.schedule.name, train.schedule.step_size) == ("step", 25000)
    assert train.schedule.step_gamma == 0.1 and train.schedule.warmup_epochs == 0
    assert (train.optimizer.name, train.optimizer.lr, train.optimizer.momentum) == (
        "sgd",
        1e-4,
        0.99,
    )
    assert train.batch_size == 2
    # "48 hours, or 30K iterations circa"
    assert train.epochs * train.iterations_per_epoch == 30000
    # N4, then "resampled to a common resolution of 1 x 1 x 1.5 mm" (x, y, z)
    assert preprocess.n4 and preprocess.target_spacing == (1.0, 1.0, 1.5)
    # input volumes of 128 x 128 x 64 voxels (x, y, z), in array order (z, y, x)
    assert preprocess.crop_size == (64, 128, 128) and train.patch_size == (64, 128, 128)
    transforms = {t.name: t for t in config.augment.transforms}
    # "a 2 x 2 x 2 grid of control-points and B-spline interpolation", "15 voxels standard
    # deviation", on the fly before every iteration
    bspline = transforms["bspline"]
    assert bspline.p == 1.0 and bspline.kwargs["grid"] in (2, [2, 2, 2])
    assert bspline.kwargs["sigma_voxels"] == 15.0 and "sigma_mm" not in bspline.kwargs
    # histogram matching to "other randomly chosen scans belonging to the dataset"
    assert transforms["histogram_matching"].p == 1.0
    assert (config.model.name, config.loss.name) == ("vnet", "vnet_dice")
    # the names and kwargs are those of the registered transforms
    from volseg.data.transforms import build_augmentation
    from volseg.data.transforms.histogram import RandomHistogramMatching
    from volseg.data.transforms.spatial import RandomBSplineDeformation

    deform, match = build_augmentation(config.augment).transforms
    assert isinstance(deform, RandomBSplineDeformation)
    assert deform.grid == 2 and deform.sigma_voxels == 15.0
    assert isinstance(match, RandomHistogramMatching)


@pytest.mark.parametrize("text", ["?\n", "1: 2\n", "train: {1: 2}\n"])
def test_non_name_keys_are_a_config_error(text: str, tmp_path: Path) -> None:
    """Found by fuzzing: YAML `?` is the key None, which crashed the unknown-key message."""
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="keys must be names"):
        load_config(path)
