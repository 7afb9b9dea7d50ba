import sys

import pytest
import torch

from hqf.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings: Linux only")
def test_keep_freed_memory_takes_effect_on_glibc_and_tensors_still_work():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
    x = torch.ones(2**18, dtype=torch.complex128)  # 4 MiB: served from the heap now
    del x
    y = torch.full((2**18,), 2.0, dtype=torch.float64)
    assert float(y.sum()) == 2.0 * 2**18
