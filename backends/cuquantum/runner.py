"""One cuStateVec handle at work: gate calls applied to a batch of states, Pauli words measured.

A batch of ``B`` states is one torch CUDA tensor ``[B, 2**n]`` (one allocation, stride ``2**n``); its
pointer goes to cuStateVec as ``tensor.data_ptr()``, so CuPy is not needed. Two ways to run a batch
(``batching``), kept so that they can be measured against each other:

- ``batched``: per gate one ``apply_matrix_batched`` call for all states (parametric gates: one matrix
  per state, built on the GPU by torch, ``MATRIX_INDEXED``; fixed gates: one matrix, ``BROADCAST``),
  then per set of measured wires one ``compute_expectation_batched`` call.
- ``loop``: per gate and state one ``apply_matrix`` call, then ``compute_expectations_on_pauli_basis``
  per state.
"""

from __future__ import annotations

import numpy as np
import torch

from hqf.backends.cuquantum.binding import (
    COMPUTE_32F,
    COMPUTE_64F,
    CUDA_C_32F,
    CUDA_C_64F,
    LAYOUT_ROW,
    MAP_BROADCAST,
    MAP_MATRIX_INDEXED,
    PAULI_CODE,
)
from hqf.backends.cuquantum.translation import CuStateVecCalls, GateCall, pauli_matrix
from hqf.quantum.gates import FIXED, gate_matrices
from hqf.quantum.interfaces import DTYPES

BATCHING = ("batched", "loop")


class CuStateVecRunner:
    """Runs :class:`~hqf.backends.cuquantum.translation.CuStateVecCalls` on batches of states through one
    cuStateVec handle, keeping its workspace and the constant matrices on ``device``.

    Args:
        cusv: the cuStateVec binding module.
        handle: a handle made by ``cusv.create()`` on ``device``; its owner destroys it.
        device: the CUDA device the states live on.
        dtype: ``complex128`` or ``complex64``, the states' dtype.
        batching: ``batched`` or ``loop`` (see the module docstring).
    """

    def __init__(self, cusv, handle: int, device: torch.device, dtype: str, batching: str) -> None:
        self.cusv, self.handle, self.device, self.batching = cusv, handle, device, batching
        self.complex_dtype, self.real_dtype = DTYPES[dtype]
        self.sv_type = CUDA_C_64F if dtype == "complex128" else CUDA_C_32F
        self.compute = COMPUTE_64F if dtype == "complex128" else COMPUTE_32F
        self._workspace = torch.empty(0, dtype=torch.uint8, device=device)
        self._matrices: dict[tuple, torch.Tensor] = {}
        self._indices = torch.empty(0, dtype=torch.int32, device=device)

    def set_stream(self, stream: int) -> None:
        """Order cuStateVec's kernels on the CUDA stream ``stream``."""
        self.cusv.set_stream(self.handle, stream)

    def run(self, calls: CuStateVecCalls, n: int, angles: torch.Tensor) -> torch.Tensor:
        """The Pauli words' expectation values ``[B, n_words]`` after the gates, at ``angles[B, P]``."""
        states = self.simulate(calls, n, angles)
        if self.batching == "batched":
            return self._measure_batched(calls, n, states)
        return self._measure_loop(calls, n, states)

    def simulate(self, calls: CuStateVecCalls, n: int, angles: torch.Tensor) -> torch.Tensor:
        """The states ``[B, 2**n]`` after the gates, from ``|0…0⟩``."""
        states = torch.zeros(angles.shape[0], 2**n, dtype=self.complex_dtype, device=self.device)
        states[:, 0] = 1
        for call in calls.gates:
            self.apply(call, n, states, angles)
        return states

    def apply(self, call: GateCall, n: int, states: torch.Tensor, angles: torch.Tensor) -> None:
        """Apply one gate to every state, in place."""
        self.apply_matrices(call, n, states, self.gate_matrices(call, angles), adjoint=False)

    def apply_matrices(
        self, call: GateCall, n: int, states: torch.Tensor, matrices: torch.Tensor, adjoint: bool
    ) -> None:
        """Apply ``matrices`` (one per state, or one for all) on the call's bits, or their adjoints, in place."""
        if self.batching == "batched":
            self._apply_batched(call, n, states, matrices, int(adjoint))
        else:
            self._apply_loop(call, n, states, matrices, int(adjoint))

    def gate_matrices(self, call: GateCall, angles: torch.Tensor) -> torch.Tensor:
        """``[B, d, d]`` (parametric gates) or ``[1, d, d]`` (fixed gates), row-major, on the GPU."""
        if call.param is not None:
            theta = angles[:, call.param]
            return gate_matrices(call.matrix, theta, theta.shape[0], self.complex_dtype, self.device).contiguous()
        return self.constant(("gate", call.matrix), lambda: FIXED[call.matrix][None])

    def constant(self, key: tuple, build) -> torch.Tensor:
        """A small matrix stack built once per runner and kept on the device."""
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
        cusv, handle, sv_type, compute = self.cusv, self.handle, self.sv_type, self.compute
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

    def _measure_batched(self, calls: CuStateVecCalls, n: int, states: torch.Tensor) -> torch.Tensor:
        cusv, handle, sv_type, compute = self.cusv, self.handle, self.sv_type, self.compute
        batch, stride = states.shape[0], 2**n
        out = torch.empty(batch, calls.n_words, dtype=self.real_dtype, device=self.device)
        for group in calls.groups:
            matrices = self.constant(
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
        cusv, handle, sv_type, compute = self.cusv, self.handle, self.sv_type, self.compute
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

    def _measure_loop(self, calls: CuStateVecCalls, n: int, states: torch.Tensor) -> torch.Tensor:
        paulis, bits, columns = [], [], []
        for group in calls.groups:
            for column, letters in zip(group.columns, group.paulis):
                paulis.append([PAULI_CODE[p] for p in letters])
                bits.append(list(group.bits))
                columns.append(column)
        host = np.empty((states.shape[0], len(paulis)), dtype=np.float64)
        for b in range(states.shape[0]):
            self.cusv.compute_expectations_on_pauli_basis(
                self.handle, states[b].data_ptr(), self.sv_type, n, host[b].ctypes.data, paulis, len(paulis),
                bits, [len(x) for x in bits],
            )  # fmt: skip
        out = torch.empty_like(torch.from_numpy(host))
        out[:, columns] = torch.from_numpy(host)
        return out.to(device=self.device, dtype=self.real_dtype)
