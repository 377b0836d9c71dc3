"""Multi-process data-parallel training (DDP) launched by ``torchrun``.

Launch ``N`` processes on one machine with either of::

    torchrun --standalone --nproc_per_node N -m volseg train CONFIG
    volseg train CONFIG --nproc N          # runs the torchrun command above

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process;
:func:`init_distributed` reads them (at call time, never at import) and joins the process group:
``gloo`` on CPU, ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``). Each process draws
its share of the seeded patch samples (rank ``r`` of ``W`` takes samples ``r, r + W, ...``), so
``W`` processes with ``batch_size`` b see the same global batches as one process with ``W * b``.
Only rank 0 logs and writes checkpoints; metrics are all-reduced so every rank takes the same
decisions (best epoch, early stopping, time budget). :func:`shutdown` leaves the group; torchrun
stops the other ranks when one fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_reduce_sum",
    "init_distributed",
    "launched_by_torchrun",
    "shutdown",
    "torchrun_command",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the group; ``world_size == 1`` when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (its environment variables are set)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device_type: str, timeout_minutes: float = 10.0) -> DistInfo:
    """Join the torchrun process group (if launched by torchrun); otherwise a single process.

    Args:
        device_type: ``cpu`` (``gloo`` backend) or ``cuda`` (``nccl``, one GPU per process).
        timeout_minutes: how long a collective waits for a missing rank before failing.
    """
    if not launched_by_torchrun():
        return DistInfo()
    info = DistInfo(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    )
    if info.world_size == 1:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return info


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float], info: DistInfo) -> list[float]:
    """Sum ``values`` element-wise over all ranks (float64); identity for one process."""
    if not info.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.cpu()]


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The ``torchrun`` command running ``python -m volseg ARGV`` in ``nproc`` processes."""
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "volseg",
        *argv,
    ]
