"""The machine a plan is sized for, and how a CPU time budget becomes a training length.

``gpu:24GB`` plans the largest patch whose trial step fits :data:`~volseg.plan.memory.SAFETY`
of 24 GB; ``cpu:2`` with ``minutes=30`` plans a net, a patch and a number of iterations whose
measured step time (on 2 threads) fits 30 minutes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EPOCHS_TARGET",
    "MIN_ITERATIONS",
    "STEP_SHARE",
    "Budget",
    "training_length",
]

MIN_ITERATIONS = 400
"""Fewest optimiser steps a CPU plan accepts before it narrows the net or the patch further:
the bundled demo learns a brain mask from one head in 40 x 10 = 400 steps."""

EPOCHS_TARGET = 40
"""Epochs a shortened CPU schedule is split into (a learning curve with enough points to pick
the best checkpoint and to stop early)."""

STEP_SHARE = 0.75
"""Share of a CPU budget given to the measured optimiser steps; the rest is for what the trial
step does not include: reading, augmenting and batching patches, validation, checkpoints."""

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(gb|gib|mb|mib)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A device to plan for.

    Attributes:
        kind: ``gpu`` (a memory budget) or ``cpu`` (a time budget on ``threads`` threads).
        memory_bytes: the GPU memory (``gpu`` only).
        threads: CPU threads a step runs on (``cpu`` only).
        minutes: wall-clock minutes for the whole training (``cpu`` only).
    """

    kind: Literal["gpu", "cpu"]
    memory_bytes: int | None = None
    threads: int = 0
    minutes: float | None = None

    @classmethod
    def parse(cls, text: str, minutes: float | None = None) -> Budget:
        """``gpu:24GB`` (GB = 10^9 bytes; also ``GiB``, ``MB``, ``MiB``) or ``cpu:N``, which
        needs ``minutes``; ``ValueError`` naming the problem otherwise."""
        kind, _, value = text.strip().partition(":")
        kind = kind.lower()
        if kind == "gpu":
            match = _SIZE.match(value.strip())
            if not match:
                raise ValueError(f"--budget {text!r}: expected gpu:SIZE such as gpu:24GB")
            unit = (match.group(2) or "gb").lower()
            scale = {"gb": 1e9, "gib": 2**30, "mb": 1e6, "mib": 2**20}[unit]
            size = int(float(match.group(1)) * scale)
            if size <= 0:
                raise ValueError(f"--budget {text!r}: the memory must be > 0")
            if minutes is not None:
                raise ValueError("--minutes goes with a cpu:N budget, not with gpu:SIZE")
            return cls("gpu", memory_bytes=size)
        if kind == "cpu":
            if not value.strip().isdigit() or int(value) < 1:
                raise ValueError(f"--budget {text!r}: expected cpu:N with N threads >= 1")
            if minutes is None or not minutes > 0 or math.isinf(minutes):
                raise ValueError(f"--budget {text}: give the training time with --minutes M > 0")
            return cls("cpu", threads=int(value), minutes=float(minutes))
        raise ValueError(f"--budget {text!r}: expected gpu:SIZE (gpu:24GB) or cpu:N (cpu:2)")

    def __str__(self) -> str:
        if self.kind == "gpu":
            return f"gpu:{(self.memory_bytes or 0) / 1e9:g}GB"
        return f"cpu:{self.threads}, {self.minutes:g} min"

    def step_seconds(self) -> float:
        """The longest step that still allows :data:`MIN_ITERATIONS` in the budget."""
        assert self.minutes is not None
        return STEP_SHARE * self.minutes * 60 / MIN_ITERATIONS


def training_length(
    seconds_per_step: float, minutes: float, epochs: int, iterations_per_epoch: int
) -> tuple[int, int]:
    """``(epochs, iterations_per_epoch)`` that fit ``minutes`` at the measured step time.

    The recipe's own length when it fits; else its ``iterations_per_epoch`` lowered so that
    the steps that fit make about :data:`EPOCHS_TARGET` epochs.
    """
    fit = max(1, int(STEP_SHARE * minutes * 60 / seconds_per_step))
    if epochs * iterations_per_epoch <= fit:
        return epochs, iterations_per_epoch
    per_epoch = min(iterations_per_epoch, max(1, fit // EPOCHS_TARGET))
    return max(1, min(epochs, fit // per_epoch)), per_epoch
