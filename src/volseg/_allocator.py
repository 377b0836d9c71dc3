"""Keep freed heap memory for the next tensor of its size: big tensors without page faults.

glibc's malloc serves an allocation above its mmap threshold (at most 32 MiB) with fresh pages
from the kernel and hands them back on free. Every new activation, gradient or resampled volume
of that size is then faulted in page by page, and the kernel zeroes each page first. A training
step allocates and frees the same sizes again and again, so it pays that every step: on the
2-core machine a U-Net+VAE step at 4x128^3 took 27.5 s, and 23.3 s with this setting
(``benchmarks/training.py --only vae``; MONAI's net in the same loop: 40.0 and 26.6 s).
Raising the mmap and trim thresholds keeps freed memory in the heap, already mapped, for the
next tensor. Only partly, though: PyTorch asks for 64-byte aligned blocks, and glibc 2.36 often
misses a freed block of exactly the size asked (measured: a 256 MiB tensor faulted in afresh on
4 of 5 allocations; docs/training.md, "Page faults"). PyTorch's CPU performance guide
recommends jemalloc or tcmalloc for the same reason; this gets part of the effect with the
allocator every Linux process already has.

The cost: memory a step freed stays with the process (its resident size stays at its peak
instead of falling between steps), so only training sets it (its forked loader workers inherit
it); prediction keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST = 2**31 - 1  # mallopt takes an int: allocations above 2 GiB still get their own pages

_done = False


def reuse_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse (process-wide, inherited by forked workers).

    Returns:
        ``True`` when the setting is in force (Linux with glibc), ``False`` elsewhere, where
        nothing is changed.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _LARGEST)
    )
    return _done
