import numpy as np
import pytest
import torch

from hqf.registry.loader import registry
from hqf.registry.make import make_fusion


def test_registered_names():
    assert {"gated", "concat", "quantum-only", "classical-only"} <= set(registry().names("fusion"))


def test_gated_matches_equations_7_and_8_with_its_own_weights():
    torch.manual_seed(0)
    k, r = 5, 3
    fusion = make_fusion("gated", k, r).double()
    gen = torch.Generator().manual_seed(1)
    h_c = torch.randn(7, k, generator=gen, dtype=torch.float64)
    h_q = torch.rand(7, r, generator=gen, dtype=torch.float64) * 2 - 1
    out = fusion(h_c, h_q).detach().numpy()

    wg, bg = fusion.gate.weight.detach().numpy(), fusion.gate.bias.detach().numpy()
    wp, bp = fusion.project.weight.detach().numpy(), fusion.project.bias.detach().numpy()
    assert wg.shape == (k, k + r) and wp.shape == (k, r)
    hc, hq = h_c.numpy(), h_q.numpy()
    g = 1 / (1 + np.exp(-(np.concatenate([hc, hq], axis=1) @ wg.T + bg)))
    expected = g * hc + (1 - g) * (hq @ wp.T + bp)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fusion.last_gate.numpy(), g, atol=1e-12)
    assert fusion.out_features == k


def test_gated_limits_and_gradients():
    fusion = make_fusion("gated", 4, 2, bias=False).double()
    assert fusion.gate.bias is None and fusion.project.bias is None
    h_c = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    h_q = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():  # gate forced open: F = H_c
        fusion.gate.weight.zero_()
        fusion.gate.weight[:, :4] = 1e4 * torch.eye(4)
    f = fusion(h_c.abs() + 1, h_q)
    torch.testing.assert_close(f, h_c.abs() + 1)
    fusion = make_fusion("gated", 4, 2).double()
    fusion(h_c, h_q).sum().backward()
    assert h_c.grad is not None and h_q.grad is not None
    assert all(p.grad is not None for p in fusion.parameters())


def test_diagnostics_gated_reports_its_mean_gate_and_others_nothing():
    fusion = make_fusion("gated", 4, 2)
    assert fusion.diagnostics() == {}  # before any call
    fusion(torch.randn(5, 4), torch.randn(5, 2))
    assert fusion.diagnostics() == {"gate_mean": pytest.approx(float(fusion.last_gate.mean()))}
    concat = make_fusion("concat", 4, 2)
    concat(torch.randn(5, 4), torch.randn(5, 2))
    assert concat.diagnostics() == {}


def test_concat_and_single_branch_fusions():
    h_c, h_q = torch.randn(2, 4), torch.randn(2, 3)
    concat = make_fusion("concat", 4, 3)
    assert concat.out_features == 7
    torch.testing.assert_close(concat(h_c, h_q), torch.cat([h_c, h_q], 1))

    q_only = make_fusion("quantum-only", 4, 3)
    assert (q_only.uses_classical, q_only.uses_quantum, q_only.out_features) == (False, True, 3)
    assert q_only(None, h_q) is h_q

    c_only = make_fusion("classical-only", 4, 0)
    assert (c_only.uses_classical, c_only.uses_quantum, c_only.out_features) == (True, False, 4)
    assert c_only(h_c, None) is h_c


def test_fusion_errors_name_what_was_received():
    with pytest.raises(ValueError, match=r"H_q must have shape \[B, 3\] \(got \[2, 5\]\)"):
        make_fusion("gated", 4, 3)(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"needs H_c \(got None\)"):
        make_fusion("concat", 4, 3)(None, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"'quantum_features' must be >= 1 \(got 0\)"):
        make_fusion("gated", 4, 0)
    with pytest.raises(ValueError, match=r"'classical_features' must be >= 1 \(got 0\)"):
        make_fusion("classical-only", 0, 3)
