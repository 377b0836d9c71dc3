"""Config checks before anything is written, and a run's one config (issue 18, item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from volseg.cli import main
from volseg.config import (
    Config,
    ConfigError,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    config_to_dict,
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.training.trainer import train


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=2)


def _config(root: Path, run_dir: Path, **train: object) -> Config:
    settings: dict[str, object] = {
        "epochs": 1,
        "iterations_per_epoch": 1,
        "batch_size": 1,
        "patch_size": (16, 16, 16),
        **train,
    }
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_fraction=0.0),
        preprocess=PreprocessConfig(target_spacing=(2.0, 2.0, 2.0)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(**settings),  # type: ignore[arg-type]
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


def _yaml(path: Path, config: Config, edit: dict[str, dict[str, object]] | None = None) -> Path:
    data = config_to_dict(config)
    for section, values in (edit or {}).items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("train", {"batch_size": 0}, "c.yaml: train.batch_size: must be >= 1, got 0"),
        ("train", {"patch_size": [16, 0, 16]}, "patch_size: every value must be > 0"),
        ("train", {"patch_size": [15, 16, 16]}, "must be divisible by"),
        ("train", {"foreground_ratio": 1.5}, "foreground_ratio: must be in [0, 1]"),
        ("infer", {"batch_size": 0}, "batch_size: must be >= 1"),
        ("infer", {"window": [16, -1, 16]}, "window: every value must be > 0"),
        ("data", {"val_fraction": 1.0}, "val_fraction: must be in [0, 1)"),
        ("preprocess", {"target_spacing": [1.0, 0.0, 1.0]}, "target_spacing: every value"),
        ("preprocess", {"clip_percentiles": [99, 1]}, "clip_percentiles: needs 0 <= low"),
    ],
)
def test_bad_config_values_fail_before_the_run_dir_exists(
    phantoms: Path,
    tmp_path: Path,
    section: str,
    values: dict[str, object],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = tmp_path / "run"
    path = _yaml(tmp_path / "c.yaml", _config(phantoms, run_dir), {section: values})
    assert main(["train", str(path), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run_dir.exists()


def test_config_values_are_checked_in_python_too() -> None:
    with pytest.raises(ConfigError, match="batch_size: must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="sigma_scale: must be > 0"):
        InferConfig(sigma_scale=0.0)


@pytest.fixture(scope="module")
def trained(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(_config(phantoms, run_dir), progress=False)
    return run_dir


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


def test_failed_resume_changes_nothing(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(trained, tmp_path / "run")
    (run / "checkpoint_last.pt").write_bytes(b"not a checkpoint")
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "--epochs", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint_last.pt: unreadable checkpoint" in err[0]
    assert _snapshot(run) == before


def test_edited_config_yaml_is_an_error_naming_the_key(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(trained, tmp_path / "run")
    data = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    data["train"]["optimizer"]["lr"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    before = _snapshot(run)
    assert main(["train", "--resume", str(run), "--epochs", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.yaml: differs from the config in checkpoint_last.pt" in err[0]
    assert "train.optimizer.lr (0.5 in config.yaml, 0.001 in the checkpoint)" in err[0]
    assert _snapshot(run) == before


def test_resume_uses_the_checkpoint_config_and_extends(trained: Path, tmp_path: Path) -> None:
    run = _copy(trained, tmp_path / "moved")  # a moved run resumes where it now is
    assert main(["train", "--resume", str(run), "--epochs", "2", "-q"]) == 0
    data = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert data["train"]["epochs"] == 2 and data["run_dir"] == str(run)
