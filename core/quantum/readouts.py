"""Read-outs beyond expectation values, as PennyLane's ``qml.state``, ``qml.density_matrix``, ``qml.sample`` and
``qml.counts``: functions of a backend, a circuit (a :class:`~hqf.quantum.circuit.Circuit` or a
:class:`~hqf.quantum.lowering.UserCircuit`; its observables are not read) and its angles ``[B, P]`` (a 1-D
``[P]`` is one row and drops the batch dimension of the result), like :func:`hqf.quantum.gradients.expval`.

- :func:`state` and :func:`density_matrix` need a backend that gives its state vectors (``backend.state(circuit,
  angles) -> [B, 2**n]``, as the ``torch`` backend); both are differentiable.
- :func:`sample` and :func:`counts` draw from the computational-basis probabilities of the wires asked for
  (:class:`~hqf.quantum.circuit.Probs` on the backend, so any backend with exact values, noisy ones included),
  ``shots`` draws per row from a generator seeded with ``seed``.

Wire 0 is the most significant bit of a basis index, and the wires asked for are read in the order given
(``wires=(1, 0)`` swaps them), as in PennyLane.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hqf.errors import InvalidCircuitError, UnsupportedCircuitError
from hqf.quantum.circuit import Circuit, Probs
from hqf.quantum.gates import full_angles
from hqf.quantum.gradients import check_angles, expval
from hqf.quantum.interfaces import Backend
from hqf.quantum.lowering import UserCircuit


def state(backend: Backend, circuit: Circuit | UserCircuit, angles: torch.Tensor) -> torch.Tensor:
    """The state vectors ``[B, 2**n]`` (complex) after ``circuit``'s gates at ``angles[B, P]``; differentiable."""
    one_row = isinstance(angles, torch.Tensor) and angles.ndim == 1
    if one_row:
        angles = angles.unsqueeze(0)
    give = getattr(backend, "state", None)
    if not callable(give):
        name = getattr(backend, "name", type(backend).__name__)
        because = "it gives no state vectors; the torch backend does"
        raise UnsupportedCircuitError(name, "read-out", "state", (), because)
    strict = circuit.circuit if isinstance(circuit, UserCircuit) else circuit
    check_angles(circuit, angles)
    if isinstance(circuit, UserCircuit):
        data, tail = circuit.lowered.gather(angles, None, backend.real_dtype)
        angles = data if tail is None else full_angles(data, tail)
    states = give(strict, angles)
    return states[0] if one_row else states


def density_matrix(
    backend: Backend, circuit: Circuit | UserCircuit, angles: torch.Tensor, wires: Sequence[int] | int
) -> torch.Tensor:
    """The reduced density matrices ``[B, 2**k, 2**k]`` of ``wires`` (the others traced out) after ``circuit``'s
    gates at ``angles[B, P]``; differentiable."""
    kept = _wires(wires, circuit.n_qubits, "density_matrix")
    states = state(backend, circuit, angles)
    one_row = states.ndim == 1
    states = states.reshape(-1, *[2] * circuit.n_qubits)
    rest = [w for w in range(circuit.n_qubits) if w not in kept]
    psi = states.permute(0, *(1 + w for w in kept), *(1 + w for w in rest)).reshape(
        states.shape[0], 2 ** len(kept), 2 ** len(rest)
    )
    rho = psi @ psi.conj().transpose(1, 2)
    return rho[0] if one_row else rho


def sample(
    backend: Backend,
    circuit: Circuit | UserCircuit,
    angles: torch.Tensor,
    shots: int,
    wires: Sequence[int] | int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """``shots`` computational-basis outcomes per row, ``[B, shots, k]`` bits (int64, ``wires[0]`` first; default:
    every wire), drawn from the exact probabilities of ``wires`` with a generator seeded with ``seed`` (None: torch's
    global generator)."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise InvalidCircuitError(f"'shots' must be an integer >= 1 (got {shots!r})")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidCircuitError(f"'seed' must be an integer or None (got {seed!r})")
    kept = _wires(range(circuit.n_qubits) if wires is None else wires, circuit.n_qubits, "sample")
    capabilities = backend.capabilities
    if not capabilities.exact or capabilities.estimates:
        raise UnsupportedCircuitError(
            backend.name, "read-out", "sample", (), "its probabilities are estimates; sample draws from exact ones"
        )
    one_row = isinstance(angles, torch.Tensor) and angles.ndim == 1
    kind = UserCircuit if isinstance(circuit, UserCircuit) else Circuit
    probs = kind(circuit.n_qubits, circuit.operations, [Probs(kept)])
    with torch.no_grad():
        p = expval(backend, probs, angles.unsqueeze(0) if one_row else angles).to("cpu", torch.float64)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    if p.shape[0] == 0:
        outcomes = torch.zeros(0, shots, dtype=torch.long)
    else:
        outcomes = torch.multinomial(p.clamp(min=0), shots, replacement=True, generator=generator)
    powers = 2 ** torch.arange(len(kept) - 1, -1, -1)
    bits = (outcomes.unsqueeze(-1) // powers) % 2
    return bits[0] if one_row else bits


def counts(
    backend: Backend,
    circuit: Circuit | UserCircuit,
    angles: torch.Tensor,
    shots: int,
    wires: Sequence[int] | int | None = None,
    seed: int | None = None,
) -> list[dict[str, int]] | dict[str, int]:
    """The outcomes of :func:`sample` counted per row: ``{"01": 37, …}`` (bit strings, ``wires[0]`` first, only
    outcomes drawn, sorted), one dict per row (one dict for a 1-D ``angles``)."""
    bits = sample(backend, circuit, angles, shots, wires, seed)
    rows = [bits] if bits.ndim == 2 else list(bits)
    found = []
    for row in rows:
        keys, numbers = torch.unique(row, dim=0, return_counts=True)
        found.append({"".join(map(str, key.tolist())): int(n) for key, n in zip(keys, numbers, strict=True)})
    return found[0] if bits.ndim == 2 else found


def _wires(wires: Sequence[int] | int, n_qubits: int, what: str) -> tuple[int, ...]:
    """``wires`` as distinct integers in ``0..n_qubits-1``; a mistake is one line naming what was given."""
    try:
        kept = (int(wires),) if isinstance(wires, int) else tuple(wires)
    except TypeError:
        kept = None
    if (
        not kept
        or any(isinstance(w, bool) or not isinstance(w, int) for w in kept)
        or len(set(kept)) != len(kept)
        or not all(0 <= w < n_qubits for w in kept)
    ):
        raise InvalidCircuitError(
            f"{what} reads distinct integer wires in 0..{n_qubits - 1}, e.g. wires=(0, 1) (got {wires!r})"
        )
    return kept
