"""Run by ``torchrun`` from ``test_distributed.py``: train, then save this rank's weights.

Usage: ``torchrun --standalone --nproc_per_node 2 ddp_worker.py CONFIG OUT_DIR [FAIL_EPOCH]``.
With ``FAIL_EPOCH``, rank 1 raises at the end of that epoch (1-based), as a crashing rank would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from volseg.config import load_config
from volseg.training.trainer import Callback, TrainState, train


class SaveWeights(Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, state: TrainState) -> None:
        torch.save(state.model.state_dict(), self.out / f"rank{state.dist.rank}.pt")


class FailOnRank1(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState) -> None:
        if state.dist.rank == 1 and state.epoch >= self.epoch:
            raise RuntimeError(f"rank 1 fails on purpose after epoch {state.epoch}")


if __name__ == "__main__":
    out = Path(sys.argv[2])
    callbacks: list[Callback] = [SaveWeights(out)]
    if len(sys.argv) > 3:
        callbacks.append(FailOnRank1(int(sys.argv[3])))
    train(load_config(sys.argv[1]), progress=False, callbacks=callbacks)
