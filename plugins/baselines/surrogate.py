"""``classical-surrogate``: the quantum block replaced by a classical layer with the same parameter count.

Seed 003's sanity check ("replace the quantum layer with a standard linear layer") made fair: the
hybrid model stays as it is (backbone, fusion, head, regularizers, training) and only its quantum
block — encoder → ansatz → expectation values — is swapped for :class:`SurrogateLayer`.

**How the parameter count is matched.** The quantum block's trainable parameters are the encoder's
(e.g. the angle encoder's learned projection) plus the ansatz weights, ``n_w`` of them (``2·Q·L`` for
``hea{Q}x{L}``). The surrogate keeps an identical encoder (same class, same options, so the same
parameters) and replaces the circuit by a classical map from the ``Q`` encoder angles to the ``R``
outputs with exactly ``n_w`` parameters:

    y = tanh(W₂ tanh(W₁ (g ⊙ θ) + b₁) + b₂)            (outputs in [−1, 1], like expectation values)

with ``h = ⌊n_w / (Q + 1 + R)⌋`` hidden units (``W₁: h×Q``, ``b₁: h``, ``W₂: R×h``) and the remaining
``m = n_w − h(Q + 1 + R)`` parameters spent first on output biases ``b₂`` (``min(m, R)`` of them, the
other outputs have none) and then on input gains ``g`` (the rest, at most ``Q``; gains start at 1,
inputs without one have gain 1); ``m < Q + 1 + R`` always fits. A block with fewer than ``Q + 1 + R``
ansatz weights (e.g. ``hea3x1``) cannot hold one hidden unit and is refused with that message.
The two blocks' trainable parameter counts are equal; a test checks it.
"""

from __future__ import annotations

import math

import torch

from hqf.errors import ConfigError
from hqf.quantum.interfaces import Encoder
from hqf.registry.contracts import Baseline, BaselineInputs


def surrogate_shape(n_weights: int, n_inputs: int, n_outputs: int) -> tuple[int, int, int]:
    """``(hidden, output biases, input gains)`` that use exactly ``n_weights`` parameters."""
    if n_weights < 1 or n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"need n_weights, n_inputs, n_outputs >= 1 (got {n_weights}, {n_inputs}, {n_outputs})")
    per_unit = n_inputs + 1 + n_outputs
    hidden = n_weights // per_unit
    rest = n_weights - hidden * per_unit
    if hidden == 0:
        raise ValueError(f"{n_weights} parameters cannot hold one hidden unit ({per_unit} needed)")
    biases = min(rest, n_outputs)
    gains = rest - biases
    if gains > n_inputs:
        raise ValueError(f"cannot place {rest} remaining parameters (R={n_outputs}, Q={n_inputs})")
    return hidden, biases, gains


class SurrogateLayer(torch.nn.Module):
    """``encoder`` then the exact-count classical map of the module docstring; ``[B, in] -> [B, R]``.

    Differentiated by autograd throughout (``gradient_method = "backprop"``, as a quantum branch declares).
    """

    gradient_method = "backprop"

    def __init__(
        self, encoder: Encoder, n_weights: int, n_outputs: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        q = encoder.n_angles
        hidden, biases, gains = surrogate_shape(n_weights, q, n_outputs)
        self.n_outputs, self.n_weights = n_outputs, n_weights
        bound1, bound2 = 1 / math.sqrt(q), 1 / math.sqrt(hidden)

        def uniform(*shape: int, bound: float) -> torch.nn.Parameter:
            return torch.nn.Parameter((torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound)

        self.w1, self.b1 = uniform(hidden, q, bound=bound1), uniform(hidden, bound=bound1)
        self.w2 = uniform(n_outputs, hidden, bound=bound2)
        self.b2 = uniform(biases, bound=bound2)
        self.gains = torch.nn.Parameter(torch.ones(gains, dtype=torch.float64))

    @property
    def out_features(self) -> int:
        return self.n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.encoder(x).to(torch.float64)
        g = self.gains.shape[0]
        if g:
            theta = torch.cat([theta[:, :g] * self.gains, theta[:, g:]], dim=1)
        hidden = torch.tanh(theta @ self.w1.T + self.b1)
        out = hidden @ self.w2.T
        b = self.b2.shape[0]
        if b:
            out = torch.cat([out[:, :b] + self.b2, out[:, b:]], dim=1)
        return torch.tanh(out)


class ClassicalSurrogate(Baseline):
    """The hybrid model of the run with :class:`SurrogateLayer` in place of its quantum block.

    The backbone, encoder, ansatz size, fusion and head are those of the hybrid the run describes
    (``inputs.build_hybrid()``: built with the same seed, so the same initial weights outside the
    replaced block).
    """

    name = "classical-surrogate"
    description = "hybrid with its quantum block replaced by a classical layer of equal parameter count (seed 003)"
    receives_inputs = True

    def build(self, inputs: BaselineInputs) -> torch.nn.Module:
        model = inputs.build_hybrid()
        quantum = model.quantum
        if quantum is None:
            raise ConfigError(f"fusion {model.fusion.name!r} has no quantum block to replace")
        generator = torch.Generator().manual_seed(inputs.seed)
        model.quantum = SurrogateLayer(quantum.encoder, quantum.weights.numel(), quantum.out_features, generator)
        return model
