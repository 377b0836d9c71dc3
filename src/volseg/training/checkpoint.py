"""Checkpoints written atomically and loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python data: the model, optimiser, LR-scheduler and
gradient-scaler state, the epoch, the RNG states (Python, NumPy, torch CPU and CUDA), the trainer's
own state (iteration, best metric, early stopping), the resolved config (as a dict), the label
values the output channels stand for, the input channel count, and the preprocessing records of
the training cases. Everything needed to predict, or to resume training exactly, comes from the
checkpoint alone.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from volseg._atomic import atomic_path

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT = "volseg-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a volseg checkpoint."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file."""

    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    labels: list[int]
    in_channels: int
    epoch: int = 0
    optimizer: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    trainer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "optimizer": self.optimizer,
            "epoch": self.epoch,
            "config": self.config,
            "labels": list(self.labels),
            "in_channels": self.in_channels,
            "metrics": dict(self.metrics),
            "records": self.records,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "rng": self.rng,
            "trainer": self.trainer,
        }


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> Path:
    """Write to a temporary file beside ``path``, flush it to disk, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a partial file.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(checkpoint.to_dict(), handle)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint safely (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a volseg checkpoint")
    return Checkpoint(
        model=data["model"],
        config=data["config"],
        labels=list(data["labels"]),
        in_channels=int(data["in_channels"]),
        epoch=int(data["epoch"]),
        optimizer=data.get("optimizer"),
        metrics=dict(data.get("metrics", {})),
        records=dict(data.get("records", {})),
        scheduler=data.get("scheduler"),
        scaler=data.get("scaler"),
        rng=data.get("rng"),
        trainer=dict(data.get("trainer", {})),
    )


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as tensors and plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`: every generator continues where it was captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
