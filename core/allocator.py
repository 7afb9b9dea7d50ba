"""Keeping freed memory in the process, so large tensors reuse it instead of faulting in fresh pages.

glibc returns every freed block of 128 KiB or more (or the top of the heap) to the operating system;
the next tensor of that size is mapped afresh and pays one page fault per 4 KiB on first touch. A
state-vector simulation allocates and frees a state-sized tensor per step (1 MiB at 8 qubits, batch
256), so on a virtual machine page faults took about half the time of a forward+backward pass
(docs/performance.md). :func:`keep_freed_memory` raises glibc's thresholds so freed blocks stay in the
heap and are reused. ``hqf`` commands call it at start; library users may call it once themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory(mmap_threshold_mib: int = 32, trim_threshold_mib: int = 1024) -> bool:
    """Serve blocks below ``mmap_threshold_mib`` from the heap and keep up to ``trim_threshold_mib`` of
    freed heap. Returns whether the settings took effect (False off glibc, e.g. on macOS or musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # both are set: setting either one alone switches off glibc's own adaptive thresholds
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mib * 2**20)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold_mib * 2**20))
