import sys

import pytest
import torch

from hqf.learn.process.runtime import keep_freed_memory, tune_process


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings: Linux only")
def test_keep_freed_memory_takes_effect_on_glibc_and_tensors_still_work():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
    x = torch.ones(2**18, dtype=torch.complex128)  # 4 MiB: served from the heap now
    del x
    y = torch.full((2**18,), 2.0, dtype=torch.float64)
    assert float(y.sum()) == 2.0 * 2**18


def test_tune_process_routes_cpu_kernels_away_from_onednn_with_the_same_results():
    x = torch.randn(64, 33, generator=torch.Generator().manual_seed(0))
    before = torch.backends.mkldnn.enabled
    try:
        torch.backends.mkldnn.enabled = True
        reference = torch.nn.functional.gelu(x)
        tune_process()
        assert torch.backends.mkldnn.enabled is False
        torch.testing.assert_close(torch.nn.functional.gelu(x), reference, rtol=1e-6, atol=1e-6)
    finally:
        torch.backends.mkldnn.enabled = before
