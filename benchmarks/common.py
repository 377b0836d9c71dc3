"""Shared helpers of the benchmarks: thread setup, median timing, peak memory, a ratio table.

Every benchmark measures volseg and its peer in one process, interleaved, and prints the ratio
volseg / peer: absolute times drift from machine to machine (and on a shared CPU from minute to
minute), the ratio much less.

Typical use::

    from common import Timing, print_table, setup_threads, time_call

    setup_threads(2)
    ours = time_call(lambda: model(x), repeat=3)
    theirs = time_call(lambda: peer(x), repeat=3)
    print_table([("forward", ours, theirs)], ours_name="volseg", peer_name="MONAI")
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["PeakRSS", "Timing", "print_table", "rss_bytes", "setup_threads", "time_call"]


def setup_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default: every CPU this process may use); returns it.

    Inter-op threads are set to 1 (the nets run one op at a time). Call once, first thing.
    """
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work already started
        torch.set_num_interop_threads(1)
    return n


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="utf-8") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so RSS deltas are fair."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


class PeakRSS:
    """Context manager: peak resident memory above the level at entry, sampled every 2 ms.

    ``with PeakRSS() as peak: work()`` then ``peak.bytes``. Freed heap is returned to the OS at
    entry so that memory a previous measurement left cached is not counted as free here. The
    sampling can miss a spike shorter than the interval; it measures the whole process (the
    model's weights, already resident, are in the baseline, not in the peak).
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.bytes = 0
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        _trim_heap()
        self._base = self._peak = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, rss_bytes())
        self.bytes = self._peak - self._base


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed repeat (warm-up excluded), the peak RSS above baseline and, where
    counted, the minor page faults of each timed repeat (fresh pages the kernel had to zero)."""

    seconds: tuple[float, ...]
    peak_bytes: int
    faults: tuple[int, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_call(
    fn: Callable[[], object], repeat: int = 3, warmup: int = 1, memory_apart: bool = True
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, ``repeat`` times timed, then once for peak RSS.

    The timed runs have no memory sampler beside them: its thread and the heap trim it starts
    with (which hands freed pages back, so the next run faults them in again) cost a fast call
    up to a third of its time. Peak RSS comes from one more run under :class:`PeakRSS`.
    ``memory_apart=False`` samples the timed runs themselves instead (one cold call whose
    memory is the point, e.g. a whole prediction).

    Warning: on a shared CPU the median of few repeats is noisy; compare ratios measured in the
    same run, not absolute times across runs.
    """
    for _ in range(warmup):
        fn()
    seconds = []
    peak = 0
    for _ in range(repeat):
        with contextlib.nullcontext(None) if memory_apart else PeakRSS() as mem:
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        peak = max(peak, mem.bytes if mem is not None else 0)
    if memory_apart:
        with PeakRSS() as mem:
            fn()
        peak = mem.bytes
    return Timing(tuple(seconds), peak)


def time_interleaved(
    fns: Sequence[Callable[[], object]], repeat: int = 3, warmup: int = 1
) -> list[Timing]:
    """Time several calls in turn: each repeat runs every call once, so load that drifts over
    a long benchmark hits all of them alike. Peak RSS is not sampled (0); the minor page faults
    of each timed call are counted (``getrusage``), so a reader can tell a call that had
    reached its steady state from one that was still growing its heap."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    seconds: list[list[float]] = [[] for _ in fns]
    faults: list[list[int]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, times, faulted in zip(fns, seconds, faults, strict=True):
            before = _minor_faults()
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
            faulted.append(_minor_faults() - before)
    return [Timing(tuple(t), 0, tuple(f)) for t, f in zip(seconds, faults, strict=True)]


def _minor_faults() -> int:
    """Minor page faults of this process so far (pages mapped on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def print_table(
    rows: Sequence[tuple[str, Timing, Timing | None]],
    ours_name: str = "volseg",
    peer_name: str = "peer",
) -> None:
    """Print one line per ``(label, ours, peer)``: medians, peak memory and ours / peer."""
    head = (
        f"{'case':<34} {ours_name + ' s':>10} {peer_name + ' s':>10} {'ratio':>6} "
        f"{ours_name + ' MiB':>11} {peer_name + ' MiB':>11}"
    )
    print(head)
    print("-" * len(head))
    for label, ours, peer in rows:
        mib = ours.peak_bytes / 2**20
        if peer is None:
            print(f"{label:<34} {ours.median:>10.3f} {'-':>10} {'-':>6} {mib:>11.0f} {'-':>11}")
            continue
        print(
            f"{label:<34} {ours.median:>10.3f} {peer.median:>10.3f} "
            f"{ours.median / peer.median:>6.2f} {mib:>11.0f} {peer.peak_bytes / 2**20:>11.0f}"
        )
