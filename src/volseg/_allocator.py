"""Keep freed heap memory for the next tensor of its size: big tensors without page faults.

glibc's malloc serves an allocation above its mmap threshold (at most 32 MiB) with fresh pages
from the kernel and hands them back on free; and whenever the free space at the top of its heap
exceeds the trim threshold, it gives that back too. Every new activation, gradient or resampled
volume is then faulted in page by page, and the kernel zeroes each page first. A training step
allocates and frees the same sizes again and again, so it pays that every step. This raises the
mmap threshold to its largest value (2 GiB: ``mallopt`` takes an ``int``) and turns trimming off
(a threshold of ``SIZE_MAX``: glibc reads the ``int`` -1 as a ``size_t``), so freed memory stays
in the heap, already mapped, for the next tensor.

Trimming matters as much as mapping. With the trim threshold at 2 GiB instead, MONAI's U-Net+VAE
step at 4x128^3 (which can leave more than 2 GiB free at the heap's top) still faulted
0.79-0.92 M pages (3.0-3.5 GiB) every step; with trimming off it faults none from its third
step on, its heap settling at 9.9 GiB (docs/training.md, "Trimming off"). PyTorch asks for
64-byte aligned blocks, which glibc 2.36 serves from a freed block only when it is larger than
the request, so the heap grows past the step's live peak before it settles. PyTorch's CPU
performance guide recommends jemalloc or tcmalloc for the same reason; this gets the effect
with the allocator every Linux process already has.

The cost: memory a step freed stays with the process (its resident size stays at the heap's
peak instead of falling between steps), so only training sets it (its forked loader workers
inherit it); prediction keeps glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGEST = 2**31 - 1  # mallopt takes an int: allocations above 2 GiB still get their own pages
_NEVER = -1  # read as SIZE_MAX by glibc's trim setting: the heap's top is never given back

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
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
    return _done
