"""``cuquantum``: NVIDIA cuStateVec (through cuquantum-python) on a CUDA GPU, batched over the angles.

A batch of ``B`` states is one torch CUDA tensor ``[B, 2**n]`` (one allocation, stride ``2**n``); its
pointer goes to cuStateVec as ``tensor.data_ptr()``, so CuPy is not needed. cuStateVec numbers index
bits little-endian (bit ``k`` is worth ``2**k``) and hqf's wire 0 is the most significant bit, so
wire ``w`` is cuStateVec index bit ``n-1-w``; with that mapping a state has the same memory layout in
both conventions.

Two ways to run a batch (option ``batching``), kept so that they can be measured against each other:

- ``batched`` (default): per gate one ``apply_matrix_batched`` call for all states (parametric gates:
  one matrix per state, built on the GPU by torch, ``MATRIX_INDEXED``; fixed gates: one matrix,
  ``BROADCAST``), then per set of measured wires one ``compute_expectation_batched`` call.
- ``loop``: per gate and state one ``apply_matrix`` call, then ``compute_expectations_on_pauli_basis``
  per state.

Every gate of the vocabulary runs: a controlled gate (CNOT, CZ, CY, CRX, CRY, CRZ, CPhase, Toffoli,
CSWAP) is its target gate with cuStateVec control bits, any other gate its whole matrix from
:mod:`hqf.quantum.gates` on its wires (the last wire on matrix bit 0, :func:`gate_call`). Hamiltonians
and probabilities are linear maps of measured Pauli words (:mod:`hqf.backends.readout`). Gradients: the core's parameter-shift
rule, or with the option ``adjoint=True`` an adjoint vector-Jacobian product (:meth:`CuQuantumBackend.vjp`).
The adjoint is opt-in until it has been measured against the shift rule on a GPU; a second
derivative (the curvature regularizer) through it falls back to the shift rule in the core. Importing this module imports neither cuquantum nor CuPy: the binding
is loaded when a backend is probed or built.

One module of about 500 lines: the circuit-to-call translation, the availability probe and the three
CUDA hooks share the binding's conventions and are tested together against one CPU double
(tests/test_backend_cuquantum.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import weakref

import attrs
import numpy as np
import torch

from hqf.backends.readout import readout
from hqf.errors import BackendUnavailableError, InvalidCircuitError
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit
from hqf.quantum.gates import FIXED, GENERATORS, gate_matrices
from hqf.registry.hookspecs import hookimpl
from hqf.quantum.interfaces import Availability, Backend, Capabilities

#: where the cuStateVec binding lives: cuquantum-python >= 25.09, then the older location
BINDINGS = ("cuquantum.bindings.custatevec", "cuquantum.custatevec")
EXTRA = "cuquantum"
#: what hqf calls; the batched functions arrived with cuquantum-python 24.03
REQUIRED = (
    "create",
    "destroy",
    "set_stream",
    "apply_matrix",
    "apply_matrix_get_workspace_size",
    "apply_matrix_batched",
    "apply_matrix_batched_get_workspace_size",
    "compute_expectation_batched",
    "compute_expectation_batched_get_workspace_size",
    "compute_expectations_on_pauli_basis",
)

# C enum values (library_types.h, custatevec.h); plain ints work with every binding version.
CUDA_C_32F, CUDA_C_64F = 4, 5
COMPUTE_32F, COMPUTE_64F = 1 << 2, 1 << 4
LAYOUT_ROW = 1
MAP_BROADCAST, MAP_MATRIX_INDEXED = 0, 1
PAULI_CODE = {"X": 1, "Y": 2, "Z": 3}

PAULI_MATRIX = {
    "X": np.array([[0, 1], [1, 0]], dtype=np.complex128),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=np.complex128),
    "Z": np.array([[1, 0], [0, -1]], dtype=np.complex128),
}
BATCHING = ("batched", "loop")


# -- the circuit as cuStateVec calls (pure Python, testable without a GPU) -------------------------
def index_bit(n_qubits: int, wire: int) -> int:
    """The cuStateVec index bit of hqf wire ``wire`` (wire 0 is the most significant bit)."""
    if not 0 <= wire < n_qubits:
        raise ValueError(f"'wire' must be in 0..{n_qubits - 1} (got {wire})")
    return n_qubits - 1 - wire


def _bits(value) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


@attrs.frozen
class GateCall:
    """One matrix on index bits ``targets``, applied where every control bit is 1.

    ``targets[i]`` is bit ``i`` of the matrix index (cuStateVec's rule); ``matrix`` names a gate of
    :mod:`hqf.quantum.gates` whose matrix over its own wires is applied (one matrix per state, at angle
    column ``param``, for a parametric gate).
    """

    matrix: str
    targets: tuple[int, ...] = attrs.field(converter=_bits)
    controls: tuple[int, ...] = ()
    param: int | None = None


#: controlled gates run as their target gate with cuStateVec control bits: hqf gate -> (target gate, controls)
CONTROLLED = {
    "CNOT": ("X", 1), "CZ": ("Z", 1), "CY": ("Y", 1), "CRX": ("RX", 1), "CRY": ("RY", 1), "CRZ": ("RZ", 1),
    "CPhase": ("PhaseShift", 1), "Toffoli": ("X", 2), "CSWAP": ("SWAP", 1),
}  # fmt: skip


@attrs.frozen
class ObservableGroup:
    """Observables on the same index bits, measured together.

    ``bits`` is ascending; ``paulis[j][i]`` is the Pauli letter of observable ``columns[j]`` on
    ``bits[i]``.
    """

    bits: tuple[int, ...]
    columns: tuple[int, ...]
    paulis: tuple[tuple[str, ...], ...]


@attrs.frozen
class Plan:
    """The gate calls, then the Pauli words measured (``n_words`` of them, grouped by index bits)."""

    gates: tuple[GateCall, ...]
    groups: tuple[ObservableGroup, ...]
    n_words: int


def gate_call(n: int, op) -> GateCall:
    """The cuStateVec call of one hqf operation: a controlled gate as its target gate with control bits,
    any other gate as its whole matrix (the last wire on matrix bit 0: ``wires[0]`` is the most significant)."""
    bits = [index_bit(n, w) for w in op.wires]
    if op.gate in CONTROLLED:
        target_gate, n_controls = CONTROLLED[op.gate]
        return GateCall(target_gate, tuple(reversed(bits[n_controls:])), tuple(bits[:n_controls]), op.param)
    return GateCall(op.gate, tuple(reversed(bits)), (), op.param)


@functools.lru_cache(maxsize=256)
def compile_circuit(circuit: Circuit) -> Plan:
    """The cuStateVec calls that simulate ``circuit`` and measure the Pauli words of its observables
    (:func:`hqf.backends.readout.readout`)."""
    n = circuit.n_qubits
    gates = tuple(gate_call(n, op) for op in circuit.operations)
    words = readout(circuit).words
    by_bits: dict[tuple[int, ...], list[tuple[int, tuple[str, ...]]]] = {}
    for column, word in enumerate(words):
        letters = {index_bit(n, w): p for w, p in word.terms}
        bits = tuple(sorted(letters))
        by_bits.setdefault(bits, []).append((column, tuple(letters[b] for b in bits)))
    groups = tuple(
        ObservableGroup(bits, tuple(c for c, _ in members), tuple(p for _, p in members))
        for bits, members in by_bits.items()
    )
    return Plan(gates, groups, len(words))


def generator_call(call: GateCall) -> tuple[GateCall, np.ndarray]:
    """The generator ``G`` of a parametric call's gate (``U = exp(−iθG)``) as a call on its target and
    control bits together, and its matrix: ``|1…1⟩⟨1…1| ⊗ G_target`` for a controlled gate."""
    matrix = GENERATORS[call.matrix]
    for _ in call.controls:  # the control bits follow the targets: more significant matrix bits
        matrix = np.kron(np.diag([0, 1]), matrix)
    return GateCall(f"generator:{call.matrix}:{len(call.controls)}", call.targets + call.controls), matrix


def pauli_matrix(letters: tuple[str, ...]) -> np.ndarray:
    """The dense matrix of a Pauli word whose ``letters[i]`` acts on the ``i``-th basis bit.

    cuStateVec reads ``basis_bits[0]`` as the least significant bit of the matrix index, so the
    first letter is the rightmost Kronecker factor.
    """
    out = np.ones((1, 1), dtype=np.complex128)
    for letter in reversed(letters):
        out = np.kron(out, PAULI_MATRIX[letter])
    return out


# -- availability ---------------------------------------------------------------------------------
def binding_name() -> str | None:
    """The cuStateVec binding module that is installed, found without importing cuquantum."""
    top = importlib.util.find_spec("cuquantum")
    if top is None or not top.submodule_search_locations:
        return None
    for name in BINDINGS:
        parts = name.split(".")[1:]
        paths = [os.path.join(p, *parts[:-1]) for p in top.submodule_search_locations]
        if importlib.machinery.PathFinder.find_spec(parts[-1], paths) is not None:
            return name
    return None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _load_binding():
    name = binding_name()
    if name is None:
        raise ModuleNotFoundError("no cuStateVec binding found in package 'cuquantum'")
    module = importlib.import_module(name)
    missing = [f for f in REQUIRED if not hasattr(module, f)]
    if missing:
        raise ImportError(f"{name} lacks {', '.join(missing)}; cuquantum-python >= 24.03 is needed")
    return module


@functools.cache
def probe() -> Availability:
    """Whether cuStateVec can run here: package, then a CUDA GPU, then a handle made and destroyed."""
    if binding_name() is None:
        return Availability.missing_package("cuquantum", EXTRA)
    if not torch.cuda.is_available():
        return Availability(False, "no CUDA GPU visible to torch")
    try:  # an import error, a missing CUDA library or a driver problem all land here
        cusv = _load_binding()
        with torch.cuda.device(0):
            cusv.destroy(cusv.create())
    except Exception as exc:
        return Availability(False, f"cuStateVec could not start: {_one_line(exc)}")
    return Availability(True)


# -- the backend ----------------------------------------------------------------------------------
class CuQuantumBackend(Backend):
    """cuStateVec state vectors on a CUDA GPU; complex128 or complex64; shift-rule or adjoint gradients.

    Options: ``batching`` (``batched`` or ``loop``, see the module docstring), ``max_rows``, the most
    states simulated at once (default: what fits in half the free GPU memory), and ``adjoint``
    (declare the adjoint gradient, first-order only; see the module docstring).
    """

    name = "cuquantum"
    description = "NVIDIA cuStateVec on a CUDA GPU, batched (extra hqf[cuquantum])"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"}, devices={"cuda"}, max_qubits=30,
        gates=frozenset(GATES), observables=frozenset(OBSERVABLE_KINDS),
    )

    @classmethod
    def availability(cls) -> Availability:
        return probe()

    def __init__(
        self,
        *,
        dtype: str = "complex128",
        device: str = "cuda",
        batching: str = "batched",
        max_rows: int | None = None,
        adjoint: bool = False,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        if batching not in BATCHING:
            raise ValueError(f"'batching' must be one of {list(BATCHING)} (got {batching!r})")
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"'max_rows' must be >= 1 (got {max_rows})")
        availability = probe()
        if not availability.ok:
            raise BackendUnavailableError(self.name, availability.reason)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.batching, self.max_rows = batching, max_rows
        if adjoint:
            self.capabilities = attrs.evolve(type(self).capabilities, gradients={"adjoint"})
        self._cusv = _load_binding()
        self._sv_type = CUDA_C_64F if dtype == "complex128" else CUDA_C_32F
        self._compute = COMPUTE_64F if dtype == "complex128" else COMPUTE_32F
        with self._device_context():
            self._handle = self._cusv.create()
        weakref.finalize(self, self._cusv.destroy, self._handle)
        self._workspace = torch.empty(0, dtype=torch.uint8, device=self.device)
        self._matrices: dict[tuple, torch.Tensor] = {}
        self._indices = torch.empty(0, dtype=torch.int32, device=self.device)

    def __repr__(self) -> str:
        adjoint = " adjoint" if "adjoint" in self.capabilities.gradients else ""
        return (
            f"<{type(self).__name__} {self.name!r} dtype={self.dtype} device={self.device} "
            f"batching={self.batching}{adjoint}>"
        )

    # -- public ---------------------------------------------------------------------------------
    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        self.check_supported(circuit)
        if circuit.n_qubits > self.capabilities.max_qubits:
            raise InvalidCircuitError(
                f"backend 'cuquantum' simulates at most {self.capabilities.max_qubits} qubits (got {circuit.n_qubits})"
            )
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        plan = compile_circuit(circuit)
        if angles.shape[0] == 0:
            return torch.zeros(0, circuit.n_outputs, dtype=self.real_dtype, device=out_device)
        rows = self.rows_per_pass(circuit.n_qubits)
        with self._device_context():
            self._cusv.set_stream(self._handle, self._stream())
            words = torch.cat([self._run(plan, circuit.n_qubits, part) for part in angles.split(rows)])
        out = readout(circuit)
        out = words if out.identity else out.apply_torch(words.to(torch.float64))
        return out.to(device=out_device, dtype=self.real_dtype)

    def vjp(self, circuit: Circuit, angles: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """``Σ_r grad_output[b, r] · ∂⟨O_r⟩_b/∂angles[b, p]`` by adjoint differentiation.

        One forward run, then the gates are undone in reverse on two states: ``φ`` (the circuit's
        state) and ``λ = Σ_r g_r O_r ψ`` (the observables as Pauli words, :mod:`hqf.backends.readout`:
        the words' cotangent is ``grad_output @ matrix``); a gate ``exp(−iθG)`` contributes
        ``2·Im⟨λ|G|φ⟩`` where ``φ`` is the state just after it (a rotation, ``G = P/2``: ``Im⟨λ|P|φ⟩``).
        Three states per sample are held.
        """
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        matrix = torch.as_tensor(readout(circuit).matrix, dtype=torch.float64, device=self.device)
        grad_output = (grad_output.to(device=self.device, dtype=torch.float64) @ matrix).to(self.real_dtype)
        plan = compile_circuit(circuit)
        if angles.shape[0] == 0:
            return torch.zeros_like(angles, device=out_device)
        rows = max(1, self.rows_per_pass(circuit.n_qubits) // 3)
        with self._device_context():
            self._cusv.set_stream(self._handle, self._stream())
            parts = [
                self._adjoint_pass(plan, circuit.n_qubits, a, g)
                for a, g in zip(angles.split(rows), grad_output.split(rows))
            ]
        return torch.cat(parts).to(out_device)

    def _adjoint_pass(self, plan: Plan, n: int, angles: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
        phi = self._simulate(plan, n, angles)
        lam = torch.zeros_like(phi)
        for group in plan.groups:
            for column, letters in zip(group.columns, group.paulis):
                moved = phi.clone()
                for bit, letter in zip(group.bits, letters):
                    self._apply(GateCall(letter, bit), n, moved, angles)
                lam += cotangent[:, column, None] * moved
        grad = torch.zeros_like(angles)
        for call in reversed(plan.gates):
            if call.param is not None:
                moved = phi.clone()
                generator, dense = generator_call(call)
                matrices = self._constant(("gate", generator.matrix), lambda: dense[None])
                self._apply_matrices(generator, n, moved, matrices, adjoint=False)
                grad[:, call.param] = 2 * torch.linalg.vecdot(lam, moved).imag  # vecdot conjugates lam
            matrices = self._gate_matrices(call, angles)
            self._apply_matrices(call, n, phi, matrices, adjoint=True)
            self._apply_matrices(call, n, lam, matrices, adjoint=True)
        return grad

    def final_states(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The states ``[B, 2**n]`` after the gates, indexed in hqf's wire order, on the backend's device."""
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        with self._device_context():
            self._cusv.set_stream(self._handle, self._stream())
            return self._simulate(compile_circuit(circuit), circuit.n_qubits, angles)

    def rows_per_pass(self, n_qubits: int) -> int:
        """How many states one pass simulates: ``max_rows``, or what fits in half the free memory."""
        if self.max_rows is not None:
            return self.max_rows
        state_bytes = (2**n_qubits) * torch.empty(0, dtype=self.complex_dtype).element_size()
        return max(1, int(self._free_memory() // 2 // state_bytes))

    # -- the CUDA side, in three small methods (a CPU test double replaces them) -----------------
    def _device_context(self):
        return torch.cuda.device(self.device)

    def _stream(self) -> int:
        """torch's current stream, so that cuStateVec's kernels are ordered with torch's."""
        return torch.cuda.current_stream(self.device).cuda_stream

    def _free_memory(self) -> int:
        return torch.cuda.mem_get_info(self.device)[0]

    # -- one pass -------------------------------------------------------------------------------
    def _run(self, plan: Plan, n: int, angles: torch.Tensor) -> torch.Tensor:
        states = self._simulate(plan, n, angles)
        if self.batching == "batched":
            return self._measure_batched(plan, n, states)
        return self._measure_loop(plan, n, states)

    def _simulate(self, plan: Plan, n: int, angles: torch.Tensor) -> torch.Tensor:
        states = torch.zeros(angles.shape[0], 2**n, dtype=self.complex_dtype, device=self.device)
        states[:, 0] = 1
        for call in plan.gates:
            self._apply(call, n, states, angles)
        return states

    def _apply(self, call: GateCall, n: int, states: torch.Tensor, angles: torch.Tensor) -> None:
        """Apply one gate to every state, in place."""
        self._apply_matrices(call, n, states, self._gate_matrices(call, angles), adjoint=False)

    def _apply_matrices(
        self, call: GateCall, n: int, states: torch.Tensor, matrices: torch.Tensor, adjoint: bool
    ) -> None:
        if self.batching == "batched":
            self._apply_batched(call, n, states, matrices, int(adjoint))
        else:
            self._apply_loop(call, n, states, matrices, int(adjoint))

    def _gate_matrices(self, call: GateCall, angles: torch.Tensor) -> torch.Tensor:
        """``[B, d, d]`` (parametric gates) or ``[1, d, d]`` (fixed gates), row-major, on the GPU."""
        if call.param is not None:
            theta = angles[:, call.param]
            return gate_matrices(call.matrix, theta, theta.shape[0], self.complex_dtype, self.device).contiguous()
        return self._constant(("gate", call.matrix), lambda: FIXED[call.matrix][None])

    def _constant(self, key: tuple, build) -> torch.Tensor:
        """A small matrix stack built once per backend and kept on the device."""
        if key not in self._matrices:
            self._matrices[key] = torch.as_tensor(build(), dtype=self.complex_dtype, device=self.device).contiguous()
        return self._matrices[key]

    def _workspace_ptr(self, size: int) -> int:
        if size == 0:
            return 0
        if self._workspace.numel() < size:
            self._workspace = torch.empty(size, dtype=torch.uint8, device=self.device)
        return self._workspace.data_ptr()

    def _apply_batched(
        self, call: GateCall, n: int, states: torch.Tensor, matrices: torch.Tensor, adjoint: int
    ) -> None:
        cusv, handle, sv_type, compute = self._cusv, self._handle, self._sv_type, self._compute
        batch, stride = states.shape[0], 2**n
        indexed = call.param is not None
        map_type = MAP_MATRIX_INDEXED if indexed else MAP_BROADCAST
        n_matrices = batch if indexed else 1
        if self._indices.numel() < batch:
            self._indices = torch.arange(batch, dtype=torch.int32, device=self.device)
        indices = self._indices[:batch]
        n_controls, n_targets = len(call.controls), len(call.targets)
        size = cusv.apply_matrix_batched_get_workspace_size(
            handle, sv_type, n, batch, stride, map_type, indices.data_ptr(), matrices.data_ptr(),
            sv_type, LAYOUT_ROW, adjoint, n_matrices, n_targets, n_controls, compute,
        )  # fmt: skip
        cusv.apply_matrix_batched(
            handle, states.data_ptr(), sv_type, n, batch, stride, map_type, indices.data_ptr(),
            matrices.data_ptr(), sv_type, LAYOUT_ROW, adjoint, n_matrices, list(call.targets), n_targets,
            list(call.controls), 0, n_controls, compute, self._workspace_ptr(size), size,
        )  # fmt: skip

    def _measure_batched(self, plan: Plan, n: int, states: torch.Tensor) -> torch.Tensor:
        cusv, handle, sv_type, compute = self._cusv, self._handle, self._sv_type, self._compute
        batch, stride = states.shape[0], 2**n
        out = torch.empty(batch, plan.n_words, dtype=self.real_dtype, device=self.device)
        for group in plan.groups:
            matrices = self._constant(
                ("obs", group.paulis), lambda g=group: np.stack([pauli_matrix(p) for p in g.paulis])
            )
            n_matrices, n_bits = len(group.columns), len(group.bits)
            values = torch.empty(batch, n_matrices, dtype=torch.complex128, device=self.device)
            size = cusv.compute_expectation_batched_get_workspace_size(
                handle, sv_type, n, batch, stride, matrices.data_ptr(), sv_type, LAYOUT_ROW, n_matrices,
                n_bits, compute,
            )  # fmt: skip
            cusv.compute_expectation_batched(
                handle, states.data_ptr(), sv_type, n, batch, stride, values.data_ptr(), matrices.data_ptr(),
                sv_type, LAYOUT_ROW, n_matrices, list(group.bits), n_bits, compute, self._workspace_ptr(size), size,
            )  # fmt: skip
            out[:, list(group.columns)] = values.real.to(self.real_dtype)
        return out

    def _apply_loop(self, call: GateCall, n: int, states: torch.Tensor, matrices: torch.Tensor, adjoint: int) -> None:
        cusv, handle, sv_type, compute = self._cusv, self._handle, self._sv_type, self._compute
        n_controls, n_targets = len(call.controls), len(call.targets)
        step = 4**n_targets * states.element_size() if call.param is not None else 0
        size = cusv.apply_matrix_get_workspace_size(
            handle, sv_type, n, matrices.data_ptr(), sv_type, LAYOUT_ROW, adjoint, n_targets, n_controls, compute
        )
        workspace = self._workspace_ptr(size)
        for b in range(states.shape[0]):
            cusv.apply_matrix(
                handle, states[b].data_ptr(), sv_type, n, matrices.data_ptr() + b * step, sv_type,
                LAYOUT_ROW, adjoint, list(call.targets), n_targets, list(call.controls), 0, n_controls, compute,
                workspace, size,
            )  # fmt: skip

    def _measure_loop(self, plan: Plan, n: int, states: torch.Tensor) -> torch.Tensor:
        paulis, bits, columns = [], [], []
        for group in plan.groups:
            for column, letters in zip(group.columns, group.paulis):
                paulis.append([PAULI_CODE[p] for p in letters])
                bits.append(list(group.bits))
                columns.append(column)
        host = np.empty((states.shape[0], len(paulis)), dtype=np.float64)
        for b in range(states.shape[0]):
            self._cusv.compute_expectations_on_pauli_basis(
                self._handle, states[b].data_ptr(), self._sv_type, n, host[b].ctypes.data, paulis, len(paulis),
                bits, [len(x) for x in bits],
            )  # fmt: skip
        out = torch.empty_like(torch.from_numpy(host))
        out[:, columns] = torch.from_numpy(host)
        return out.to(device=self.device, dtype=self.real_dtype)


@hookimpl
def register_backends(register) -> None:
    register(CuQuantumBackend)
