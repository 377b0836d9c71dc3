"""Checkpoints: typed state round trips, and files written by volseg 0.1 still load."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from volseg.nn import create_model
from volseg.training.checkpoint import (
    FORMAT,
    Checkpoint,
    TrainerState,
    capture_rng_state,
    find_checkpoint,
    load_checkpoint,
    load_run,
    restore_rng_state,
    save_checkpoint,
)

KWARGS = {"base_channels": 4, "kernel_size": 3}


def _model_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("vnet", in_channels=1, out_channels=3, **KWARGS).state_dict()


def test_typed_state_round_trips(tmp_path: Path) -> None:
    trainer = TrainerState(step=7, best_score=-0.25, best_epoch=3, stopping_best=-0.3, since_best=1)
    checkpoint = Checkpoint(
        model=_model_state(),
        config={"model": {"name": "vnet", "kwargs": KWARGS}},
        labels=[0, 1, 2],
        in_channels=1,
        epoch=4,
        rng=capture_rng_state(),
        trainer=trainer,
    )
    path = save_checkpoint(checkpoint, tmp_path / "c.pt")
    loaded = load_checkpoint(path)
    assert loaded.trainer == trainer
    assert loaded.rng is not None
    before = torch.rand(3)
    restore_rng_state(loaded.rng)  # the generators continue where they were captured
    torch.manual_seed(123)
    restore_rng_state(loaded.rng)
    assert torch.equal(torch.rand(3), before)


def test_a_volseg_0_1_checkpoint_loads_and_rebuilds(tmp_path: Path) -> None:
    """The 0.1 layout: an untyped trainer dict, preprocessing records, a flat train section."""
    state = np.random.get_state(legacy=True)
    old = {
        "format": FORMAT,
        "model": _model_state(),
        "optimizer": None,
        "epoch": 5,
        "config": {
            "model": {"name": "vnet", "kwargs": KWARGS},
            "augment": {"flip_axes": [0], "flip_p": 0.5},
            "train": {"optimizer": "sgd", "lr": 0.01, "amp": "bf16", "regions": None},
        },
        "labels": [0, 1, 2],
        "in_channels": 1,
        "metrics": {"val_dice": 0.5, "seconds": 12.0},
        "records": {"case00": {"grid": "..."}},
        "scheduler": None,
        "scaler": None,
        "rng": {
            "python": __import__("random").getstate(),
            "numpy": {
                "kind": str(state[0]),
                "keys": torch.from_numpy(np.asarray(state[1], dtype=np.int64)),
                "pos": int(state[2]),
                "has_gauss": int(state[3]),
                "cached": float(state[4]),
            },
            "torch": torch.get_rng_state(),
            "cuda": [],
        },
        "trainer": {
            "step": 50,
            "best_metric": 0.5,
            "best_epoch": 4,
            "early_stopping": {"best": 0.5, "epochs_since_best": 1},
            "stop_reason": None,
        },
    }
    (tmp_path / "run").mkdir()
    torch.save(old, tmp_path / "run" / "checkpoint_last.pt")
    loaded = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")
    assert loaded.trainer == TrainerState(
        step=50, best_score=0.5, best_epoch=4, stopping_best=0.5, since_best=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the user cannot edit a checkpoint
        run = load_run(tmp_path / "run")
    assert run.config.train.optimizer.name == "sgd" and run.config.train.runtime.amp == "bf16"
    assert [t.name for t in run.config.augment.transforms] == ["flip"]
    assert run.labels == [0, 1, 2] and run.path == find_checkpoint(tmp_path / "run")
    assert all(torch.equal(v, old["model"][k]) for k, v in run.model.state_dict().items())


def test_find_checkpoint_prefers_best(tmp_path: Path) -> None:
    from volseg.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint_best.pt or checkpoint_last.pt"):
        find_checkpoint(tmp_path)
    (tmp_path / "checkpoint_last.pt").write_bytes(b"")
    assert find_checkpoint(tmp_path).name == "checkpoint_last.pt"
    (tmp_path / "checkpoint_best.pt").write_bytes(b"")
    assert find_checkpoint(tmp_path).name == "checkpoint_best.pt"
