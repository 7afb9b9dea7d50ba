"""``QuantumLayer``: encoder → ansatz → backend as one ``torch.nn.Module`` producing ``H_q``, or a user's own
circuit with trainable angles (:meth:`QuantumLayer.from_circuit`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import default_gradient, expval
from hqf.quantum.interfaces import Ansatz, Backend, Encoder
from hqf.quantum.lowering import UserCircuit


def interleaved_circuit(encoder: Encoder, ansatz: Ansatz, observables: Sequence[PauliWord] | None = None) -> Circuit:
    """Encoding blocks interleaved with the ansatz's layers: block 1, layer 1, block 2, layer 2, …

    ``encoder.operations()`` must be ``ansatz.n_layers`` blocks of equal length (an ``interleaved``
    encoder after :meth:`~hqf.quantum.interfaces.Encoder.interleave`). Columns keep the layout of
    :func:`~hqf.quantum.circuit.compose`: the encoder's columns first, then the ansatz's weights.
    Observables default to Pauli Z on every qubit.
    """
    blocks, n_layers = encoder.operations(), ansatz.n_layers
    if len(blocks) % n_layers:
        raise ValueError(f"encoder {encoder.name!r}: {len(blocks)} gates do not make {n_layers} equal blocks")
    size, offset = len(blocks) // n_layers, encoder.n_angles
    operations: list[Operation] = []
    for layer in range(n_layers):
        operations += blocks[layer * size : (layer + 1) * size]
        operations += [op.renumbered(offset) for op in ansatz.layer_operations(layer)]
    if observables is None:
        observables = [PauliWord.z(q) for q in range(ansatz.n_qubits)]
    return Circuit(ansatz.n_qubits, operations, observables)


class QuantumLayer(torch.nn.Module):
    """Expectation values ``H_q[B, R]`` of an encoded, trainable circuit on any backend (a circuit of one's own:
    :meth:`from_circuit`).

    The angle matrix is ``[encoder(x), weights]``: data angles first, then the ansatz weights
    (broadcast over the batch: passed as ``shared``). ``gradient`` is passed to :func:`hqf.quantum.gradients.expval`.
    The circuit is the encoding block then the ansatz, or, for an ``interleaved`` encoder (data
    re-uploading), its blocks interleaved with the ansatz's layers (:func:`interleaved_circuit`).
    """

    def __init__(
        self,
        encoder: Encoder,
        ansatz: Ansatz,
        backend: Backend,
        observables: Sequence[PauliWord] | None = None,
        gradient: str = "auto",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if encoder.n_qubits != ansatz.n_qubits:
            raise ValueError(f"encoder acts on {encoder.n_qubits} qubits but ansatz {ansatz.spec} on {ansatz.n_qubits}")
        self.encoder, self.ansatz, self.backend, self.gradient = encoder, ansatz, backend, gradient
        if encoder.interleaved:
            encoder.interleave(ansatz.n_layers)
            self.circuit: Circuit = interleaved_circuit(encoder, ansatz, observables)
        else:
            self.circuit = compose(ansatz.n_qubits, [encoder.operations(), ansatz.operations()], observables)
        self.weights = torch.nn.Parameter(ansatz.init_weights(generator))

    @classmethod
    def from_circuit(
        cls,
        circuit: Circuit | UserCircuit,
        backend: Backend,
        n_inputs: int = 0,
        gradient: str = "auto",
        generator: torch.Generator | None = None,
    ) -> QuantumLayer:
        """A layer of a user's own circuit, as ``qml.qnn.TorchLayer`` of a QNode: columns ``0..n_inputs-1`` read
        the inputs ``x[B, n_inputs]``, the others are its trainable ``weights`` (shared by every row; initialized
        uniformly in ``[0, 2π)``). A :class:`~hqf.quantum.lowering.UserCircuit`'s gates may share columns or hold
        fixed angles.

        Example::

            circuit = UserCircuit(2, [Operation("RY", 0, 0), Operation("RY", 1, 1), Operation("IsingZZ", (0, 1), 2),
                                      Operation("RX", 0, 2), Operation("RX", 1, angle=0.3)], [Z(0), Z(0) @ Z(1)])
            layer = QuantumLayer.from_circuit(circuit, make_backend("torch"), n_inputs=2)  # 1 weight, read twice
            layer(torch.rand(8, 2, dtype=torch.float64))  # [8, 2]
        """
        if not isinstance(circuit, (Circuit, UserCircuit)):
            raise InvalidCircuitError(f"from_circuit takes a hqf.Circuit or a hqf.UserCircuit; got {circuit!r}")
        if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or not 0 <= n_inputs <= circuit.n_params:
            raise InvalidCircuitError(
                f"'n_inputs' must be an integer in 0..{circuit.n_params} (the circuit's columns); got {n_inputs!r}"
            )
        layer = cls.__new__(cls)
        torch.nn.Module.__init__(layer)
        layer.encoder = layer.ansatz = None
        layer.backend, layer.gradient, layer.circuit = backend, gradient, circuit
        dtype = backend.real_dtype if backend is not None else torch.float64
        start = torch.rand(circuit.n_params - n_inputs, generator=generator, dtype=torch.float64) * (2 * math.pi)
        layer.weights = torch.nn.Parameter(start.to(dtype))
        return layer

    @property
    def out_features(self) -> int:
        return self.circuit.n_outputs

    @property
    def gradient_method(self) -> str:
        """How its expectation values are differentiated: ``backprop``, ``adjoint`` or ``parameter-shift``
        (for ``gradient="auto"``, the first of these the backend supports)."""
        return default_gradient(self.backend) if self.gradient == "auto" else self.gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x if self.encoder is None else self.encoder(x)
        return expval(self.backend, self.circuit, angles, self.gradient, shared=self.weights.reshape(-1))
