from __future__ import annotations

import math

import pytest
import torch

from volseg.config import (
    ConfigError,
    OptimizerConfig,
    ScheduleConfig,
    StoppingConfig,
    TrainConfig,
)
from volseg.training.schedules import (
    build_optimizer,
    build_scheduler,
    early_stopping,
    learning_rate,
    step_iterations,
)


def recipe(
    lr: float,
    epochs: int,
    iterations_per_epoch: int,
    optimizer: str = "adam",
    **schedule: object,
) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        iterations_per_epoch=iterations_per_epoch,
        optimizer=OptimizerConfig(name=optimizer, lr=lr),  # type: ignore[arg-type]
        schedule=ScheduleConfig(**schedule),  # type: ignore[arg-type]
    )


def driven_lrs(train: TrainConfig, steps: int) -> list[float]:
    """The LR an optimizer actually uses at each of ``steps`` iterations under the scheduler."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(train.optimizer, [param])
    scheduler = build_scheduler(train, optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_constant() -> None:
    train = recipe(lr=0.01, epochs=3, iterations_per_epoch=4)
    assert driven_lrs(train, 12) == pytest.approx([0.01] * 12)


def test_step_decay_divides_by_ten_every_step_size_iterations() -> None:
    # V-Net: lr 1e-4 divided by 10 every 25K iterations, here every 5
    train = recipe(1e-4, 4, 4, "sgd", name="step", step_size=5)
    expected = [1e-4] * 5 + [1e-5] * 5 + [1e-6] * 5 + [1e-7]
    assert driven_lrs(train, 16) == pytest.approx(expected, rel=1e-9)


def test_poly_matches_formula_per_epoch() -> None:
    train = recipe(lr=1e-4, epochs=5, iterations_per_epoch=3, name="poly")
    expected = [1e-4 * (1 - e / 5) ** 0.9 for e in range(5) for _ in range(3)]
    assert driven_lrs(train, 15) == pytest.approx(expected, rel=1e-9)
    # by hand: epoch 2 of 5 -> 1e-4 * 0.6 ** 0.9
    assert learning_rate(train, 6) == pytest.approx(1e-4 * 0.631_445_867, rel=1e-8)
    assert learning_rate(train, 100) == 0.0  # past the horizon


def test_warmup_then_poly() -> None:
    # Adeniji: linear warm-up 1e-6 -> over W epochs, then poly; continuous at the junction
    train = recipe(1e-4, 10, 2, name="poly", warmup_epochs=4, warmup_start_lr=1e-6)
    junction = 1e-4 * (1 - 4 / 10) ** 0.9
    expected = []
    for e in range(10):
        lr = 1e-6 + (junction - 1e-6) * e / 4 if e < 4 else 1e-4 * (1 - e / 10) ** 0.9
        expected += [lr, lr]
    assert driven_lrs(train, 20) == pytest.approx(expected, rel=1e-9)
    assert expected[0] == 1e-6 and expected[8] == pytest.approx(junction)


def test_warmup_to_an_end_rate_then_poly_at_the_global_epoch() -> None:
    # Adeniji: "per-epoch linear warmup starting from 1e-6 to 1e-5 for the first 10 epochs",
    # then lr0 * (1 - e / 300) ** 0.9 with lr0 = 1e-4 and e the current epoch number
    train = recipe(
        1e-4, 300, 2, name="poly", warmup_epochs=10, warmup_start_lr=1e-6, warmup_end_lr=1e-5
    )
    by_hand = [1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 7e-6, 8e-6, 9e-6, 1e-5]
    by_hand += [9.699_49e-5]  # epoch 10: 1e-4 * (290 / 300) ** 0.9 = 1e-4 * 0.969949
    assert driven_lrs(train, 22) == pytest.approx([lr for lr in by_hand for _ in range(2)], 1e-5)
    assert learning_rate(train, 2 * 299) == pytest.approx(1e-4 * (1 / 300) ** 0.9, rel=1e-12)
    # without an end rate the warm-up still aims at the poly value of epoch 10 (continuous)
    continuous = recipe(1e-4, 300, 2, name="poly", warmup_epochs=10, warmup_start_lr=1e-6)
    assert learning_rate(continuous, 2 * 9) == pytest.approx(1e-6 + (9.699_49e-5 - 1e-6) * 0.9)


def test_warmup_end_rate_with_a_step_schedule() -> None:
    train = recipe(1.0, 4, 2, name="step", step_size=4, warmup_epochs=2, warmup_end_lr=0.5)
    assert driven_lrs(train, 8) == pytest.approx([1e-6] * 2 + [0.5] * 2 + [0.1] * 4)


def test_warmup_end_rate_needs_two_warmup_epochs() -> None:
    with pytest.raises(ConfigError, match="warmup_end_lr: needs warmup_epochs >= 2"):
        ScheduleConfig(warmup_epochs=1, warmup_end_lr=1e-5)
    with pytest.raises(ConfigError, match="warmup_end_lr: must be >= 0"):
        ScheduleConfig(warmup_epochs=3, warmup_end_lr=-1.0)
    assert ScheduleConfig(warmup_epochs=0, warmup_end_lr=1e-5).warmup_end_lr == 1e-5


def test_warmup_then_step_decay() -> None:
    train = recipe(1.0, 3, 3, name="step", step_size=6, warmup_epochs=1)
    expected = [1e-6] * 3 + [1.0] * 3 + [0.1] * 3
    assert driven_lrs(train, 9) == pytest.approx(expected)


def test_step_iterations_within_the_run() -> None:
    # V-Net's 25K iterations with 100 per epoch: the step opens epoch 250
    assert step_iterations(recipe(1e-4, 300, 100, "sgd", name="step")) == [25000]
    assert step_iterations(recipe(1e-4, 4, 4, "sgd", name="step", step_size=5)) == [5, 10, 15]
    assert step_iterations(recipe(1e-4, 3, 100, "sgd", name="step")) == []
    assert step_iterations(recipe(1e-4, 300, 100, name="poly")) == []


def test_optimizers_and_weight_decay() -> None:
    param = [torch.nn.Parameter(torch.zeros(1))]
    sgd = build_optimizer(OptimizerConfig("sgd", momentum=0.99, weight_decay=1e-5), param)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.99
    assert sgd.param_groups[0]["weight_decay"] == 1e-5
    assert isinstance(build_optimizer(OptimizerConfig("adamw"), param), torch.optim.AdamW)
    assert type(build_optimizer(OptimizerConfig("adam"), param)) is torch.optim.Adam
    with pytest.raises(ConfigError, match="lr: must be > 0"):
        OptimizerConfig(lr=0.0)


def test_early_stopping_counts_epochs_without_gain() -> None:
    stopping = StoppingConfig(patience=2, min_delta=0.01)
    best, since, verdicts = -math.inf, 0, []
    for value in (0.5, 0.6, 0.605, math.nan, 0.59):
        step = early_stopping(value, best, since, stopping)
        best, since = step.best, step.since_best
        verdicts.append(step.stop)
    assert verdicts == [False, False, False, False, True]
    assert best == 0.6 and since == 2
    never = StoppingConfig(patience=0)
    assert not any(early_stopping(0.1, 0.5, n, never).stop for n in range(10))
