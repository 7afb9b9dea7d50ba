"""The numba kernels' one thread pool (fused and blocked share it), how a range is split over threads, and
which work is too small for more than one thread.

Work of microseconds that hands a part to another thread (the pool's worker, or torch's OpenMP team
inside an operator) waits until that thread gets a core: on a busy machine, a scheduler slice of
milliseconds. So a kernel call of fewer than :data:`SERIAL_UPDATES` amplitude updates (amplitudes × gates)
runs its parts one after the other on the calling thread (:func:`in_parallel`), and torch's operators on
states of fewer than :data:`SERIAL_AMPLITUDES` amplitudes (rows × ``2**n``) run on one thread
(:func:`torch_threads_for`). The parts are the same either way (they depend on the thread count only),
so the kernels' values do not change.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

#: torch's operators on states of fewer amplitudes than this (rows × 2**n) run on one thread
SERIAL_AMPLITUDES = 2**14
#: kernel calls of fewer amplitude updates than this (rows × 2**n × gates) run on the calling thread
SERIAL_UPDATES = 2**17

Result = TypeVar("Result")


class Pool:
    """A thread pool that grows to the largest thread count asked of it (the kernels release the GIL)."""

    def __init__(self) -> None:
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.workers = 0
        self.lock = threading.Lock()

    def run(self, calls: list[Callable[[], Result]]) -> list[Result]:
        """Every call's result, in order, the calls running on the pool's threads."""
        with self.lock:
            if self.executor is None or self.workers < len(calls):
                old = self.executor
                self.executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=len(calls), thread_name_prefix="hqf-kernels"
                )
                self.workers = len(calls)
                if old is not None:
                    old.shutdown(wait=False)
            executor = self.executor
        return [future.result() for future in [executor.submit(call) for call in calls]]


#: the pool of this process
POOL = Pool()


def ranges(n_items: int, threads: int) -> list[tuple[int, int]]:
    """``min(threads, n_items)`` (at least one) contiguous ranges ``(first, last)`` covering ``0 … n_items``."""
    parts = max(1, min(threads, n_items))
    bounds = [n_items * t // parts for t in range(parts + 1)]
    return [(bounds[t], bounds[t + 1]) for t in range(parts)]


def in_parallel(fn: Callable[[int, int], Result], n_items: int, threads: int, updates: int) -> list[Result]:
    """``[fn(first, last)]`` over :func:`ranges` of ``n_items``: on the pool's threads, or one after
    the other on the calling thread when the call has one range or fewer than :data:`SERIAL_UPDATES`
    amplitude updates (``updates``)."""
    parts = ranges(n_items, threads)
    if len(parts) == 1 or updates < SERIAL_UPDATES:
        return [fn(first, last) for first, last in parts]
    return POOL.run([lambda first=first, last=last: fn(first, last) for first, last in parts])


@contextlib.contextmanager
def torch_threads_for(amplitudes: int) -> Iterator[None]:
    """torch's intra-op threads set to one for the block when its states have fewer than
    :data:`SERIAL_AMPLITUDES` amplitudes, restored after; unchanged otherwise."""
    before = torch.get_num_threads()
    if before == 1 or amplitudes >= SERIAL_AMPLITUDES:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
