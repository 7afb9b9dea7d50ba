"""``QuantumLayer``: encoder → ansatz → backend as one ``torch.nn.Module`` producing ``H_q``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hqf.quantum.circuit import Circuit, Operation, PauliWord, compose
from hqf.quantum.gradients import default_gradient, expval
from hqf.quantum.interfaces import Ansatz, Backend, Encoder


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
    """Expectation values ``H_q[B, R]`` of an encoded, trainable circuit on any backend.

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

    @property
    def out_features(self) -> int:
        return self.circuit.n_outputs

    @property
    def gradient_method(self) -> str:
        """How its expectation values are differentiated: ``backprop``, ``adjoint`` or ``parameter-shift``
        (for ``gradient="auto"``, the first of these the backend supports)."""
        return default_gradient(self.backend) if self.gradient == "auto" else self.gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return expval(self.backend, self.circuit, self.encoder(x), self.gradient, shared=self.weights.reshape(-1))
