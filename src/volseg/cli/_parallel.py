"""Spreading a batch of cases over jobs: ``--shard K/N`` and ``--nproc N`` (torchrun).

``--shard K/N`` keeps every N-th case starting at the K-th (1-based, in the batch's sorted
order), as nnU-Net's ``-part_id/-num_parts`` do for cluster job arrays: N jobs with K = 1..N
together predict every case once. ``--nproc N`` starts N processes through ``torchrun``; rank
r takes shard r+1 of N (of the user's shard, when both are given) and, on CUDA, GPU
``LOCAL_RANK``. The ranks need no communication while predicting; they meet in one gloo
barrier before exiting, so a rank that ends early (or with failed cases, exit status 1) does
not make torchrun stop the others.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

from volseg.cli._common import UsageError

__all__ = ["parse_shard", "rank_shard", "relaunch", "select_shard", "wait_for_all_ranks"]

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; anything else is a one-line error."""
    parts = text.split("/")
    try:
        k, n = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--shard {text}: expected K/N such as 2/8") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must lie in 1..N")
    return k, n


def select_shard(items: Sequence[T], k: int, n: int) -> list[T]:
    """Every ``n``-th item starting at the ``k``-th (1-based)."""
    return list(items[k - 1 :: n])


def rank_shard() -> tuple[int, int] | None:
    """``(RANK + 1, WORLD_SIZE)`` inside a torchrun process, else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ["RANK"]) + 1, int(os.environ["WORLD_SIZE"])


def relaunch(argv: Sequence[str], nproc: int) -> int:
    """Run ``volseg ARGV`` (without ``--nproc``) in ``nproc`` torchrun processes."""
    from volseg.training.distributed import torchrun_command

    forwarded: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            forwarded.append(arg)
    return subprocess.run(torchrun_command(nproc, forwarded), check=False).returncode


def wait_for_all_ranks() -> None:
    """A gloo barrier of the torchrun ranks (one day's timeout: ranks may differ by hours)."""
    import torch.distributed as dist

    if rank_shard() is None or int(os.environ["WORLD_SIZE"]) < 2:
        return
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(days=1))
    dist.barrier()
    dist.destroy_process_group()
