"""reuse_freed_memory: a freed 64 MiB tensor's pages serve the next, smaller one without page
faults, and freeing more than 2 GiB at once does not hand the heap's top back to the kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import resource, sys, torch
from volseg._allocator import reuse_freed_memory
on = sys.argv[1] == "on"
if on:
    assert reuse_freed_memory() and reuse_freed_memory()
def touch(mib):
    x = torch.empty(mib * 2**18)  # float32, written once
    x.fill_(1.0)
    del x
touch(64)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch(56)  # fits in the freed block wherever the heap put it
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


# Three 720 MiB blocks (each below the raised mmap threshold, so on the heap), freed together,
# leave 2.1 GiB free at the top of the heap: above a 2 GiB trim threshold, which gave it back.
# Plain malloc, so that no aligned-allocation fragments split the freed blocks.
_TRIM_PROBE = """
import ctypes, resource, sys
from volseg._allocator import reuse_freed_memory
assert reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 720 * 2**20
def touch_three():
    blocks = [libc.malloc(size) for _ in range(3)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    for block in blocks:
        libc.free(block)
touch_three()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch_three()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, probe: str = _PROBE) -> int:
    out = subprocess.run(
        [sys.executable, "-c", probe, mode],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=True,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_a_freed_tensor_is_reused_without_page_faults() -> None:
    default, reused = _faults("off"), _faults("on")
    pages = 56 * 2**20 // 4096
    assert default > pages // 2  # glibc maps fresh pages for the second tensor
    assert reused < pages // 20  # the first tensor's pages, already mapped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freeing_more_than_two_gib_keeps_the_heap() -> None:
    pages = 3 * 720 * 2**20 // 4096
    assert _faults("on", _TRIM_PROBE) < pages // 20
