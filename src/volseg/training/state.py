"""What the training loop and its callbacks share, and what a finished run reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from volseg.config import Config, config_to_dict
from volseg.regions import Region
from volseg.training.checkpoint import Checkpoint, TrainerState, capture_rng_state
from volseg.training.distributed import DistInfo

__all__ = ["MONITOR_SIGN", "TrainResult", "TrainState"]

# +1: higher is better; -1: lower is better. Scores are stored signed (higher is better).
MONITOR_SIGN = {"val_dice": 1.0, "val_loss": -1.0, "val_hd95": -1.0}


@dataclass(frozen=True)
class TrainResult:
    """Where a run went and how it ended.

    ``best_value`` is the best ``monitor`` value over the epochs (None without validation);
    ``stop_reason`` is None when all epochs ran.
    """

    run_dir: Path
    epochs: int
    best_epoch: int
    monitor: str
    best_value: float | None
    seconds: float
    stop_reason: str | None = None


@dataclass
class TrainState:
    """Everything the loop and its callbacks share; ``epoch`` and ``trainer.step`` count
    finished ones."""

    config: Config
    run_dir: Path
    model: nn.Module  # the plain model (not the DDP wrapper)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    dist: DistInfo
    labels: list[int]
    in_channels: int
    regions: tuple[Region, ...] | None = None
    epoch: int = 0
    trainer: TrainerState = field(default_factory=TrainerState)
    improved: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    def checkpoint(self) -> Checkpoint:
        """A checkpoint of the state now (RNG states included)."""
        return Checkpoint(
            model=self.model.state_dict(),
            config=config_to_dict(self.config),
            labels=self.labels,
            in_channels=self.in_channels,
            epoch=self.epoch,
            optimizer=self.optimizer.state_dict(),
            metrics=dict(self.metrics),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=capture_rng_state(),
            trainer=TrainerState(**vars(self.trainer)),
        )
