"""The ``cuquantum`` backend class: options, availability, and the forward, adjoint and state passes.

Each pass translates the circuit once (:mod:`hqf.backends.cuquantum.translation`), splits the angle batch
into passes that fit the GPU and runs them through one :class:`~hqf.backends.cuquantum.runner.CuStateVecRunner`.
Hamiltonians and probabilities are linear maps of measured Pauli words (:mod:`hqf.backends.readout`).
Gradients: the core's parameter-shift rule, or with the option ``adjoint=True`` an adjoint
vector-Jacobian product (:meth:`CuQuantumBackend.vjp`). The adjoint is opt-in until it has been measured
against the shift rule on a GPU; a second derivative (the curvature regularizer) through it falls back to
the shift rule in the core. The three methods that touch CUDA directly (``_device_context``, ``_stream``,
``_free_memory``) are what a CPU test double replaces (tests/test_backend_cuquantum.py).
"""

from __future__ import annotations

import weakref

import attrs
import torch

from hqf.backends.cuquantum import binding
from hqf.backends.cuquantum.runner import BATCHING, CuStateVecRunner
from hqf.backends.cuquantum.translation import CuStateVecCalls, GateCall, compile_circuit, generator_call
from hqf.backends.readout import readout
from hqf.errors import BackendUnavailableError, InvalidCircuitError
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit
from hqf.quantum.interfaces import Availability, Backend, Capabilities


class CuQuantumBackend(Backend):
    """cuStateVec state vectors on a CUDA GPU; complex128 or complex64; shift-rule or adjoint gradients.

    Options: ``batching`` (``batched`` or ``loop``, see :mod:`hqf.backends.cuquantum.runner`), ``max_rows``,
    the most states simulated at once (default: what fits in half the free GPU memory), and ``adjoint``
    (declare the adjoint gradient, first-order only; see the module docstring).
    """

    name = "cuquantum"
    description = "NVIDIA cuStateVec on a CUDA GPU, batched (extra hqf[cuquantum])"
    capabilities = Capabilities(
        dtypes={"complex128", "complex64"},
        devices={"cuda"},
        max_qubits=30,
        gates=frozenset(GATES),
        observables=frozenset(OBSERVABLE_KINDS),
    )

    @classmethod
    def availability(cls) -> Availability:
        return binding.probe()

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
        availability = binding.probe()
        if not availability.ok:
            raise BackendUnavailableError(self.name, availability.reason)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.batching, self.max_rows = batching, max_rows
        if adjoint:
            self.capabilities = attrs.evolve(type(self).capabilities, gradients={"adjoint"})
        cusv = binding.load_binding()
        with self._device_context():
            handle = cusv.create()
        weakref.finalize(self, cusv.destroy, handle)
        self._runner = CuStateVecRunner(cusv, handle, self.device, dtype, batching)

    def __repr__(self) -> str:
        adjoint = " adjoint" if "adjoint" in self.capabilities.gradients else ""
        return (
            f"<{type(self).__name__} {self.name!r} dtype={self.dtype} device={self.device} "
            f"batching={self.batching}{adjoint}>"
        )

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        self.check_supported(circuit)
        if circuit.n_qubits > self.capabilities.max_qubits:
            raise InvalidCircuitError(
                f"backend 'cuquantum' simulates at most {self.capabilities.max_qubits} qubits (got {circuit.n_qubits})"
            )
        out_device = angles.device
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        calls = compile_circuit(circuit)
        if angles.shape[0] == 0:
            return torch.zeros(0, circuit.n_outputs, dtype=self.real_dtype, device=out_device)
        rows = self.rows_per_pass(circuit.n_qubits)
        with self._device_context():
            self._runner.set_stream(self._stream())
            words = torch.cat([self._runner.run(calls, circuit.n_qubits, part) for part in angles.split(rows)])
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
        calls = compile_circuit(circuit)
        if angles.shape[0] == 0:
            return torch.zeros_like(angles, device=out_device)
        rows = max(1, self.rows_per_pass(circuit.n_qubits) // 3)
        with self._device_context():
            self._runner.set_stream(self._stream())
            parts = [
                self._adjoint_pass(calls, circuit.n_qubits, a, g)
                for a, g in zip(angles.split(rows), grad_output.split(rows))
            ]
        return torch.cat(parts).to(out_device)

    def _adjoint_pass(
        self, calls: CuStateVecCalls, n: int, angles: torch.Tensor, cotangent: torch.Tensor
    ) -> torch.Tensor:
        runner = self._runner
        phi = runner.simulate(calls, n, angles)
        lam = torch.zeros_like(phi)
        for group in calls.groups:
            for column, letters in zip(group.columns, group.paulis):
                moved = phi.clone()
                for bit, letter in zip(group.bits, letters):
                    runner.apply(GateCall(letter, bit), n, moved, angles)
                lam += cotangent[:, column, None] * moved
        grad = torch.zeros_like(angles)
        for call in reversed(calls.gates):
            if call.param is not None:
                moved = phi.clone()
                generator, dense = generator_call(call)
                matrices = runner.constant(("gate", generator.matrix), lambda dense=dense: dense[None])
                runner.apply_matrices(generator, n, moved, matrices, adjoint=False)
                grad[:, call.param] = 2 * torch.linalg.vecdot(lam, moved).imag  # vecdot conjugates lam
            matrices = runner.gate_matrices(call, angles)
            runner.apply_matrices(call, n, phi, matrices, adjoint=True)
            runner.apply_matrices(call, n, lam, matrices, adjoint=True)
        return grad

    def final_states(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """The states ``[B, 2**n]`` after the gates, indexed in hqf's wire order, on the backend's device."""
        angles = angles.to(device=self.device, dtype=self.real_dtype)
        with self._device_context():
            self._runner.set_stream(self._stream())
            return self._runner.simulate(compile_circuit(circuit), circuit.n_qubits, angles)

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
