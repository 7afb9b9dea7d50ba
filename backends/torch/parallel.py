"""The numba kernels' one thread pool (fused and blocked share it), how a range is split over threads, and
which calls are too small for more than one thread.

A call that touches fewer than :data:`SERIAL_AMPLITUDES` amplitudes (rows × ``2**n``) takes microseconds;
handing part of it to another thread (the pool's worker, or torch's OpenMP team in an operator) makes
it wait until that thread gets a core, which on a busy machine is a scheduler slice, milliseconds. Such
a call runs on the calling thread alone: :func:`in_parallel` runs its parts one after the other, and
:func:`torch_threads_for` gives torch's operators one thread. The parts are the same either way (they
depend on the thread count only), so the kernels' values do not change.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

#: calls touching fewer amplitudes than this (rows × 2**n) run on the calling thread only
SERIAL_AMPLITUDES = 2**14

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


def serial(amplitudes: int) -> bool:
    """Whether a call touching ``amplitudes`` amplitudes runs on the calling thread only."""
    return amplitudes < SERIAL_AMPLITUDES


def in_parallel(fn: Callable[[int, int], Result], n_items: int, threads: int, amplitudes: int) -> list[Result]:
    """``[fn(first, last)]`` over :func:`ranges` of ``n_items``: on the pool's threads, or one after
    the other on the calling thread when the call is small (:func:`serial`) or has one range."""
    parts = ranges(n_items, threads)
    if len(parts) == 1 or serial(amplitudes):
        return [fn(first, last) for first, last in parts]
    return POOL.run([lambda first=first, last=last: fn(first, last) for first, last in parts])


@contextlib.contextmanager
def torch_threads_for(amplitudes: int) -> Iterator[None]:
    """torch's intra-op threads set to one for the block when the call is small (:func:`serial`),
    restored after; unchanged otherwise."""
    before = torch.get_num_threads()
    if before == 1 or not serial(amplitudes):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
