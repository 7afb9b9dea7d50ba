"""The ``cuquantum`` backend without a GPU: availability, no import-time cost, and the circuit-to-call
translation run against a CPU double of cuStateVec that follows its documented conventions.

The double (``FakeCuStateVec``) has the binding's function signatures (parameter names as in
cuquantum-python's ``custatevec.pxd``) and reads and writes memory through the raw pointers the backend
passes, with cuStateVec's rules: index bit ``k`` is worth ``2**k``; the ``i``-th target or basis bit is
bit ``i`` of a matrix index; ``MATRIX_INDEXED`` gives state ``s`` matrix ``matrix_indices[s]``; a NULL
``control_bit_values`` means all ones; batched expectation values are ``[n_svs, n_matrices]`` complex128.
What it cannot show is that the real library agrees: tests/test_gpu.py checks that on a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import importlib.util
import inspect
import json
import os
import pathlib
import subprocess
import sys
import types

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import PAULI, kron_on, reference_expval
from strategies import angle_batches, circuits

import hqf.backends.cuquantum as cq
from hqf.backends.cuquantum import binding, translation
from hqf.errors import BackendUnavailableError
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.gradients import default_gradient, expval
from hqf.quantum.interfaces import Availability
from hqf.registry.make import make_backend
from hqf.testing import Limits, ReferenceBackend, check_backend

WORKSPACE = 96  # bytes the double asks for, so the workspace path is exercised
#: for the tests that show how hqf reports a cuQuantum that cannot run: skipped where it can
unavailable_here = pytest.mark.skipif(binding.probe().ok, reason="cuStateVec runs here")


# -- a CPU double of the cuStateVec binding -------------------------------------------------------
def _view(ptr: int, count: int, dtype) -> np.ndarray:
    """A numpy array over ``count`` items of raw memory at ``ptr`` (no copy)."""
    dtype = np.dtype(dtype)
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(buffer, dtype=dtype)


def _sv_dtype(code: int):
    return {binding.CUDA_C_64F: np.complex128, binding.CUDA_C_32F: np.complex64}[code]


def _apply_matrix(sv: np.ndarray, n: int, m: np.ndarray, targets, controls) -> None:
    """``m`` on index bits ``targets`` (``targets[i]`` is bit ``i`` of the matrix index) where every control bit
    is 1."""
    index = np.arange(2**n)
    mask = np.ones(2**n, dtype=bool)
    for t in targets:
        mask &= ((index >> t) & 1) == 0
    for c in controls:
        mask &= ((index >> c) & 1) == 1
    base = index[mask]
    slots = [base | sum(((k >> i) & 1) << t for i, t in enumerate(targets)) for k in range(2 ** len(targets))]
    old = np.stack([sv[s] for s in slots])  # [2^t, rows]
    for j, s in enumerate(slots):
        sv[s] = m[j] @ old


def _expectation(sv: np.ndarray, n: int, m: np.ndarray, bits) -> complex:
    index = np.arange(2**n)
    sub = sum(((index >> b) & 1) << i for i, b in enumerate(bits))
    rest = index & ~sum(1 << b for b in bits)
    moved = np.zeros_like(sv, dtype=np.complex128)
    for k in range(2 ** len(bits)):
        source = rest | sum(((k >> i) & 1) << b for i, b in enumerate(bits))
        moved += m[sub, k] * sv[source]
    return complex(np.vdot(sv, moved))


class FakeCuStateVec(types.SimpleNamespace):
    """The subset of ``cuquantum.bindings.custatevec`` hqf calls, on host memory."""

    def __init__(self) -> None:
        super().__init__(calls=[], handles=set(), stream=None, next_handle=1000)

    def _check(self, sv_data_type, matrix_data_type, layout, compute_type, extra_workspace=None, size=None):
        assert sv_data_type == matrix_data_type
        compute = {binding.CUDA_C_64F: binding.COMPUTE_64F, binding.CUDA_C_32F: binding.COMPUTE_32F}
        assert compute_type == compute[sv_data_type]
        assert layout == binding.LAYOUT_ROW
        if extra_workspace is not None:
            assert extra_workspace != 0 and size == WORKSPACE

    def create(self):
        handle, self.next_handle = self.next_handle, self.next_handle + 1  # never reused
        self.handles.add(handle)
        return handle

    def destroy(self, handle):
        self.handles.remove(handle)

    def set_stream(self, handle, stream_id):
        assert handle in self.handles
        self.stream = stream_id

    def apply_matrix_get_workspace_size(
        self,
        handle,
        sv_data_type,
        n_index_bits,
        matrix,
        matrix_data_type,
        layout,
        adjoint,
        n_targets,
        n_controls,
        compute_type,
    ):  # noqa: E501
        return WORKSPACE

    def apply_matrix(
        self,
        handle,
        sv,
        sv_data_type,
        n_index_bits,
        matrix,
        matrix_data_type,
        layout,
        adjoint,
        targets,
        n_targets,
        controls,
        control_bit_values,
        n_controls,
        compute_type,
        extra_workspace,
        extra_workspace_size_in_bytes,
    ):  # noqa: E501
        self._check(
            sv_data_type, matrix_data_type, layout, compute_type, extra_workspace, extra_workspace_size_in_bytes
        )
        assert adjoint in (0, 1) and control_bit_values == 0
        assert len(targets) == n_targets and len(controls) == n_controls and not set(targets) & set(controls)
        dtype, dim = _sv_dtype(sv_data_type), 2**n_targets
        state = _view(sv, 2**n_index_bits, dtype)
        m = _view(matrix, dim * dim, dtype).reshape(dim, dim)
        _apply_matrix(state, n_index_bits, m.conj().T if adjoint else m, targets, controls)
        self.calls.append("apply_matrix")

    def apply_matrix_batched_get_workspace_size(
        self,
        handle,
        sv_data_type,
        n_index_bits,
        n_svs,
        sv_stride,
        map_type,
        matrix_indices,
        matrices,
        matrix_data_type,
        layout,
        adjoint,
        n_matrices,
        n_targets,
        n_controls,
        compute_type,
    ):  # noqa: E501
        return WORKSPACE

    def apply_matrix_batched(
        self,
        handle,
        batched_sv,
        sv_data_type,
        n_index_bits,
        n_svs,
        sv_stride,
        map_type,
        matrix_indices,
        matrices,
        matrix_data_type,
        layout,
        adjoint,
        n_matrices,
        targets,
        n_targets,
        controls,
        control_bit_values,
        n_controls,
        compute_type,
        extra_workspace,
        extra_workspace_size_in_bytes,
    ):  # noqa: E501
        self._check(
            sv_data_type, matrix_data_type, layout, compute_type, extra_workspace, extra_workspace_size_in_bytes
        )
        assert adjoint in (0, 1) and control_bit_values == 0 and sv_stride == 2**n_index_bits
        assert len(targets) == n_targets and len(controls) == n_controls and not set(targets) & set(controls)
        dtype, dim = _sv_dtype(sv_data_type), 2**n_targets
        states = _view(batched_sv, n_svs * sv_stride, dtype).reshape(n_svs, sv_stride)
        mats = _view(matrices, n_matrices * dim * dim, dtype).reshape(n_matrices, dim, dim)
        if map_type == binding.MAP_MATRIX_INDEXED:
            chosen = _view(matrix_indices, n_svs, np.int32)
        else:
            assert map_type == binding.MAP_BROADCAST and n_matrices == 1
            chosen = np.zeros(n_svs, dtype=np.int32)
        for s in range(n_svs):
            m = mats[chosen[s]]
            _apply_matrix(states[s], n_index_bits, m.conj().T if adjoint else m, targets, controls)
        self.calls.append("apply_matrix_batched")

    def compute_expectation_batched_get_workspace_size(
        self,
        handle,
        sv_data_type,
        n_index_bits,
        n_svs,
        sv_stride,
        matrices,
        matrix_data_type,
        layout,
        n_matrices,
        n_basis_bits,
        compute_type,
    ):  # noqa: E501
        return WORKSPACE

    def compute_expectation_batched(
        self,
        handle,
        batched_sv,
        sv_data_type,
        n_index_bits,
        n_svs,
        sv_stride,
        expectation_values,
        matrices,
        matrix_data_type,
        layout,
        n_matrices,
        basis_bits,
        n_basis_bits,
        compute_type,
        extra_workspace,
        extra_workspace_size_in_bytes,
    ):  # noqa: E501
        self._check(
            sv_data_type, matrix_data_type, layout, compute_type, extra_workspace, extra_workspace_size_in_bytes
        )
        assert len(basis_bits) == n_basis_bits
        dtype, dim = _sv_dtype(sv_data_type), 2**n_basis_bits
        states = _view(batched_sv, n_svs * sv_stride, dtype).reshape(n_svs, sv_stride)
        mats = _view(matrices, n_matrices * dim * dim, dtype).reshape(n_matrices, dim, dim)
        out = _view(expectation_values, n_svs * n_matrices, np.complex128).reshape(n_svs, n_matrices)
        for s in range(n_svs):
            for k in range(n_matrices):
                out[s, k] = _expectation(states[s], n_index_bits, mats[k], basis_bits)
        self.calls.append("compute_expectation_batched")

    def compute_expectations_on_pauli_basis(
        self,
        handle,
        sv,
        sv_data_type,
        n_index_bits,
        expectation_values,
        pauli_operators_array,
        n_pauli_operator_arrays,
        basis_bits_array,
        n_basis_bits_array,
    ):  # noqa: E501
        state = _view(sv, 2**n_index_bits, _sv_dtype(sv_data_type))
        out = _view(expectation_values, n_pauli_operator_arrays, np.float64)
        letters = {code: p for p, code in binding.PAULI_CODE.items()}
        for k, (paulis, bits, count) in enumerate(zip(pauli_operators_array, basis_bits_array, n_basis_bits_array)):
            assert len(paulis) == len(bits) == count
            op = np.ones((1, 1))
            for code in reversed(paulis):  # first Pauli on the first (least significant) bit
                op = np.kron(op, PAULI[letters[code]])
            out[k] = _expectation(state, n_index_bits, op, bits).real
        self.calls.append("compute_expectations_on_pauli_basis")


class CpuDouble(cq.CuQuantumBackend):
    """The real backend class with its three CUDA hooks pointed at host memory."""

    capabilities = attrs.evolve(cq.CuQuantumBackend.capabilities, devices={"cpu"})

    def _device_context(self):
        return contextlib.nullcontext()

    def _stream(self) -> int:
        return 0

    def _free_memory(self) -> int:
        return 1 << 30


@pytest.fixture
def fake(monkeypatch):
    double = FakeCuStateVec()
    monkeypatch.setattr(binding, "probe", lambda: Availability(True))
    monkeypatch.setattr(binding, "load_binding", lambda: double)
    return double


@pytest.fixture
def fresh_probe():
    binding.probe.cache_clear()
    yield
    binding.probe.cache_clear()


# -- translation ---------------------------------------------------------------------------------
def test_wire_zero_is_the_most_significant_index_bit():
    assert [translation.index_bit(5, w) for w in range(5)] == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match=r"'wire' must be in 0..4 \(got 5\)"):
        translation.index_bit(5, 5)


def test_two_qubit_gates_become_controlled_one_qubit_matrices():
    circuit = Circuit(
        4,
        [Operation("CNOT", (0, 3)), Operation("CZ", (2, 1)), Operation("RY", 1, 0), Operation("H", 3)],
        [PauliWord.parse("Z0 X3"), PauliWord.z(1), PauliWord.parse("Y3 Z0")],
    )
    calls = translation.compile_circuit(circuit)
    assert calls.gates == (
        translation.GateCall("X", 0, (3,)),
        translation.GateCall("Z", 2, (1,)),
        translation.GateCall("RY", 2, (), 0),
        translation.GateCall("H", 0),
    )
    # Z0 X3 and Y3 Z0 share bits (0, 3) and are measured together; letters follow ascending bits
    assert calls.groups == (
        translation.ObservableGroup((0, 3), (0, 2), (("X", "Z"), ("Y", "Z"))),
        translation.ObservableGroup((2,), (1,), (("Z",),)),
    )


def test_pauli_matrix_puts_the_first_letter_on_the_least_significant_bit():
    # X on basis bit 0, Z on basis bit 1: the matrix index is (bit1 bit0), so Z ⊗ X
    np.testing.assert_array_equal(translation.pauli_matrix(("X", "Z")), np.kron(PAULI["Z"], PAULI["X"]))
    word = ("Y", "X", "Z")
    want = kron_on(3, {0: PAULI["Z"], 1: PAULI["X"], 2: PAULI["Y"]})  # wire 0 = most significant
    np.testing.assert_array_equal(translation.pauli_matrix(word), want)


# -- the backend against the CPU double ----------------------------------------------------------
@pytest.mark.parametrize("batching", cq.BATCHING)
@given(data=st.data())
def test_matches_dense_reference_through_the_double(batching, data):
    double = FakeCuStateVec()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(binding, "probe", lambda: Availability(True))
        mp.setattr(binding, "load_binding", lambda: double)
        backend = CpuDouble(device="cpu", batching=batching)
        circuit = data.draw(circuits(max_qubits=5, max_ops=16))
        angles = data.draw(angle_batches(circuit))
        got = backend.expval(circuit, torch.from_numpy(angles))
    assert got.dtype == torch.float64 and got.shape == (angles.shape[0], circuit.n_outputs)
    np.testing.assert_allclose(got.numpy(), reference_expval(circuit, angles), atol=1e-10, err_msg=circuit.diagram())


@pytest.mark.parametrize("batching", cq.BATCHING)
def test_final_states_have_the_torch_backends_memory_layout(fake, batching):
    # [B, 2**n], wire 0 the most significant index bit: the reference's state vectors as rows, as torch has them
    # asymmetric in the wires: RY(0.4) on wire 0, RX(1.3) on wire 2, CNOT 0→1, H on wire 3
    ops = [Operation("RY", 0, 0), Operation("RX", 2, 1), Operation("CNOT", (0, 1)), Operation("H", 3)]
    circuit = Circuit(4, ops, [PauliWord.z(0)])
    angles = torch.tensor([[0.4, 1.3], [-2.0, 0.2]], dtype=torch.float64)
    want = torch.stack([ReferenceBackend().state(circuit, row) for row in angles])
    got = CpuDouble(device="cpu", batching=batching).final_states(circuit, angles)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("batching", "dtype", "adjoint"),
    [
        ("batched", "complex128", True),
        ("batched", "complex64", False),
        ("loop", "complex128", False),
        ("loop", "complex64", True),
    ],
)
def test_conformance_suite_through_the_double(fake, batching, dtype, adjoint):
    results = check_backend(
        lambda: CpuDouble(device="cpu", dtype=dtype, batching=batching, adjoint=adjoint),
        examples=6,
        limits=Limits(max_qubits=4, max_ops=12),
    )
    assert all(r.ok for r in results), "\n".join(r.report() for r in results)
    # native-gradient: the adjoint vjp where declared, else skipped
    assert [r.status for r in results] == ["pass"] * 4 + ["pass" if adjoint else "skip"]


def test_complex64_and_chunked_passes(fake):
    circuit = Circuit(3, [Operation("RX", 0, 0), Operation("CNOT", (0, 2)), Operation("RY", 1, 1)],
                      [PauliWord.z(2), PauliWord.parse("Z0 Z2"), PauliWord.parse("X1")])  # fmt: skip
    angles = torch.linspace(-2, 2, 14, dtype=torch.float64).reshape(7, 2)
    backend = CpuDouble(device="cpu", dtype="complex64", max_rows=3)
    got = backend.expval(circuit, angles)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), reference_expval(circuit, angles.numpy()), atol=1e-5)
    assert fake.calls.count("compute_expectation_batched") == 3 * 3  # ceil(7/3) passes × 3 wire sets
    assert fake.stream == 0


def test_batched_mode_makes_one_call_per_gate_and_loop_mode_one_per_state(fake):
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("CZ", (0, 1))], [PauliWord.z(0), PauliWord.z(1)])
    angles = torch.rand(5, 1, dtype=torch.float64)
    CpuDouble(device="cpu").expval(circuit, angles)
    assert fake.calls == ["apply_matrix_batched"] * 2 + ["compute_expectation_batched"] * 2
    fake.calls.clear()
    CpuDouble(device="cpu", batching="loop").expval(circuit, angles)
    assert fake.calls == ["apply_matrix"] * 10 + ["compute_expectations_on_pauli_basis"] * 5


@pytest.mark.parametrize("batching", cq.BATCHING)
@pytest.mark.parametrize("gradient", ["adjoint", "parameter-shift"])
def test_gradients_match_autograd_on_the_reference(fake, gradient, batching):
    circuit = Circuit(3, [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1),
                          Operation("RZ", 2, 2), Operation("CZ", (1, 2)), Operation("H", 2), Operation("RY", 0, 3)],
                      [PauliWord.z(1), PauliWord.parse("X2 Y0"), PauliWord.parse("Z0 Z2")])  # fmt: skip
    angles = torch.tensor([[0.3, -1.2, 0.7, 2.2], [2.0, 0.1, -0.4, -0.9]], dtype=torch.float64)
    a1, a2 = angles.clone().requires_grad_(), angles.clone().requires_grad_()
    weights = torch.tensor([[1.0, -0.5, 0.3], [0.25, 2.0, -1.5]], dtype=torch.float64)
    backend = CpuDouble(device="cpu", batching=batching, max_rows=3, adjoint=True)  # adjoint: 1 state per pass
    (expval(backend, circuit, a1, gradient=gradient) * weights).sum().backward()
    (ReferenceBackend().expval(circuit, a2) * weights).sum().backward()
    torch.testing.assert_close(a1.grad, a2.grad, atol=1e-10, rtol=0)


def test_adjoint_is_opt_in_and_costs_one_forward_and_one_reverse_pass(fake):
    assert default_gradient(CpuDouble(device="cpu")) == "parameter-shift"  # twice differentiable
    with pytest.raises(ValueError, match="has no native 'adjoint' gradient"):
        expval(CpuDouble(device="cpu"), Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)]),
               torch.zeros(1, 1, dtype=torch.float64), gradient="adjoint")  # fmt: skip
    backend = CpuDouble(device="cpu", adjoint=True)
    assert default_gradient(backend) == "adjoint" and "adjoint" not in CpuDouble.capabilities.gradients
    circuit = Circuit(2, [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1)], [PauliWord.z(1)])
    angles = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    expval(backend, circuit, angles).sum().backward()
    # forward: 3 gates + 1 measurement; vjp: 3 gates, 1 Pauli factor for λ, 2 generators, 2 × 3 undone
    assert fake.calls.count("apply_matrix_batched") == 3 + 3 + 1 + 2 + 6


def test_empty_batch_and_options_are_checked(fake):
    circuit = Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)])
    assert CpuDouble(device="cpu").expval(circuit, torch.zeros(0, 1, dtype=torch.float64)).shape == (0, 1)
    with pytest.raises(ValueError, match=r"'batching' must be one of \['batched', 'loop'\] \(got 'fast'\)"):
        CpuDouble(device="cpu", batching="fast")
    with pytest.raises(ValueError, match=r"'max_rows' must be >= 1 \(got 0\)"):
        CpuDouble(device="cpu", max_rows=0)
    assert fake.calls == []


def test_handle_is_destroyed_with_the_backend(fake):
    backend = CpuDouble(device="cpu")
    assert len(fake.handles) == 1
    del backend
    gc.collect()
    assert fake.handles == set()


# -- the real binding, where it is installed (it needs no GPU to import) --------------------------
needs_binding = pytest.mark.skipif(binding.binding_name() is None, reason="cuquantum-python is not installed")


@needs_binding
def test_the_double_has_the_real_bindings_signatures():
    cusv = binding.load_binding()
    for name in binding.REQUIRED:
        real = list(inspect.signature(getattr(cusv, name)).parameters)
        double = list(inspect.signature(getattr(FakeCuStateVec, name)).parameters)[1:]  # less self
        assert real == double, name


@needs_binding
def test_enum_values_hqf_passes_as_ints_are_the_bindings():
    cusv = binding.load_binding()
    assert int(cusv.MatrixLayout.ROW) == binding.LAYOUT_ROW
    assert int(cusv.MatrixMapType.BROADCAST) == binding.MAP_BROADCAST
    assert int(cusv.MatrixMapType.MATRIX_INDEXED) == binding.MAP_MATRIX_INDEXED
    assert {p: int(getattr(cusv.Pauli, p)) for p in "XYZ"} == binding.PAULI_CODE
    compute = getattr(cusv, "ComputeType", None) or importlib.import_module("cuquantum").ComputeType
    assert (int(compute.COMPUTE_32F), int(compute.COMPUTE_64F)) == (binding.COMPUTE_32F, binding.COMPUTE_64F)
    try:  # cuquantum-python >= 25.09 keeps the CUDA enums next to the bindings
        data_type = importlib.import_module("cuquantum.bindings._utils").cudaDataType
    except ImportError:
        data_type = importlib.import_module("cuquantum").cudaDataType
    assert (int(data_type.CUDA_C_32F), int(data_type.CUDA_C_64F)) == (binding.CUDA_C_32F, binding.CUDA_C_64F)


# -- availability ----------------------------------------------------------------------------------
@unavailable_here
def test_unavailable_here_with_its_reason():
    availability = cq.CuQuantumBackend.availability()
    assert not availability.ok
    if binding.binding_name() is None:
        assert availability.reason == "Python package 'cuquantum' is not installed (pip install 'hqf[cuquantum]')"
    elif not torch.cuda.is_available():
        assert availability.reason == "no CUDA GPU visible to torch"
    else:  # pragma: no cover - a GPU machine where cuStateVec fails to start
        assert availability.reason.startswith("cuStateVec could not start: ")


def test_probe_reports_a_failing_handle_in_one_line_and_is_cached(monkeypatch, fresh_probe):
    class cuStateVecError(Exception):
        pass

    tries = []

    def create():
        tries.append(1)
        raise cuStateVecError("NOT_INITIALIZED (1): the library was not initialized\nmore detail")

    failing = types.SimpleNamespace(create=create, destroy=lambda h: None)
    monkeypatch.setattr(binding, "binding_name", lambda: "cuquantum.bindings.custatevec")
    monkeypatch.setattr(binding, "load_binding", lambda: failing)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    first, second = binding.probe(), binding.probe()
    assert (
        first
        == second
        == Availability(
            False, "cuStateVec could not start: cuStateVecError: NOT_INITIALIZED (1): the library was not initialized"
        )
    )
    assert tries == [1]


def test_probe_says_no_gpu_before_touching_the_binding(monkeypatch, fresh_probe):
    monkeypatch.setattr(binding, "binding_name", lambda: "cuquantum.bindings.custatevec")
    monkeypatch.setattr(binding, "load_binding", lambda: pytest.fail("the binding must not be loaded"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert binding.probe() == Availability(False, "no CUDA GPU visible to torch")


def test_binding_without_the_batched_functions_is_reported(monkeypatch):
    old = types.ModuleType("cuquantum.custatevec")
    old.create = old.destroy = lambda *a: None
    monkeypatch.setattr(binding, "binding_name", lambda: "cuquantum.custatevec")
    monkeypatch.setitem(sys.modules, "cuquantum.custatevec", old)
    with pytest.raises(ImportError, match=r"lacks set_stream, apply_matrix, .*cuquantum-python >= 24.03"):
        binding.load_binding()


def test_binding_is_found_at_either_location_without_importing_it(tmp_path, monkeypatch):
    # the fake packages raise when imported; a real cuquantum imported earlier is set aside meanwhile
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] == "cuquantum"}
    try:
        _find_fake_bindings(tmp_path, monkeypatch)
    finally:
        sys.modules.update(saved)


def _find_fake_bindings(tmp_path, monkeypatch):
    for layout in (("bindings", "custatevec.py"), ("custatevec", "__init__.py")):
        root = tmp_path / layout[0] / "cuquantum"
        (root / layout[0]).mkdir(parents=True)
        (root / "__init__.py").write_text("raise RuntimeError('cuquantum must not be imported')\n")
        (root / layout[0] / layout[1]).write_text("raise RuntimeError('nor the binding')\n")
        if layout[1] == "custatevec.py":
            (root / layout[0] / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path / layout[0]))
        want = "cuquantum.bindings.custatevec" if layout[0] == "bindings" else "cuquantum.custatevec"
        assert binding.binding_name() == want
        monkeypatch.undo()
        assert "cuquantum" not in sys.modules


@unavailable_here
def test_make_backend_and_constructor_refuse_with_the_reason():
    reason = cq.CuQuantumBackend.availability().reason
    with pytest.raises(BackendUnavailableError, match="backend 'cuquantum' is unavailable: ") as info:
        make_backend("cuquantum")
    assert info.value.reason == reason
    with pytest.raises(BackendUnavailableError):
        cq.CuQuantumBackend()


PLUGINS = "torch,cuquantum,ansatze,encoders,fusions,regularizers,baselines"
FRESH_PROCESS = """
import sys
import hqf
from hqf.registry.loader import registry

reg = registry()
assert 'cuquantum' in reg.names('backend')
import hqf.backends.cuquantum
roots = ('cuquantum', 'cupy', 'cupy_backends', 'nvmath')
print('imported:', sorted(m for m in sys.modules if m.split('.')[0] in roots))
from hqf.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Two new interpreters, run side by side: each imports hqf, loads the registry, notes CUDA
    imports, then runs ``hqf list`` or ``hqf run --backend cuquantum --ansatz hea8x6``."""
    env = {**os.environ, "HQF_PLUGINS": PLUGINS}
    out = tmp_path_factory.mktemp("run") / "never-written"
    commands = {"list": ["list"], "run": ["run", "--backend", "cuquantum", "--ansatz", "hea8x6", "--out", str(out)]}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", FRESH_PROCESS, *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for name, args in commands.items()
    }
    done = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    done["run_dir"] = out
    return done


def test_importing_hqf_and_loading_the_registry_imports_no_cuda_library(fresh):
    for name in ("list", "run"):
        assert fresh[name].stdout.splitlines()[0] == "imported: []", fresh[name].stderr


@unavailable_here
def test_hqf_list_shows_cuquantum_unavailable_with_its_reason(fresh):
    assert fresh["list"].returncode == 0, fresh["list"].stderr
    line = next(line for line in fresh["list"].stdout.splitlines() if line.split()[:1] == ["cuquantum"])
    assert f"unavailable: {cq.CuQuantumBackend.availability().reason}" in line


@unavailable_here
def test_hqf_run_on_cuquantum_stops_with_one_line_and_exit_2(fresh):
    result = fresh["run"]
    assert result.returncode == 2, result.stderr
    reason = cq.CuQuantumBackend.availability().reason
    assert result.stderr.splitlines() == [f"Error: backend 'cuquantum' is unavailable: {reason}"]
    assert not fresh["run_dir"].exists()  # stopped before any work


def test_gpu_benchmark_runs_on_a_cpu_only_machine(tmp_path):
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"
    spec = importlib.util.spec_from_file_location("gpu_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    args = ["--quick", "--qubits", "3", "--min-seconds", "0", "--json", str(out)]
    assert bench.main(args) == 0
    rows = json.loads(out.read_text())["rows"]
    by_backend = {r["backend"]: r for r in rows if r.get("mode") != "fwd+bwd"}
    assert by_backend["torch-cpu"]["samples_per_s"] > 0 and by_backend["torch-cpu"]["batch"] == 32
    assert 0 < by_backend["torch-cpu"]["fraction_of_copy_bandwidth"]
    if not torch.cuda.is_available():
        assert by_backend["torch-cuda"]["skipped"].startswith("unavailable: ")
        reason = cq.CuQuantumBackend.availability().reason
        assert by_backend["cuquantum-cuda (batched)"]["skipped"] == f"unavailable: {reason}"
