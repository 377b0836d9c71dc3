"""``--set key=value`` overrides, the keys a resume may change, cwd-relative roots, and
``volseg config show``."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from volseg.cli import main
from volseg.cli._common import UsageError, section_overrides
from volseg.cli.experiment import _with_overrides
from volseg.config import (
    Config,
    ConfigError,
    OptimizerConfig,
    StoppingConfig,
    TransformConfig,
    apply_overrides,
    check_resumable,
    load_config,
    override_keys,
)

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_values_are_typed_by_yaml_rules() -> None:
    config = apply_overrides(
        Config(),
        [
            "train.epochs=3",
            "train.patch_size=[64,64,32]",
            "infer.window=[32, 32, 16]",
            "infer.window=null",  # later overrides win
            "train.runtime.deterministic=true",
            "train.optimizer.lr=1e-3",  # YAML 1.1 (PyYAML) alone would read this as text
            "train.optimizer.name=sgd",
            "model.kwargs.base_channels=8",
            "model.kwargs.norm={name: group, groups: 4}",
            "data.val_cases=['007', case9]",
        ],
    )
    train = config.train
    assert (train.epochs, train.patch_size, config.infer.window) == (3, (64, 64, 32), None)
    assert train.runtime.deterministic is True
    assert train.optimizer == OptimizerConfig("sgd", lr=0.001)
    assert config.model.kwargs == {"base_channels": 8, "norm": {"name": "group", "groups": 4}}
    assert config.data.val_cases == ("007", "case9")
    # the rest is untouched
    untouched = dataclasses.replace(
        config, train=Config().train, infer=Config().infer, model=Config().model, data=Config().data
    )
    assert untouched == Config()


def test_the_yaml_file_reads_1e_minus_3_as_a_number_too(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "train:\n  optimizer: {lr: 1e-4, momentum: 9E-1, weight_decay: 2.5e-05}\n",
        encoding="utf-8",
    )
    optimizer = load_config(tmp_path / "c.yaml").train.optimizer
    assert (optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (1e-4, 0.9, 2.5e-5)
    # text stays text
    assert apply_overrides(Config(), ["data.layout=1e-3x"]).data.layout == "1e-3x"


def test_list_entries_and_whole_sections() -> None:
    base = apply_overrides(Config(), ["augment.transforms=[{name: flip, kwargs: {axes: [0]}}]"])
    config = apply_overrides(base, ["augment.transforms.0.p=0.25"])
    assert config.augment.transforms == (TransformConfig("flip", 0.25, {"axes": [0]}),)
    config = apply_overrides(Config(), ["train.stopping={patience: 4, max_minutes: 30}"])
    assert config.train.stopping == StoppingConfig(patience=4, max_minutes=30.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochz=3", "--set train.epochz: unknown key 'epochz' in train (its keys: epochs,"),
        ("trian.epochs=3", "--set trian.epochs: unknown key 'trian' in the config"),
        ("train.optimizer.rate=1", "unknown key 'rate' in train.optimizer"),
        ("train.epochs=three", "--set: train.epochs: expected an integer, got 'three'"),
        ("train.runtime.amp=fp8", "train.runtime.amp: expected one of none, bf16, fp16"),
        ("train.epochs.x=1", "--set train.epochs.x: train.epochs holds 50, not keys"),
        ("augment.transforms.0.p=1", "augment.transforms has 0 entries, no [0]"),
        ("train.epochs", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("train..epochs=3", "expected KEY=VALUE"),
        ("data.root=[unclosed", "is not a YAML value"),
        ("train.optimizer.lr=-1", "train.optimizer.lr: must be > 0"),
    ],
)
def test_bad_overrides_are_one_line_errors_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_old_spelling_moves_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="train.max_minutes: old spelling, please use "):
        config = apply_overrides(Config(), ["train.max_minutes=5"])
    assert config.train.stopping.max_minutes == 5.0
    with pytest.warns(FutureWarning):
        assert override_keys(["train.lr=0.1"]) == ["train.optimizer.lr"]
    assert override_keys(["train.stopping={patience: 3, max_minutes: 2}"]) == [
        "train.stopping.patience",
        "train.stopping.max_minutes",
    ]


def test_relative_root_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = apply_overrides(Config(), ["data.root=data/Task04"])
    assert config.data.root == str(tmp_path / "data" / "Task04")
    assert apply_overrides(Config(), ["data.root=/abs/Task04"]).data.root == "/abs/Task04"
    # and a recipe's root names the folder below where volseg runs, not below configs/
    recipe = load_config(CONFIGS[0])
    assert Path(recipe.data.root).is_relative_to(tmp_path / "data")


@pytest.mark.parametrize(
    "keys",
    [
        ["train.epochs=12"],
        ["train.stopping.max_minutes=30", "train.max_minutes=30"],
        ["train.stopping.patience=5", "train.stopping={min_delta: 0.01}"],
        ["train.validate_every=2"],  # allowed by name, whether or not the key exists yet
        ["train.runtime.device=cpu", "train.runtime.num_workers=2", "data.root=/moved"],
    ],
)
def test_resume_allows_keys_that_keep_the_recipe(keys: list[str]) -> None:
    old = "train.max_minutes=30" in keys
    with pytest.warns(FutureWarning) if old else contextlib.nullcontext():
        check_resumable(keys)


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("train.optimizer.lr=0.1", "train.optimizer.lr"),
        ("train.lr=0.1", "train.optimizer.lr"),
        ("train.patch_size=[32,32,32]", "train.patch_size"),
        ("model.kwargs.base_channels=8", "model.kwargs.base_channels"),
        ("train.stopping.patience=2", None),
        ("train={epochs: 3, seed: 1}", "train.seed"),
        ("train.runtime.amp=bf16", "train.runtime.amp"),
        ("run_dir=elsewhere", "run_dir"),
    ],
)
def test_resume_refuses_recipe_keys(key: str, named: str | None) -> None:
    if named is None:
        check_resumable([key])
        return
    old = key.startswith("train.lr")
    with (
        pytest.warns(FutureWarning) if old else contextlib.nullcontext(),
        pytest.raises(ConfigError) as err,
    ):
        check_resumable(["train.epochs=3", key])
    assert str(err.value).startswith(
        f"--resume: {named} cannot change on resume (it changes the run's recipe); start a new run"
    )


def test_predict_takes_infer_keys_only() -> None:
    assert section_overrides(["infer.window=[8,8,8]", "infer.overlap=0.25"], "infer") == {
        "window": (8, 8, 8),
        "overlap": 0.25,
    }
    with pytest.raises(UsageError, match="--set train.epochs: only infer.KEY=VALUE applies"):
        section_overrides(["train.epochs=3"], "infer")
    with pytest.raises(ConfigError, match="infer.overlap: must be in"):
        section_overrides(["infer.overlap=1.5"], "infer")


def test_a_flag_and_set_of_one_key_conflict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused before any model or config is read
    args = ["-m", str(tmp_path / "none"), "-i", "x.nii.gz", "-o", "y.nii.gz"]
    assert main(["predict", *args, "--window", "8", "--set", "infer.window=[8]"]) == 2
    assert "--window and --set infer.window both given" in capsys.readouterr().err
    assert main(["train", "x.yaml", "--epochs", "3", "--set", "train.epochs=4"]) == 2
    assert "--epochs and --set train.epochs both given" in capsys.readouterr().err


def test_experiment_overrides_reach_every_variant() -> None:
    exp = _with_overrides("drozdzal-skips", "smoke", ["model.kwargs.base_channels=3"])
    assert exp is not None and len(exp.variants) > 1
    assert all(v.model.kwargs["base_channels"] == 3 for v in exp.variants)
    assert exp.base.model.kwargs["base_channels"] == 3
    with pytest.raises(UsageError, match="experiment --set train.seed: set by the experiment"):
        _with_overrides("drozdzal-skips", "smoke", ["train.seed=4"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_show_loads_back_equal(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["train.epochs=3", "data.root=/data/x", "infer.window=null"]
    assert main(["config", "show", str(path), *[f"--set={s}" for s in sets]]) == 0
    shown = tmp_path / "shown.yaml"
    shown.write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_config(shown) == apply_overrides(load_config(path), sets)
    # every key is written out, defaults included
    assert "channels_last:" in shown.read_text(encoding="utf-8")


def test_config_show_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(CONFIGS[0]), "--set", "train.epochz=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("volseg: error: --set train.epochz: unknown key 'epochz' in train")
    assert err.count("\n") == 1
    assert main(["config", "show", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err
