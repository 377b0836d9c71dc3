"""The papers' optimisation recipes: optimisers, learning-rate schedules, early stopping.

Every number comes from :class:`volseg.config.TrainConfig`; nothing is hard-coded.

* V-Net (Milletari 2016): SGD, momentum 0.99, lr 1e-4 divided by 10 every 25K iterations:
  ``optimizer: sgd, momentum: 0.99, lr: 1e-4, schedule: step, step_size: 25000``.
* Myronenko / Adeniji: Adam, lr0 1e-4, ``lr0 * (1 - e / 300) ** 0.9``, L2 weight decay 1e-5,
  linear warm-up over 10 epochs, early stopping: ``optimizer: adam, schedule: poly, epochs: 300,
  weight_decay: 1e-5, warmup_epochs: 10, warmup_start_lr: 1e-6, early_stopping_patience: ...``.

The learning rate is a pure function of the global iteration (:func:`learning_rate`), so a
resumed run reproduces it exactly; :func:`build_scheduler` wraps it in a ``LambdaLR`` whose
state travels in the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from volseg.config import TrainConfig

__all__ = [
    "EarlyStopping",
    "build_optimizer",
    "build_scheduler",
    "learning_rate",
    "main_schedule_lr",
]

SCHEDULES = ("constant", "step", "poly")


def _check(train: TrainConfig) -> None:
    if train.schedule not in SCHEDULES:
        raise ValueError(
            f"train.schedule must be one of {', '.join(SCHEDULES)}: {train.schedule!r}"
        )
    if train.schedule == "step" and train.step_size < 1:
        raise ValueError(f"train.step_size must be >= 1, got {train.step_size}")
    if train.warmup_epochs < 0:
        raise ValueError(f"train.warmup_epochs must be >= 0, got {train.warmup_epochs}")
    if train.iterations_per_epoch < 1 or train.epochs < 1:
        raise ValueError("train.epochs and train.iterations_per_epoch must be >= 1")


def main_schedule_lr(train: TrainConfig, step: int) -> float:
    """The learning rate of the main schedule (no warm-up) at global iteration ``step`` (0-based).

    * ``constant``: ``lr0``;
    * ``step``: ``lr0 * step_gamma ** (step // step_size)`` (iterations, as V-Net counts them);
    * ``poly``: ``lr0 * (1 - e / epochs) ** poly_power`` with ``e = step // iterations_per_epoch``
      the finished epochs (per epoch, as Myronenko updates it); 0 beyond ``epochs``.
    """
    _check(train)
    if train.schedule == "constant":
        return train.lr
    if train.schedule == "step":
        return train.lr * train.step_gamma ** (step // train.step_size)
    epoch = step // train.iterations_per_epoch
    return train.lr * max(0.0, 1.0 - epoch / train.epochs) ** train.poly_power


def learning_rate(train: TrainConfig, step: int) -> float:
    """The learning rate at global iteration ``step``: linear warm-up, then the main schedule.

    For finished epochs ``e < warmup_epochs`` the rate is
    ``warmup_start_lr + (main(W) - warmup_start_lr) * e / W`` where ``main(W)`` is the main
    schedule at the first iteration after warm-up, so the curve is continuous; warm-up is per
    epoch (constant within an epoch), like the papers' epoch-wise schedules.
    """
    _check(train)
    epoch = step // train.iterations_per_epoch
    warm = train.warmup_epochs
    if warm and epoch < warm:
        target = main_schedule_lr(train, warm * train.iterations_per_epoch)
        return train.warmup_start_lr + (target - train.warmup_start_lr) * epoch / warm
    return main_schedule_lr(train, step)


def build_optimizer(train: TrainConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW from the config, L2 weight decay included."""
    name = train.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=train.lr,
            momentum=train.momentum,
            weight_decay=train.weight_decay,
            nesterov=train.nesterov,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)
    raise ValueError(f"train.optimizer: unknown {train.optimizer!r}; use sgd, adam or adamw")


def build_scheduler(
    train: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping once per iteration and following :func:`learning_rate`.

    Call ``scheduler.step()`` after every ``optimizer.step()``. Its state (the iteration count)
    goes in the checkpoint; the formula is rebuilt from the config, so a resumed run with more
    epochs follows the new ``poly`` horizon.
    """
    _check(train)
    if train.lr <= 0:
        raise ValueError(f"train.lr must be > 0, got {train.lr}")

    def factor(step: int) -> float:
        return learning_rate(train, step) / train.lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class EarlyStopping:
    """Stop when a validation metric (higher is better) stalls for ``patience`` epochs.

    ``update(value)`` returns True when training should stop. ``patience <= 0`` never stops.
    The state (best value, epochs since) is plain data for the checkpoint.
    """

    patience: int
    min_delta: float = 0.0
    best: float = -math.inf
    epochs_since_best: int = 0

    def update(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if value > self.best + self.min_delta:
            self.best, self.epochs_since_best = value, 0
        else:
            self.epochs_since_best += 1
        return 0 < self.patience <= self.epochs_since_best

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "epochs_since_best": self.epochs_since_best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best = float(state["best"])
        self.epochs_since_best = int(state["epochs_since_best"])
