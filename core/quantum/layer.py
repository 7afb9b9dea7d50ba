"""``QuantumLayer``: encoder → ansatz → backend as one ``torch.nn.Module`` producing ``H_q``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hqf.quantum.circuit import Circuit, PauliWord, compose
from hqf.quantum.gradients import default_gradient, expval
from hqf.quantum.interfaces import Ansatz, Backend, Encoder


class QuantumLayer(torch.nn.Module):
    """Expectation values ``H_q[B, R]`` of an encoded, trainable circuit on any backend.

    The angle matrix is ``[encoder(x), weights]``: data angles first, then the ansatz weights
    (broadcast over the batch: passed as ``shared``). ``gradient`` is passed to :func:`hqf.quantum.gradients.expval`.
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
            raise ValueError(
                f"encoder acts on {encoder.n_qubits} qubits but ansatz {ansatz.spec} on {ansatz.n_qubits}"
            )
        self.encoder, self.ansatz, self.backend, self.gradient = encoder, ansatz, backend, gradient
        self.circuit: Circuit = compose(ansatz.n_qubits, [encoder.operations(), ansatz.operations()], observables)
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
