from __future__ import annotations

import math

import pytest
import torch

from volseg.config import TrainConfig
from volseg.training.schedules import (
    EarlyStopping,
    build_optimizer,
    build_scheduler,
    learning_rate,
)


def driven_lrs(train: TrainConfig, steps: int) -> list[float]:
    """The LR an optimizer actually uses at each of ``steps`` iterations under the scheduler."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(train, [param])
    scheduler = build_scheduler(train, optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_constant() -> None:
    train = TrainConfig(lr=0.01, epochs=3, iterations_per_epoch=4)
    assert driven_lrs(train, 12) == pytest.approx([0.01] * 12)


def test_step_decay_divides_by_ten_every_step_size_iterations() -> None:
    # V-Net: lr 1e-4 divided by 10 every 25K iterations, here every 5
    train = TrainConfig(
        optimizer="sgd", lr=1e-4, schedule="step", step_size=5, epochs=4, iterations_per_epoch=4
    )
    expected = [1e-4] * 5 + [1e-5] * 5 + [1e-6] * 5 + [1e-7]
    assert driven_lrs(train, 16) == pytest.approx(expected, rel=1e-9)


def test_poly_matches_formula_per_epoch() -> None:
    train = TrainConfig(lr=1e-4, schedule="poly", epochs=5, iterations_per_epoch=3)
    expected = [1e-4 * (1 - e / 5) ** 0.9 for e in range(5) for _ in range(3)]
    assert driven_lrs(train, 15) == pytest.approx(expected, rel=1e-9)
    # by hand: epoch 2 of 5 -> 1e-4 * 0.6 ** 0.9
    assert learning_rate(train, 6) == pytest.approx(1e-4 * 0.631_445_867, rel=1e-8)
    assert learning_rate(train, 100) == 0.0  # past the horizon


def test_warmup_then_poly() -> None:
    # Adeniji: linear warm-up 1e-6 -> over W epochs, then poly; continuous at the junction
    train = TrainConfig(
        lr=1e-4,
        schedule="poly",
        epochs=10,
        iterations_per_epoch=2,
        warmup_epochs=4,
        warmup_start_lr=1e-6,
    )
    junction = 1e-4 * (1 - 4 / 10) ** 0.9
    expected = []
    for e in range(10):
        lr = 1e-6 + (junction - 1e-6) * e / 4 if e < 4 else 1e-4 * (1 - e / 10) ** 0.9
        expected += [lr, lr]
    assert driven_lrs(train, 20) == pytest.approx(expected, rel=1e-9)
    assert expected[0] == 1e-6 and expected[8] == pytest.approx(junction)


def test_warmup_then_step_decay() -> None:
    train = TrainConfig(
        lr=1.0, schedule="step", step_size=6, epochs=3, iterations_per_epoch=3, warmup_epochs=1
    )
    expected = [1e-6] * 3 + [1.0] * 3 + [0.1] * 3
    assert driven_lrs(train, 9) == pytest.approx(expected)


def test_optimizers_and_weight_decay() -> None:
    param = [torch.nn.Parameter(torch.zeros(1))]
    sgd = build_optimizer(TrainConfig(optimizer="sgd", momentum=0.99, weight_decay=1e-5), param)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.99
    assert sgd.param_groups[0]["weight_decay"] == 1e-5
    assert isinstance(build_optimizer(TrainConfig(optimizer="adamw"), param), torch.optim.AdamW)
    assert type(build_optimizer(TrainConfig(optimizer="adam"), param)) is torch.optim.Adam
    with pytest.raises(ValueError, match="train.optimizer: unknown 'rmsprop'"):
        build_optimizer(TrainConfig(optimizer="rmsprop"), param)
    with pytest.raises(ValueError, match="train.schedule must be one of"):
        learning_rate(TrainConfig(schedule="cosine"), 0)


def test_early_stopping_counts_epochs_without_gain() -> None:
    stop = EarlyStopping(patience=2, min_delta=0.01)
    assert [stop.update(v) for v in (0.5, 0.6, 0.605, math.nan, 0.59)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    restored = EarlyStopping(patience=2)
    restored.load_state_dict(stop.state_dict())
    assert restored.best == 0.6 and restored.epochs_since_best == 2
    never = EarlyStopping(patience=0)
    assert not any(never.update(0.1) for _ in range(10))
