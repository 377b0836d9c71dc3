from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from volseg.config import (
    AugmentConfig,
    Config,
    DataConfig,
    InferConfig,
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    TransformConfig,
    config_from_dict,
)
from volseg.data.layouts import find_cases
from volseg.data.synthetic import write_phantom_dataset
from volseg.io import VolumeReadError
from volseg.training.checkpoint import CheckpointError, load_checkpoint
from volseg.training.trainer import split_cases, train


def tiny_config(root: Path, run_dir: Path, **train_kwargs: object) -> Config:
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_fraction=0.34),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        augment=AugmentConfig(
            (TransformConfig("flip", 0.5, {"axes": [0, 1, 2]}), TransformConfig("affine", 0.5))
        ),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        train=TrainConfig(
            **{  # type: ignore[arg-type]
                "epochs": 2,
                "iterations_per_epoch": 2,
                "batch_size": 2,
                "patch_size": (16, 16, 16),
                **train_kwargs,
            }
        ),
        infer=InferConfig(window=(16, 16, 16)),
        run_dir=str(run_dir),
    )


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=3, nested=True)


def test_run_dir_holds_config_log_and_loadable_checkpoints(phantoms: Path, tmp_path: Path) -> None:
    config = tiny_config(phantoms, tmp_path / "run")
    result = train(config, progress=False)
    run = tmp_path / "run"
    assert result.epochs == 2 and result.best_value is not None
    assert {"config.yaml", "log.csv", "checkpoint_last.pt", "checkpoint_best.pt"} <= {
        p.name for p in run.iterdir()
    }
    rows = list(csv.DictReader((run / "log.csv").open(encoding="utf-8")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val_dice"]) <= 1.0 for r in rows)
    checkpoint = load_checkpoint(run / "checkpoint_last.pt")
    assert checkpoint.epoch == 2 and checkpoint.labels == [0, 1, 2] and checkpoint.in_channels == 1
    resolved = config_from_dict(checkpoint.config)
    assert resolved.model == config.model and resolved.train == config.train
    # only tensors and plain data: weights_only loading must accept the file
    torch.load(run / "checkpoint_best.pt", weights_only=True)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left


def test_a_log_gets_epoch_lines_not_a_progress_bar(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stderr is not a terminal here (captured, as in `make demo > log`): no bar redrawn per
    iteration, but one line per epoch."""
    train(tiny_config(phantoms, tmp_path / "run", epochs=1), progress=True)
    out, err = capsys.readouterr()
    assert "epoch 1: loss" in out
    assert "training:" not in err and "it/s" not in err and "s/it" not in err


def test_same_seed_same_weights(phantoms: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        train(tiny_config(phantoms, tmp_path / name, epochs=1), progress=False)
    a = load_checkpoint(tmp_path / "a" / "checkpoint_last.pt").model
    b = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt").model
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_split_is_deterministic_and_honours_val_cases(phantoms: Path) -> None:
    cases = find_cases(phantoms).cases
    config = Config(data=DataConfig(val_fraction=0.34))
    assert split_cases(cases, config) == split_cases(cases, config)
    fixed = Config(data=DataConfig(val_cases=("case01",)))
    train_cases, val_cases = split_cases(cases, fixed)
    assert [c.case_id for c in val_cases] == ["case01"] and len(train_cases) == 2
    with pytest.raises(ValueError, match="not in the dataset: nope"):
        split_cases(cases, Config(data=DataConfig(val_cases=("nope",))))


def test_unreadable_image_is_one_clear_error(tmp_path: Path) -> None:
    manifest = write_phantom_dataset(tmp_path / "data", cases=2)
    (tmp_path / "data" / "case01_0000.nii.gz").write_bytes(b"broken")
    with pytest.raises(VolumeReadError, match=r"case01_0000\.nii\.gz: cannot read image"):
        train(tiny_config(manifest, tmp_path / "run"), progress=False)
    assert not (tmp_path / "run" / "checkpoint_last.pt").exists()


def test_2d_data_with_3d_patches_is_refused(tmp_path: Path) -> None:
    manifest = write_phantom_dataset(tmp_path / "data", cases=2, shape=(20, 24), spacing=(1.0, 1.0))
    config = tiny_config(manifest, tmp_path / "run")
    config = dataclasses.replace(config, preprocess=PreprocessConfig(orient=None))
    with pytest.raises(ValueError, match=r"case0\d_0000\.nii\.gz: 2-D image, but train.patch_size"):
        train(config, progress=False)


def test_label_values_outside_declared_are_refused(phantoms: Path, tmp_path: Path) -> None:
    config = tiny_config(phantoms, tmp_path / "run")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, labels=(0, 1)))
    with pytest.raises(VolumeReadError, match=r"label\.nii\.gz: label values \[2\] not among"):
        train(config, progress=False)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="bad.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_2d_net_trains_on_slices_of_3d_scans_and_predicts_them(
    phantoms: Path, tmp_path: Path
) -> None:
    """nnU-Net's 2d configuration: patches are slices, prediction runs slice by slice."""
    from volseg.inference import Predictor
    from volseg.io import read_volume

    config = dataclasses.replace(
        tiny_config(phantoms, tmp_path / "run", epochs=1, patch_size=(16, 16)),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5)),  # in-plane; z kept
        augment=AugmentConfig(
            (TransformConfig("flip", 0.5, {"axes": [0, 1]}), TransformConfig("affine", 0.5))
        ),
        model=ModelConfig("resunet", {"spatial_dims": 2, "channels": (4, 8, 8)}),
        infer=InferConfig(window=(16, 16), batch_size=4),
    )
    result = train(config, progress=False)
    assert result.epochs == 1 and result.best_value is not None
    case = find_cases(phantoms).cases[0]
    scan = read_volume(case.images[0])
    label = Predictor.from_run(tmp_path / "run").predict(case.images[0])
    assert label.shape == scan.shape and label.spacing == scan.spacing
    assert label.origin == scan.origin and label.direction == scan.direction
    assert set(map(int, torch.from_numpy(label.array).unique())) <= {0, 1, 2}


@pytest.mark.parametrize("monitor", ["val_loss", "val_hd95"])
def test_monitor_picks_the_best_checkpoint(phantoms: Path, tmp_path: Path, monitor: str) -> None:
    """Lower-is-better monitors: the best checkpoint is the epoch with the smallest value."""
    config = tiny_config(phantoms, tmp_path / "run", epochs=3, monitor=monitor)
    result = train(config, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open(encoding="utf-8")))
    values = [float(r[monitor]) for r in rows]
    assert result.monitor == monitor and result.best_value == pytest.approx(min(values), rel=1e-5)
    assert result.best_epoch == values.index(min(values)) + 1
    best = load_checkpoint(tmp_path / "run" / "checkpoint_best.pt")
    assert best.epoch == result.best_epoch and best.metrics[monitor] == result.best_value
    if monitor == "val_hd95":
        assert {"val_hd95_1", "val_hd95_2"} <= set(rows[0])


def test_a_run_without_validation_writes_only_its_last_checkpoint(
    phantoms: Path, tmp_path: Path
) -> None:
    """No held-out case: no best to pick, one checkpoint per epoch; predict takes the last."""
    from volseg.inference import Predictor
    from volseg.training.checkpoint import find_checkpoint

    config = tiny_config(phantoms, tmp_path / "run")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, val_fraction=0.0))
    result = train(config, progress=False)
    run = tmp_path / "run"
    assert result.best_value is None and result.best_epoch == result.epochs == 2
    assert not (run / "checkpoint_best.pt").exists()
    assert find_checkpoint(run) == run / "checkpoint_last.pt"
    assert load_checkpoint(run / "checkpoint_last.pt").epoch == 2
    Predictor.from_run(run)  # loads

    # resumed over a best checkpoint it did not write: that one steps aside, kept
    (run / "checkpoint_best.pt").write_bytes((run / "checkpoint_last.pt").read_bytes())
    extended = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=3))
    with pytest.warns(UserWarning, match="no validation cases"):
        train(extended, progress=False, resume=True)
    assert find_checkpoint(run) == run / "checkpoint_last.pt"
    assert (run / "checkpoint_best.stale.pt").is_file()
    assert load_checkpoint(run / "checkpoint_best.stale.pt").epoch == 2


def test_early_stopping_follows_the_monitor(phantoms: Path, tmp_path: Path) -> None:
    """With a min_delta no loss can beat, training stops after `patience` epochs past the first."""
    from volseg.config import StoppingConfig

    stopping = StoppingConfig(patience=1, min_delta=1e9)
    config = tiny_config(phantoms, tmp_path / "run", epochs=5, monitor="val_loss")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, stopping=stopping))
    result = train(config, progress=False)
    assert result.epochs == 2
    assert result.stop_reason == "early stopping: no val_loss gain in 1 epochs"


def test_config_mistakes_fail_before_any_scan_is_read(tmp_path: Path) -> None:
    """A misspelt transform is reported even though the scans are unreadable: no work is lost."""
    from volseg.config import ConfigError, TransformConfig

    manifest = write_phantom_dataset(tmp_path / "data", cases=2)
    (tmp_path / "data" / "case01_0000.nii.gz").write_bytes(b"broken")
    config = tiny_config(manifest, tmp_path / "run")
    augment = dataclasses.replace(config.augment, transforms=(TransformConfig("fl1p"),))
    with pytest.raises(ConfigError, match=r"augment.transforms\[0\].name: unknown transform"):
        train(dataclasses.replace(config, augment=augment), progress=False)
    assert not (tmp_path / "run").exists()


def test_batch_dice_by_hand() -> None:
    from volseg.training.step import batch_dice

    # softmax: 3 classes over 4 voxels; class 1 pred {0, 1} vs truth {0}, class 2 pred {2} vs {2, 3}
    logits = torch.tensor([[0, 5, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]], dtype=torch.float32)
    logits = logits.T.reshape(1, 3, 4, 1, 1)
    target = torch.tensor([1, 0, 2, 2]).reshape(1, 1, 4, 1, 1)
    assert batch_dice(logits, target) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert batch_dice(logits, target, eps=1.0) == pytest.approx((3 / 4 + 3 / 4) / 2)
    # regions: one sigmoid channel, pred {0, 1} (logit > 0) vs mask {1}
    region_logits = torch.tensor([1.0, 2.0, -1.0, -3.0]).reshape(1, 1, 4, 1, 1)
    masks = torch.tensor([0.0, 1.0, 0.0, 0.0]).reshape(1, 1, 4, 1, 1)
    assert batch_dice(region_logits, masks) == pytest.approx(2 / 3)


def test_vae_run_logs_terms_train_dice_and_adeniji_metrics(tmp_path: Path) -> None:
    """The U-Net + VAE regime end to end: sigmoid regions, VAE loss terms, Table 1 metrics."""
    from volseg.config import LossConfig

    manifest = write_phantom_dataset(tmp_path / "data", cases=2, nested=True)
    config = tiny_config(
        manifest,
        tmp_path / "run",
        epochs=1,
        val_metrics=("dice", "precision", "recall", "accuracy"),
        metric_eps=1.0,
    )
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, regions=((1, 2), (2,)), val_fraction=0.5),
        model=ModelConfig("segresnet_vae", {"init_filters": 4, "vae_input_size": (16, 16, 16)}),
        loss=LossConfig("vae"),
    )
    train(config, progress=False)
    row = next(csv.DictReader((tmp_path / "run" / "log.csv").open(encoding="utf-8")))
    assert {"train_loss_dice", "train_loss_l2", "train_loss_kl", "train_dice"} <= set(row)
    assert {"val_loss", "val_loss_dice"} <= set(row)
    assert float(row["val_loss"]) == pytest.approx(float(row["val_loss_dice"]))
    for metric in ("dice", "precision", "recall", "accuracy"):
        assert {f"val_{metric}", f"val_{metric}_r0", f"val_{metric}_r1"} <= set(row)
        assert 0.0 <= float(row[f"val_{metric}"]) <= 1.0


def _subnormal_survives() -> bool:
    return bool(torch.tensor([1e-39], dtype=torch.float32).mul(1.5).item() != 0.0)


def test_training_flushes_subnormals_and_restores_them(phantoms: Path, tmp_path: Path) -> None:
    from volseg.config import RuntimeConfig
    from volseg.training.callbacks import Callback

    seen: list[bool] = []

    class Probe(Callback):
        def on_after_backward(self, state: object) -> None:  # type: ignore[override]
            seen.append(_subnormal_survives())

    assert _subnormal_survives()
    train(tiny_config(phantoms, tmp_path / "on"), progress=False, callbacks=[Probe()])
    assert seen and not any(seen)  # flushed to zero during the steps
    assert _subnormal_survives()  # and back to IEEE behaviour afterwards
    seen.clear()
    off = RuntimeConfig(flush_denormal=False)
    train(tiny_config(phantoms, tmp_path / "off", runtime=off), progress=False, callbacks=[Probe()])
    assert seen and all(seen)
    torch.set_flush_denormal(True)  # the caller's own setting survives a run
    try:
        train(tiny_config(phantoms, tmp_path / "kept"), progress=False)
        assert not _subnormal_survives()
    finally:
        torch.set_flush_denormal(False)
