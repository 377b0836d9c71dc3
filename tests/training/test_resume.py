"""Exact resume, crash safety (SIGKILL), extension to more epochs, logs and the region regime."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from volseg.config import (
    AugmentConfig,
    Config,
    DataConfig,
    InferConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    PreprocessConfig,
    RuntimeConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
    dump_config,
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.nn.build import build_model
from volseg.regions import BRATS_REGIONS
from volseg.training.callbacks import Callback
from volseg.training.checkpoint import load_checkpoint
from volseg.training.state import TrainState
from volseg.training.step import region_targets
from volseg.training.trainer import train

SRC = Path(__file__).resolve().parents[2] / "src"


def tiny_config(
    root: Path,
    run_dir: Path,
    regions: tuple[tuple[int, ...], ...] | None = None,
    schedule: ScheduleConfig | None = None,
    runtime: RuntimeConfig | None = None,
    optimizer: OptimizerConfig | None = None,
    **train_kwargs: object,
) -> Config:
    train = {
        "epochs": 2,
        "iterations_per_epoch": 2,
        "batch_size": 2,
        "patch_size": (16, 16, 16),
        "optimizer": optimizer or OptimizerConfig("adam", lr=1e-3),
        "schedule": schedule or ScheduleConfig("poly", warmup_epochs=1, warmup_start_lr=1e-4),
        "runtime": runtime or RuntimeConfig(),
        **train_kwargs,
    }
    data = DataConfig(root=str(root), labels=(0, 1, 2), regions=regions, val_cases=("case02",))
    return Config(
        data=data,
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        augment=AugmentConfig(
            (
                TransformConfig("flip", 0.5, {"axes": [0, 1, 2]}),
                TransformConfig("affine", 0.5),
                TransformConfig("intensity_shift_scale", 0.5),
            )
        ),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        loss=LossConfig("dice_ce"),
        train=TrainConfig(**train),  # type: ignore[arg-type]
        infer=InferConfig(window=None),  # whole case at once: faster than windows here
        run_dir=str(run_dir),
    )


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=3, nested=True)


class StopAfter(Callback):
    """Interrupts a run at the end of an epoch, as a crash between epochs would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            state.trainer.stop_reason = "test interruption"


def test_straight_equals_half_resume_half(phantoms: Path, tmp_path: Path) -> None:
    # poly + warm-up depend on the total epochs: the split run is configured for 2 epochs,
    # interrupted after 1, then resumed (N = 2 keeps the test fast on a shared CPU)
    straight = train(tiny_config(phantoms, tmp_path / "a"), progress=False)
    first = train(tiny_config(phantoms, tmp_path / "b"), progress=False, callbacks=[StopAfter(1)])
    assert first.epochs == 1 and first.stop_reason == "test interruption"
    second = train(tiny_config(phantoms, tmp_path / "b"), progress=False, resume=True)
    assert straight.epochs == second.epochs == 2
    a = load_checkpoint(tmp_path / "a" / "checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert a.metrics["val_dice"] == b.metrics["val_dice"]
    assert a.trainer.step == b.trainer.step == 4
    assert a.trainer == dataclasses.replace(b.trainer, seconds=a.trainer.seconds)
    rows_a = list(csv.DictReader((tmp_path / "a" / "log.csv").open(encoding="utf-8")))
    rows_b = list(csv.DictReader((tmp_path / "b" / "log.csv").open(encoding="utf-8")))
    assert [r["epoch"] for r in rows_b] == ["1", "2"]
    for ra, rb in zip(rows_a, rows_b):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {
            k: v for k, v in rb.items() if k != "seconds"
        }
    # the logged LRs follow warm-up (epoch 1 at warmup_start_lr) then poly
    lrs = [float(r["lr"]) for r in rows_a]
    assert lrs == pytest.approx([1e-4, 1e-3 * (1 - 1 / 2) ** 0.9], rel=1e-5)


def test_finished_run_can_be_extended(phantoms: Path, tmp_path: Path) -> None:
    config = tiny_config(phantoms, tmp_path / "run", epochs=1, schedule=ScheduleConfig())
    train(config, progress=False)
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    result = train(longer, progress=False, resume=True)
    assert result.epochs == 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint_last.pt").epoch == 2
    # resuming a finished run is a no-op
    assert train(longer, progress=False, resume=True).epochs == 2


def test_sigkill_mid_epoch_leaves_a_resumable_run(phantoms: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = tiny_config(
        phantoms, run, epochs=200, iterations_per_epoch=3, runtime=RuntimeConfig(threads=1)
    )
    config_path = tmp_path / "config.yaml"
    dump_config(config, config_path)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "volseg", "train", str(config_path), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    last = run / "checkpoint_last.pt"
    try:
        deadline = time.monotonic() + 60
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        time.sleep(0.4)  # into the next epoch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    checkpoint = load_checkpoint(last)  # loadable, not truncated
    done = checkpoint.epoch
    assert done >= 1
    torch.load(last, weights_only=True)
    resumed = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=done + 1))
    result = train(resumed, progress=False, resume=True)
    assert result.epochs == done + 1
    rows = list(csv.DictReader((run / "log.csv").open(encoding="utf-8")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, done + 2))


def test_logs_tensorboard_curves_and_grad_norms(phantoms: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(
        phantoms,
        tmp_path / "run",
        epochs=2,
        runtime=RuntimeConfig(log_grad_norms=True),
        optimizer=OptimizerConfig("adam", lr=1e-3, grad_clip=1.0),
    )
    train(config, progress=False)
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "log.csv").open(encoding="utf-8")))
    assert {"train_loss", "val_loss", "val_dice", "val_dice_1", "val_dice_2", "lr"} <= set(rows[0])
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "val_dice", "lr", "val_loss"} <= tags
    assert [e.step for e in events.Scalars("val_dice")] == [1, 2]
    assert any(t.startswith("grad_norm/") for t in tags)
    assert (run / "curves.png").stat().st_size > 1000
    assert (run / "grad_norms.png").stat().st_size > 1000
    norms = list(csv.DictReader((run / "grad_norms.csv").open(encoding="utf-8")))
    assert {r["epoch"] for r in norms} == {"1", "2"}
    assert all(float(r["norm"]) >= 0 for r in norms)


def test_region_targets_brats_by_hand() -> None:
    labels = [0, 1, 2, 4]
    target = torch.tensor([0, 1, 2, 3]).reshape(1, 1, 4, 1, 1)  # indices of 0, 1, 2, 4
    regions = region_targets(target, labels, BRATS_REGIONS)
    assert regions.shape == (1, 3, 4, 1, 1)
    assert regions[0, :, :, 0, 0].tolist() == [
        [0, 1, 1, 1],  # WT = {1, 2, 4}
        [0, 1, 0, 1],  # TC = {1, 4}
        [0, 0, 0, 1],  # ET = {4}
    ]


def test_region_regime_trains_sigmoid_channels(phantoms: Path, tmp_path: Path) -> None:
    # label 2 nested in label 1: regions "whole" {1, 2} and "inner" {2}
    config = tiny_config(phantoms, tmp_path / "run", epochs=1, regions=((1, 2), (2,)))
    config = dataclasses.replace(config, loss=LossConfig("soft_dice"))  # sigmoid per region
    result = train(config, progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")
    model = build_model(config, 1, 3)
    model.load_state_dict(checkpoint.model)
    out = model.eval()(torch.zeros(1, 1, 16, 16, 16))
    assert out.shape == (1, 2, 16, 16, 16)  # one channel per region
    assert {"val_dice_r0", "val_dice_r1", "val_loss"} <= set(checkpoint.metrics)
    assert result.monitor == "val_dice" and result.best_value is not None
