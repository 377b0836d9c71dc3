"""The papers' optimisation recipes: optimisers, learning-rate schedules, early stopping.

Every number comes from :class:`volseg.config.TrainConfig` (its ``optimizer``, ``schedule`` and
``stopping`` parts); nothing is hard-coded.

* V-Net (Milletari 2016): SGD, momentum 0.99, lr 1e-4 divided by 10 every 25K iterations:
  ``optimizer: {name: sgd, momentum: 0.99, lr: 1e-4}, schedule: {name: step, step_size: 25000}``.
* Myronenko / Adeniji: Adam, lr0 1e-4, ``lr0 * (1 - e / 300) ** 0.9``, L2 weight decay 1e-5,
  per-epoch linear warm-up 1e-6 -> 1e-5 over the first 10 epochs, early stopping:
  ``epochs: 300, optimizer: {name: adam, weight_decay: 1e-5}, schedule: {name: poly,
  warmup_epochs: 10, warmup_start_lr: 1e-6, warmup_end_lr: 1e-5}, stopping: {patience: ...}``.
  Epochs 0..9 run at 1e-6, 2e-6, ..., 1e-5; epoch 10 at ``1e-4 * (1 - 10 / 300) ** 0.9``
  (9.70e-5): the paper's e is "the current epoch number", counted from the start of training,
  and its 10 warm-up epochs are "the first 10" of the 300.

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

from volseg.config import OptimizerConfig, StoppingConfig, TrainConfig

__all__ = [
    "StoppingStep",
    "build_optimizer",
    "build_scheduler",
    "early_stopping",
    "learning_rate",
    "main_schedule_lr",
]


def main_schedule_lr(train: TrainConfig, step: int) -> float:
    """The learning rate of the main schedule (no warm-up) at global iteration ``step`` (0-based).

    * ``constant``: ``lr0``;
    * ``step``: ``lr0 * step_gamma ** (step // step_size)`` (iterations, as V-Net counts them);
    * ``poly``: ``lr0 * (1 - e / epochs) ** poly_power`` with ``e = step // iterations_per_epoch``
      the finished epochs (per epoch, as Myronenko updates it); 0 beyond ``epochs``.
    """
    schedule, lr0 = train.schedule, train.optimizer.lr
    if schedule.name == "constant":
        return lr0
    if schedule.name == "step":
        return lr0 * schedule.step_gamma ** (step // schedule.step_size)
    epoch = step // train.iterations_per_epoch
    return lr0 * max(0.0, 1.0 - epoch / train.epochs) ** schedule.poly_power


def learning_rate(train: TrainConfig, step: int) -> float:
    """The learning rate at global iteration ``step``: linear warm-up, then the main schedule.

    With ``W = warmup_epochs`` and ``e = step // iterations_per_epoch`` (finished epochs), the
    warm-up epochs ``e < W`` run at

    * ``warmup_start_lr + (warmup_end_lr - warmup_start_lr) * e / (W - 1)`` when
      ``warmup_end_lr`` is set: ``warmup_start_lr`` at epoch 0, ``warmup_end_lr`` at epoch
      ``W - 1`` (Adeniji: 1e-6, 2e-6, ..., 1e-5);
    * ``warmup_start_lr + (main(W) - warmup_start_lr) * e / W`` otherwise, ``main(W)`` being the
      main schedule at the first iteration after warm-up, so the curve is continuous.

    From epoch ``W`` on, the main schedule runs at the global iteration (its ``e`` counts the
    warm-up epochs too). Warm-up is per epoch (constant within an epoch), like the papers'
    epoch-wise schedules.
    """
    epoch = step // train.iterations_per_epoch
    schedule = train.schedule
    warm, start = schedule.warmup_epochs, schedule.warmup_start_lr
    if warm and epoch < warm:
        if schedule.warmup_end_lr is not None:
            # ScheduleConfig rejects warmup_epochs == 1 with an end rate
            return start + (schedule.warmup_end_lr - start) * epoch / (warm - 1)
        target = main_schedule_lr(train, warm * train.iterations_per_epoch)
        return start + (target - start) * epoch / warm
    return main_schedule_lr(train, step)


def build_optimizer(
    optimizer: OptimizerConfig, params: Sequence[nn.Parameter]
) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW from the config, L2 weight decay included."""
    if optimizer.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=optimizer.lr,
            momentum=optimizer.momentum,
            weight_decay=optimizer.weight_decay,
            nesterov=optimizer.nesterov,
        )
    if optimizer.name == "adam":
        return torch.optim.Adam(params, lr=optimizer.lr, weight_decay=optimizer.weight_decay)
    return torch.optim.AdamW(params, lr=optimizer.lr, weight_decay=optimizer.weight_decay)


def build_scheduler(
    train: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepping once per iteration and following :func:`learning_rate`.

    Call ``scheduler.step()`` after every ``optimizer.step()``. Its state (the iteration count)
    goes in the checkpoint; the formula is rebuilt from the config, so a resumed run with more
    epochs follows the new ``poly`` horizon.
    """

    def factor(step: int) -> float:
        return learning_rate(train, step) / train.optimizer.lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass(frozen=True)
class StoppingStep:
    """Early stopping after one epoch: its best score, epochs without a gain, and the verdict."""

    best: float
    since_best: int
    stop: bool


def early_stopping(
    score: float, best: float, since_best: int, stopping: StoppingConfig
) -> StoppingStep:
    """Update early stopping with an epoch's ``score`` (higher is better).

    A gain is a score above ``best + stopping.min_delta``; training stops after
    ``stopping.patience`` epochs without one (``patience <= 0`` never stops). A NaN score (no
    validation cases scored) changes nothing.
    """
    if math.isnan(score):
        return StoppingStep(best, since_best, False)
    if score > best + stopping.min_delta:
        best, since_best = score, 0
    else:
        since_best += 1
    return StoppingStep(best, since_best, 0 < stopping.patience <= since_best)
