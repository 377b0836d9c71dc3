"""``train.validate_every`` and ``train.val_max_cases``: which epochs validate, on which cases."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from volseg.config import (
    Config,
    ConfigError,
    DataConfig,
    InferConfig,
    LossConfig,
    ModelConfig,
    PreprocessConfig,
    StoppingConfig,
    TrainConfig,
    config_from_dict,
)
from volseg.data.synthetic import write_phantom_dataset
from volseg.training.callbacks import Callback
from volseg.training.checkpoint import TrainerState, load_checkpoint
from volseg.training.state import TrainState
from volseg.training.trainer import _end_epoch, train
from volseg.training.validation import is_validation_epoch, validation_subset


def test_validation_epochs_by_hand() -> None:
    train_cfg = TrainConfig(epochs=7, validate_every=3)
    assert [e for e in range(1, 8) if is_validation_epoch(e, train_cfg)] == [3, 6, 7]
    every = TrainConfig(epochs=4)  # default: every epoch
    assert [e for e in range(1, 5) if is_validation_epoch(e, every)] == [1, 2, 3, 4]


def test_validation_subset_is_fixed_and_ordered() -> None:
    cases = [f"case{i:02d}" for i in range(10)]
    subset = validation_subset(cases, 3, seed=5)
    assert len(subset) == 3 and subset == sorted(subset) and set(subset) <= set(cases)
    assert validation_subset(cases, 3, seed=5) == subset  # same every validation / resume
    assert validation_subset(cases, None, seed=5) == cases
    assert validation_subset(cases, 10, seed=5) == cases
    assert len({tuple(validation_subset(cases, 3, seed=s)) for s in range(6)}) > 1


@pytest.mark.parametrize(
    "train_cfg,message",
    [
        ({"validate_every": 0}, "train.validate_every: must be >= 1, got 0"),
        ({"val_max_cases": 0}, "train.val_max_cases: must be >= 1"),
    ],
)
def test_bad_values_are_config_errors(train_cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"train": train_cfg})


def fake_state(validate_every: int, patience: int) -> TrainState:
    train_cfg = TrainConfig(
        epochs=20, validate_every=validate_every, stopping=StoppingConfig(patience=patience)
    )
    state = SimpleNamespace(
        config=Config(train=train_cfg), trainer=TrainerState(), epoch=0, improved=False
    )
    return state  # type: ignore[return-value]


def stop_epoch(validate_every: int, patience: int, scores: dict[int, float]) -> int | None:
    """The epoch early stopping ends a run whose validations score ``scores`` (by epoch)."""
    state = fake_state(validate_every, patience)
    for epoch in range(1, 21):
        state.epoch = epoch
        validated = epoch in scores
        _end_epoch(state, {"val_dice": scores.get(epoch, math.nan)}, True, validated)
        assert state.improved == (validated and epoch == state.trainer.best_epoch)
        if state.trainer.stop_reason:
            return epoch
    return None


def test_patience_counts_epochs_not_validations() -> None:
    # validations at 2, 4, 6, 8: a gain at 2, none after; the epochs since the gain are 2, 4, 6
    scores = {2: 0.5, 4: 0.4, 6: 0.4, 8: 0.45}
    assert stop_epoch(2, patience=3, scores=scores) == 6  # 4 epochs >= 3 at epoch 6
    assert stop_epoch(2, patience=4, scores=scores) == 6
    assert stop_epoch(2, patience=5, scores=scores) == 8
    assert stop_epoch(2, patience=7, scores=scores) is None
    # every epoch (the old behaviour): patience 2 stops two epochs after the gain
    assert stop_epoch(1, patience=2, scores={1: 0.5, 2: 0.4, 3: 0.4, 4: 0.6}) == 3


def test_epoch_without_validation_keeps_the_best() -> None:
    state = fake_state(3, 0)
    state.epoch = 3
    _end_epoch(state, {"val_dice": 0.7}, True, True)
    assert state.improved and state.trainer.best_epoch == 3
    state.epoch = 4
    _end_epoch(state, {}, True, False)
    assert not state.improved and state.trainer.best_epoch == 3


# --- end to end -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantoms"), cases=4, nested=True)


def tiny_config(root: Path, run_dir: Path, **train_kwargs: object) -> Config:
    train_cfg = {
        "epochs": 3,
        "iterations_per_epoch": 1,
        "batch_size": 1,
        "patch_size": (16, 16, 16),
        "validate_every": 2,
        **train_kwargs,
    }
    return Config(
        data=DataConfig(root=str(root), labels=(0, 1, 2), val_cases=("case02", "case03")),
        preprocess=PreprocessConfig(target_spacing=(1.5, 1.5, 1.5)),
        model=ModelConfig("vnet", {"base_channels": 4, "kernel_size": 3}),
        loss=LossConfig("dice_ce"),
        train=TrainConfig(**train_cfg),  # type: ignore[arg-type]
        infer=InferConfig(window=None),
        run_dir=str(run_dir),
    )


class Record(Callback):
    """Which epochs improved, and the cases each validation saw."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.improved: dict[int, bool] = {}
        self.stop_after = stop_after

    def on_epoch_end(self, state: TrainState) -> None:
        self.improved[state.epoch] = state.improved
        if state.epoch == self.stop_after:
            state.trainer.stop_reason = "test interruption"


def log_rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_validates_on_schedule_and_resumes_exactly(phantoms: Path, tmp_path: Path) -> None:
    record = Record()
    straight = train(tiny_config(phantoms, tmp_path / "a"), progress=False, callbacks=[record])
    rows = log_rows(tmp_path / "a")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # epoch 1 has no validation (blank cells), 2 (k = 2) and 3 (the last) have
    assert rows[0]["val_dice"] == "" and rows[0]["val_loss"] == "" and rows[0]["train_loss"]
    assert all(rows[i]["val_dice"] and rows[i]["val_dice_1"] for i in (1, 2))
    assert record.improved[1] is False  # no validation: the best checkpoint is not written
    best = load_checkpoint(tmp_path / "a" / "checkpoint_best.pt")
    assert straight.best_epoch == best.epoch and best.epoch in (2, 3)
    assert straight.best_value == pytest.approx(float(rows[best.epoch - 1]["val_dice"]), abs=1e-6)

    # interrupted after the unvalidated epoch 1, then resumed: identical weights and log
    train(tiny_config(phantoms, tmp_path / "b"), progress=False, callbacks=[Record(1)])
    resumed = train(tiny_config(phantoms, tmp_path / "b"), progress=False, resume=True)
    assert (resumed.epochs, resumed.best_epoch) == (3, straight.best_epoch)
    a = load_checkpoint(tmp_path / "a" / "checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint_last.pt")
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert a.trainer == dataclasses.replace(b.trainer, seconds=a.trainer.seconds)
    for ra, rb in zip(rows, log_rows(tmp_path / "b"), strict=True):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {
            k: v for k, v in rb.items() if k != "seconds"
        }


def test_val_max_cases_validates_a_fixed_subset(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import volseg.training.trainer as trainer

    seen: list[list[str]] = []
    real = trainer.validate

    def spy(model: Any, cases: Any, *args: Any, **kwargs: Any) -> dict[str, list[float]]:
        seen.append([c.case_id for c in cases])
        return real(model, cases, *args, **kwargs)

    monkeypatch.setattr(trainer, "validate", spy)
    config = tiny_config(phantoms, tmp_path / "run", epochs=2, validate_every=1, val_max_cases=1)
    train(config, progress=False)
    expected = validation_subset(["case02", "case03"], 1, seed=config.train.seed)
    assert seen == [expected, expected]
