"""What every path of one torch backend reads: its :class:`Settings`, a frozen value."""

from __future__ import annotations

import attrs
import torch


@attrs.frozen
class Settings:
    """The dtype, device, tuning options and thread count of a :class:`~hqf.backends.torch.TorchBackend`
    (its arguments of the same names; the byte budgets in bytes, not MiB).

    ``fused``: whether the numba kernels (fused and blocked) may run; the backend sets it to ``False``
    on CUDA, in complex64 and where numba is missing. ``threads``: the threads of the numba kernels (``None``:
    torch's intra-op count at the time of the call, :meth:`thread_count`).
    """

    complex_dtype: torch.dtype
    real_dtype: torch.dtype
    device: torch.device
    block: int
    chunk: int
    checkpoint_bytes: float
    cache_bytes: float
    prefix_bytes: float
    fused: bool
    threads: int | None = None

    def thread_count(self) -> int:
        """The threads a call may use now."""
        return self.threads if self.threads is not None else torch.get_num_threads()
