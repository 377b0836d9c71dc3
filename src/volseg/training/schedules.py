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
state travels in the checkpoint. :func:`step_iterations` and :func:`plot_schedule` show a
schedule without training (``volseg schedule CONFIG``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from volseg._atomic import atomic_path
from volseg.config import OptimizerConfig, StoppingConfig, TrainConfig

__all__ = [
    "StoppingStep",
    "build_optimizer",
    "build_scheduler",
    "early_stopping",
    "learning_rate",
    "main_schedule_lr",
    "plot_schedule",
    "step_iterations",
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


def step_iterations(train: TrainConfig) -> list[int]:
    """The global iterations (0-based) at which a ``step`` schedule multiplies the rate by
    ``step_gamma`` within ``epochs * iterations_per_epoch``: ``step_size``, ``2 * step_size``, ...

    Empty for the other schedules. A step inside the warm-up is hidden by it.
    """
    if train.schedule.name != "step":
        return []
    total = train.epochs * train.iterations_per_epoch
    return list(range(train.schedule.step_size, total, train.schedule.step_size))


def plot_schedule(train: TrainConfig, path: str | Path, title: str = "") -> None:
    """PNG of the learning rate against the epoch (log scale), written atomically.

    One point per epoch, the rate of its first iteration, as a staircase; the iterations of
    :func:`step_iterations` are dashed vertical lines. Warning: imports matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    per_epoch = train.iterations_per_epoch
    epochs = list(range(train.epochs))
    rates = [learning_rate(train, e * per_epoch) for e in epochs]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(epochs, rates, drawstyle="steps-post")
    for i, step in enumerate(step_iterations(train)):
        label = "step (iteration)" if i == 0 else None
        ax.axvline(step / per_epoch, color="grey", linestyle="--", linewidth=0.8, label=label)
        ax.text(
            step / per_epoch,
            0.5,
            f"iteration {step} ",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            rotation=90,
            ha="right",
            va="center",
        )
    if all(r > 0 for r in rates):
        ax.set_yscale("log")
    ax.set(xlabel=f"epoch ({per_epoch} iterations each)", ylabel="learning rate")
    ax.set_title(title or f"{train.schedule.name} schedule")
    if step_iterations(train):
        ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


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
