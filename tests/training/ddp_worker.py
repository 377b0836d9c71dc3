"""Run by ``torchrun`` from ``test_distributed.py``: train, then save this rank's weights.

Usage: ``torchrun --standalone --nproc_per_node 2 ddp_worker.py CONFIG OUT_DIR``.
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


if __name__ == "__main__":
    out = Path(sys.argv[2])
    train(load_config(sys.argv[1]), progress=False, callbacks=[SaveWeights(out)])
