"""``reupload``: data re-uploading (Pérez-Salinas et al. 2020), any encoder interleaved with the ansatz layers."""

from __future__ import annotations

from typing import Any

import torch

from hqf.errors import ConfigError
from hqf.quantum.circuit import Operation
from hqf.quantum.interfaces import Encoder
from hqf.registry.make import make_encoder


class ReuploadEncoder(Encoder):
    """Data re-uploading ("Data re-uploading for a universal quantum classifier", Pérez-Salinas et al.,
    Quantum 2020): an encoding block before every ansatz layer, block ``l`` encoding ``w_l ⊙ x`` with a
    trainable per-layer input scaling ``w_l`` (``in_features`` values, initialised to 1).

    The circuit is: block 1, layer 1, block 2, layer 2, …, block ``L``, layer ``L``
    (:func:`hqf.quantum.layer.interleaved_circuit`); the quantum layer tells the encoder ``L``
    (:meth:`interleave`), or ``layers`` gives it up front.

    Angle layout: ``L`` blocks of ``k`` columns, ``k`` the inner encoder's ``n_angles``; columns
    ``l·k … (l+1)·k − 1`` are the inner encoder's angles of ``w_l ⊙ x``, in its own layout. The inner
    encoder (and any projection it has) is shared by the blocks; the angles are torch functions of
    ``x`` and of the scalings (gradients reach both).

    Args:
        in_features: width of the input ``[B, in_features]``.
        n_qubits: number of qubits.
        encoder: the name of the encoder to re-upload (default ``"angle"``); not ``reupload`` itself.
        layers: the number of blocks ``L``; default: the ansatz's layer count, set by the quantum layer.
        **options: options of the inner encoder (e.g. ``rotation="RX"`` for ``angle``, ``reps=1``
            for ``iqp``).

    Raises:
        ValueError: an inner encoder that is itself interleaved, ``layers < 1``, options the inner
            encoder refuses, or (from :meth:`interleave`) a layer count other than ``layers``.
        hqf.errors.UnknownPluginError: no encoder is registered under ``encoder``.
        hqf.errors.ConfigError: the angles are asked for before the number of blocks is known.

    Example::

        >>> enc = ReuploadEncoder(2, 2, encoder="angle", layers=3)
        >>> enc.n_angles, enc(torch.ones(5, 2)).shape, enc.scaling.shape
        (6, torch.Size([5, 6]), torch.Size([3, 2]))
    """

    name = "reupload"
    interleaved = True

    def __init__(
        self, in_features: int, n_qubits: int, *, encoder: str = "angle", layers: int | None = None, **options: Any
    ) -> None:
        super().__init__(in_features, n_qubits)
        if encoder == self.name:
            raise ValueError("'encoder' must name an encoder other than 'reupload'")
        inner = make_encoder(encoder, in_features, n_qubits, **options)
        if inner.interleaved:
            raise ValueError(f"encoder {encoder!r} is itself interleaved with the ansatz; it cannot be re-uploaded")
        self.inner = inner
        self.scaling: torch.nn.Parameter | None = None
        if layers is not None:
            self.interleave(layers)

    @property
    def n_layers(self) -> int | None:
        """``L``, the number of encoding blocks (None until known)."""
        return None if self.scaling is None else self.scaling.shape[0]

    def interleave(self, n_layers: int) -> None:
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"'layers' must be an integer >= 1 (got {n_layers!r})")
        if self.scaling is not None:
            if self.n_layers != n_layers:
                raise ValueError(
                    f"encoder 'reupload' was built for {self.n_layers} layer(s); the ansatz has {n_layers}"
                )
            return
        self.scaling = torch.nn.Parameter(torch.ones(n_layers, self.in_features, dtype=torch.float64))

    def _blocks(self) -> int:
        if self.n_layers is None:
            raise ConfigError(
                "encoder 'reupload' does not know its number of blocks yet: pass layers=L, or use it in a QuantumLayer"
            )
        return self.n_layers

    def operations(self) -> tuple[Operation, ...]:
        block, width = self.inner.operations(), self.inner.n_angles
        return tuple(op.renumbered(layer * width) for layer in range(self._blocks()) for op in block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape [B, {self.in_features}] (got {list(x.shape)})")
        blocks = [self.inner(x * self.scaling[layer]) for layer in range(self._blocks())]
        return torch.cat(blocks, dim=1)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.n_qubits} qubits, blocks={self.n_layers}, encoder={self.inner.name}"
