"""Checkpoints written atomically and loaded with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python data: the model, optimiser, LR-scheduler and
gradient-scaler state, the epoch, the RNG states (:class:`RngState`: Python, NumPy, torch CPU and
CUDA), the loop's own state (:class:`TrainerState`: iteration, best score, early stopping), the
resolved config (as a dict), the label values the output channels stand for and the input channel
count. Everything needed to predict (:func:`load_run`), or to resume training exactly, comes from
the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from volseg._atomic import atomic_path
from volseg.config import Config, config_from_dict
from volseg.nn.build import build_model

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "LoadedRun",
    "RngState",
    "TrainerState",
    "capture_rng_state",
    "find_checkpoint",
    "load_checkpoint",
    "load_run",
    "restore_rng_state",
    "resume_config",
    "run_finished",
    "save_checkpoint",
]

FORMAT = "volseg-checkpoint-1"
Tensor = torch.Tensor


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not a volseg checkpoint."""


@dataclass
class TrainerState:
    """The loop's own state beside the weights: what a resumed run needs to continue exactly.

    ``best_score`` is the best ``train.monitor`` value seen (``checkpoint_best.pt``), signed so
    that higher is better (a loss or a distance is stored negated). Early stopping keeps its own
    best, ``stopping_best``, which only a gain above ``train.stopping.min_delta`` moves, and
    ``since_best``, the epochs since then. ``seconds`` is the training time so far.
    """

    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    stopping_best: float = -math.inf
    since_best: int = 0
    stop_reason: str | None = None
    seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        if "early_stopping" in data:  # written before the state was typed
            early = data["early_stopping"]
            return cls(
                step=int(data["step"]),
                best_score=float(data["best_metric"]),
                best_epoch=int(data["best_epoch"]),
                stopping_best=float(early["best"]),
                since_best=int(early["epochs_since_best"]),
                stop_reason=data.get("stop_reason"),
            )
        return cls(**data)


@dataclass
class RngState:
    """Python, NumPy (legacy global), torch CPU and CUDA generator states, as plain data."""

    python: tuple[Any, ...]
    numpy: dict[str, Any]
    torch: Tensor
    cuda: list[Tensor]


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
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: RngState | None = None
    trainer: TrainerState = field(default_factory=TrainerState)

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
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "rng": dataclasses.asdict(self.rng) if self.rng is not None else None,
            "trainer": dataclasses.asdict(self.trainer),
        }

    def run_config(self) -> Config:
        """The run's config (keys of older versions moved silently: the file is not the user's)."""
        return config_from_dict(self.config, warn_moved=False)


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
        scheduler=data.get("scheduler"),
        scaler=data.get("scaler"),
        rng=RngState(**data["rng"]) if data.get("rng") else None,
        trainer=TrainerState.from_dict(dict(data.get("trainer") or {})),
    )


def find_checkpoint(run_dir: str | Path) -> Path:
    """The best checkpoint of a run directory (or the last, or ``run_dir`` itself if a file)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckpointError(f"{run_dir}: no checkpoint_best.pt or checkpoint_last.pt in run dir")


def run_finished(run_dir: str | Path, epochs: int) -> bool:
    """Whether the run in ``run_dir`` has trained ``epochs`` epochs or stopped on its own (early
    stopping, time budget); False when it has no ``checkpoint_last.pt`` yet."""
    last = Path(run_dir) / "checkpoint_last.pt"
    if not last.is_file():
        return False
    checkpoint = load_checkpoint(last)
    return checkpoint.epoch >= epochs or checkpoint.trainer.stop_reason is not None


@dataclass(frozen=True)
class LoadedRun:
    """A trained network rebuilt from its checkpoint, with what it was trained on."""

    model: nn.Module
    config: Config
    labels: list[int]
    in_channels: int
    path: Path


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's network (weights loaded, train mode) from a run directory or checkpoint."""
    path = find_checkpoint(run_dir)
    checkpoint = load_checkpoint(path)
    try:
        config = checkpoint.run_config()
    except ValueError as err:
        raise CheckpointError(f"{path}: config not readable ({err})") from None
    model = build_model(config, checkpoint.in_channels, len(checkpoint.labels))
    model.load_state_dict(checkpoint.model)
    return LoadedRun(model, config, list(checkpoint.labels), checkpoint.in_channels, path)


def _differences(a: Any, b: Any, key: str = "") -> list[str]:
    """Dotted keys where two plain configs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in sorted(set(a) | set(b), key=str):
            found += _differences(a.get(k), b.get(k), f"{key}.{k}" if key else str(k))
        return found
    return [] if a == b else [f"{key} ({b!r} in config.yaml, {a!r} in the checkpoint)"]


def resume_config(run_dir: str | Path) -> Config:
    """The config to resume ``run_dir`` with: the one stored in ``checkpoint_last.pt``.

    The checkpoint is the one source of truth for a run's config (``predict`` and ``export``
    read it too); ``RUN/config.yaml`` is a copy. An edited copy would be silently ignored by
    one command and used by another, so a difference is an error naming the keys (``run_dir``
    aside: a moved run resumes where it now is; and the keys a resume may change,
    :data:`volseg.config.RESUMABLE_KEYS`: a resume with ``--set`` rewrites ``config.yaml`` before
    its first epoch is checkpointed). Nothing is written.
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint_last.pt"
    checkpoint = load_checkpoint(path)
    try:
        config = checkpoint.run_config()
    except ValueError as err:
        raise CheckpointError(f"{path}: config not readable ({err})") from None
    copy = run_dir / "config.yaml"
    if copy.is_file():
        from volseg.config import RESUMABLE_KEYS, config_to_dict, load_config

        mine = config_to_dict(dataclasses.replace(config, run_dir=""))
        theirs = config_to_dict(dataclasses.replace(load_config(copy), run_dir=""))
        diff = [
            d
            for d in _differences(mine, theirs)
            if not any(d.startswith((f"{k} ", f"{k}.")) for k in RESUMABLE_KEYS)
        ]
        if diff:
            raise CheckpointError(
                f"{copy}: differs from the config in {path.name} at {'; '.join(diff[:3])}; "
                "the checkpoint's config is the run's (restore config.yaml, or train a new run; "
                "--epochs and --set extend a run)"
            )
    return config


def capture_rng_state() -> RngState:
    """Python, NumPy, torch CPU and CUDA generator states as tensors and plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return RngState(
        python=random.getstate(),
        numpy={
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    )


def restore_rng_state(state: RngState) -> None:
    """Undo :func:`capture_rng_state`: every generator continues where it was captured."""
    version, internal, gauss = state.python
    random.setstate((version, tuple(internal), gauss))
    n = state.numpy
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state.torch)
    if state.cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state.cuda)
