"""Process-wide settings: what the ``hqf`` commands make at start (:func:`tune_process`, measured in
docs/performance.md; library users may call it once themselves), and the thread count of a run
(:func:`resolve_threads`, :func:`set_threads`).

Freed memory kept in the process (:func:`keep_freed_memory`). glibc returns every freed block of 128 KiB or more (or
the top of the heap) to the operating system; the next tensor of that size is mapped afresh and pays one page
fault per 4 KiB on first touch. A
state-vector simulation allocates and frees a state-sized tensor per step (1 MiB at 8 qubits, batch
256), so on a virtual machine page faults took about half the time of a forward+backward pass
(docs/performance.md). :func:`keep_freed_memory` raises glibc's thresholds so freed blocks stay in the
heap and are reused.

Native CPU kernels instead of oneDNN's (:func:`use_native_cpu_kernels`). On the CPU, torch sends
float32 element-wise operations such as GELU to oneDNN, whose call costs about 5 µs at any size
(torch's own kernel: 0.8 µs on 64 numbers, and faster at batch 256 too); at batch 1 that was a sixth
of the default model's inference latency, and training was no faster with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import pathlib
import sys

import torch

from hqf.quantum.interfaces import Backend

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
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mib * 2**20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold_mib * 2**20)
    )


def use_native_cpu_kernels() -> None:
    """Route CPU operations to torch's own kernels instead of oneDNN's (``torch.backends.mkldnn``)."""
    torch.backends.mkldnn.enabled = False


def tune_process() -> None:
    """Both settings above; what every ``hqf`` command does at start."""
    keep_freed_memory()
    use_native_cpu_kernels()


#: amplitudes one operation touches (batch × 2**n_qubits) from which more than one thread is used
PARALLEL_AMPLITUDES = 2**22


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores() -> int:
    """Usable cores not taken by other runnable processes now (``/proc/loadavg``'s running count)."""
    cores = usable_cores()
    try:
        running = int(pathlib.Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return cores
    return max(1, cores - max(0, running - 1))  # the count includes this process


def resolve_threads(setting: int | str, amplitudes: int) -> int:
    """The thread count for ``threads = setting`` on work of ``amplitudes`` per operation.

    A number is taken as given. ``auto``: ``OMP_NUM_THREADS`` where the user set it; otherwise one
    thread below :data:`PARALLEL_AMPLITUDES` (there more threads gained at most 14% on a quiet machine
    and cost up to 13× under load: docs/performance.md), else the idle usable cores.
    """
    if setting != "auto":
        return int(setting)
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) >= 1:
        return int(from_env)
    if amplitudes < PARALLEL_AMPLITUDES:
        return 1
    return min(usable_cores(), idle_cores())


def set_threads(n: int, backend: Backend | None = None) -> None:
    """torch's intra-op threads (which the torch backend's fused kernels follow too) and the backend's
    own set to ``n``, for the rest of the process."""
    torch.set_num_threads(n)
    if backend is not None:
        backend.set_threads(n)
