"""Quantum kernels on any backend: the fidelity kernel, the projected kernel, kernel-target alignment.

**Fidelity kernel.** For a feature map ``|φ(x)⟩ = U(x)|0…0⟩`` (an encoder's gates, angles from ``x``),

    k(x, x') = |⟨φ(x')|φ(x)⟩|² = |⟨0…0| U(x')† U(x) |0…0⟩|²,

the probability of the all-zeros outcome of the *adjoint-encoding circuit*: ``U(x)`` then ``U(x')†``
(:func:`hqf.quantum.circuit.adjoint`), read out by ``Probs`` on every wire. One circuit per pair, on
any backend that reads ``Probs``; the pairs are batched into rows ``[θ(x), −θ(x')]``. A Gram matrix of
``N`` points costs ``N(N−1)/2`` circuits (the diagonal is 1 and the matrix symmetric); the kernel
rows of ``M`` new points against ``N`` training points cost ``M·N``. On a noisy backend the
off-diagonal entries are that circuit's noisy all-zeros probability.

**Projected kernel** (Huang et al., "Power of data in quantum machine learning", 2021). With
``ρ_q(x)`` the reduced state of wire ``q``,

    k(x, x') = exp(−γ Σ_q ‖ρ_q(x) − ρ_q(x')‖²_F),   ‖ρ_q(x) − ρ_q(x')‖²_F = ½ Σ_{P∈{X,Y,Z}} (⟨P_q⟩_x − ⟨P_q⟩_x')²,

so one circuit per point (``3n`` Pauli words) suffices.

**Kernel-target alignment** (Cristianini et al. 2001): ``A(K, Y) = ⟨K, Y⟩_F / (‖K‖_F ‖Y‖_F)`` with the
ideal kernel ``Y_ij = 1`` for equal labels and ``−1/(C−1)`` otherwise, ``C`` classes (``y yᵀ`` for
two classes labelled ``±1``; for more, the Gram matrix of the classes' simplex vertices).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hqf.quantum.circuit import Circuit, Operation, PauliWord, Probs, adjoint, compose
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend

#: rows of one backend call unless told otherwise
DEFAULT_CHUNK = 1024


def overlap_circuit(n_qubits: int, operations: Sequence[Operation]) -> Circuit:
    """``U(x)`` then ``U(x')†``, measuring ``Probs`` on every wire; its rows are ``[θ(x), −θ(x')]`` and
    output 0 is ``k(x, x')``."""
    operations = tuple(operations)
    return compose(n_qubits, [operations, adjoint(operations)], [Probs(tuple(range(n_qubits)))])


def _angles(backend: Backend, angles: torch.Tensor, width: int, name: str) -> torch.Tensor:
    if not isinstance(angles, torch.Tensor) or angles.ndim != 2 or angles.shape[1] != width:
        shape = list(angles.shape) if isinstance(angles, torch.Tensor) else type(angles).__name__
        raise ValueError(f"'{name}' must be an angle matrix [N, {width}] (got {shape})")
    return angles.detach().to(device=backend.device, dtype=backend.real_dtype)


def _run(backend: Backend, circuit: Circuit, rows: torch.Tensor, chunk: int) -> torch.Tensor:
    """``expval`` on ``rows`` in calls of at most ``chunk`` rows, without autograd."""
    with torch.no_grad():
        parts = [expval(backend, circuit, part) for part in rows.split(chunk)] if len(rows) else []
    return torch.cat(parts) if parts else rows.new_zeros(0, circuit.n_outputs)


class FidelityKernel:
    """``k(x, x') = |⟨φ(x')|φ(x)⟩|²`` of the feature map ``operations`` on ``n_qubits``, on ``backend``.

    The methods take the feature map's angle matrices (an encoder's ``forward(x)``), ``[N, P]``, and
    return float64 values on the CPU. :attr:`evaluations` counts the circuits run so far.

    Args:
        backend: any backend that reads ``Probs`` (every in-tree one does).
        n_qubits: qubits of the feature map.
        operations: the feature map's gates, parameter columns ``0 … P−1``.
        chunk: rows of one backend call.

    Raises:
        hqf.errors.UnsupportedCircuitError: (at the first call) a backend that cannot run the circuit.
        ValueError: angle matrices of the wrong shape.

    Example::

        >>> from hqf.registry.make import make_backend
        >>> kernel = FidelityKernel(make_backend("torch"), 1, [Operation("RX", 0, 0)])
        >>> round(float(kernel.pairs(torch.tensor([[3.14159265]]), torch.tensor([[0.0]]))[0]), 6)
        0.0
    """

    def __init__(
        self, backend: Backend, n_qubits: int, operations: Sequence[Operation], chunk: int = DEFAULT_CHUNK
    ) -> None:
        if chunk < 1:
            raise ValueError(f"'chunk' must be >= 1 (got {chunk})")
        self.backend, self.chunk = backend, chunk
        self.circuit = overlap_circuit(n_qubits, operations)
        self.n_angles = self.circuit.n_params // 2
        self.evaluations = 0

    def pairs(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``[M]``: ``k(x_m, x'_m)`` for angle rows ``left[M, P]`` (``x``) and ``right[M, P]`` (``x'``)."""
        left = _angles(self.backend, left, self.n_angles, "left")
        right = _angles(self.backend, right, self.n_angles, "right")
        if left.shape[0] != right.shape[0]:
            raise ValueError(f"'left' and 'right' must have as many rows (got {left.shape[0]} and {right.shape[0]})")
        values = _run(self.backend, self.circuit, torch.cat([left, -right], dim=1), self.chunk)
        self.evaluations += left.shape[0]
        return values[:, 0].to("cpu", torch.float64)

    def gram(self, angles: torch.Tensor) -> torch.Tensor:
        """``[N, N]``: the kernel matrix of ``N`` points; ``N(N−1)/2`` circuits (upper triangle),
        unit diagonal, mirrored."""
        angles = _angles(self.backend, angles, self.n_angles, "angles")
        n = angles.shape[0]
        upper = torch.triu_indices(n, n, offset=1)
        out = torch.eye(n, dtype=torch.float64)
        if upper.shape[1]:
            values = self.pairs(angles[upper[0]], angles[upper[1]])
            out[upper[0], upper[1]] = values
            out[upper[1], upper[0]] = values
        return out

    def cross(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``[M, N]``: ``k(rows_m, columns_n)``, e.g. test points against training points; ``M·N`` circuits."""
        rows = _angles(self.backend, rows, self.n_angles, "rows")
        columns = _angles(self.backend, columns, self.n_angles, "columns")
        m, n = rows.shape[0], columns.shape[0]
        left = rows.repeat_interleave(n, dim=0)
        right = columns.repeat(m, 1)
        return self.pairs(left, right).reshape(m, n)


def local_paulis(n_qubits: int) -> tuple[PauliWord, ...]:
    """``X_q, Y_q, Z_q`` for every wire ``q``, in that order: the read-out of the projected kernel."""
    return tuple(PauliWord(((q, p),)) for q in range(n_qubits) for p in "XYZ")


class ProjectedKernel:
    """``k(x, x') = exp(−γ Σ_q ‖ρ_q(x) − ρ_q(x')‖²_F)`` from the one-qubit reduced states of the feature map.

    One circuit per point: the ``3n`` local Pauli expectation values. :attr:`evaluations` counts them.

    Args:
        backend: any backend.
        n_qubits: qubits of the feature map.
        operations: the feature map's gates.
        gamma: the bandwidth ``γ > 0``.
        chunk: rows of one backend call.

    Raises:
        ValueError: ``gamma <= 0`` or angle matrices of the wrong shape.
    """

    def __init__(
        self,
        backend: Backend,
        n_qubits: int,
        operations: Sequence[Operation],
        gamma: float = 1.0,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if not gamma > 0:
            raise ValueError(f"'gamma' must be > 0 (got {gamma})")
        self.backend, self.gamma, self.chunk = backend, float(gamma), chunk
        self.circuit = Circuit(n_qubits, tuple(operations), local_paulis(n_qubits))
        self.n_angles = self.circuit.n_params
        self.evaluations = 0

    def features(self, angles: torch.Tensor) -> torch.Tensor:
        """``[N, 3n]``: ``⟨X_q⟩, ⟨Y_q⟩, ⟨Z_q⟩`` per point (float64, CPU)."""
        angles = _angles(self.backend, angles, self.n_angles, "angles")
        self.evaluations += angles.shape[0]
        return _run(self.backend, self.circuit, angles, self.chunk).to("cpu", torch.float64)

    def from_features(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``[M, N]`` kernel values from local expectation values ``rows[M, 3n]`` and ``columns[N, 3n]``."""
        return torch.exp(-self.gamma * 0.5 * torch.cdist(rows, columns).square())

    def gram(self, angles: torch.Tensor) -> torch.Tensor:
        """``[N, N]``: the kernel matrix of ``N`` points (``N`` circuits)."""
        features = self.features(angles)
        return self.from_features(features, features)

    def cross(self, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """``[M, N]`` kernel values between two sets of points (``M + N`` circuits)."""
        return self.from_features(self.features(rows), self.features(columns))


def ideal_kernel(labels: torch.Tensor) -> torch.Tensor:
    """``[N, N]``: ``1`` where two labels are equal, ``−1/(C−1)`` where they differ, ``C ≥ 2`` the number
    of distinct labels (``y yᵀ`` for two classes as ``±1``)."""
    labels = torch.as_tensor(labels).reshape(-1)
    n_classes = max(int(torch.unique(labels).numel()), 2)
    same = (labels[:, None] == labels[None, :]).to(torch.float64)
    return same - (1 - same) / (n_classes - 1)


def target_alignment(kernel: torch.Tensor, labels: torch.Tensor) -> float:
    """Kernel-target alignment ``⟨K, Y⟩_F / (‖K‖_F ‖Y‖_F)`` in ``[−1, 1]`` (:func:`ideal_kernel` ``Y``).

    Raises:
        ValueError: a kernel that is not square, of another size than ``labels``, or all zeros.
    """
    kernel = torch.as_tensor(kernel, dtype=torch.float64)
    target = ideal_kernel(labels)
    if kernel.ndim != 2 or kernel.shape != target.shape:
        raise ValueError(f"'kernel' must be [N, N] for N = {target.shape[0]} labels (got {list(kernel.shape)})")
    norm = torch.linalg.matrix_norm(kernel)
    if norm == 0:
        raise ValueError("'kernel' is all zeros; its alignment is undefined")
    return float((kernel * target).sum() / (norm * torch.linalg.matrix_norm(target)))
