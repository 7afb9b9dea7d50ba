"""Circuits as a PennyLane user writes them, lowered to the strict form every backend reads.

A :class:`UserCircuit` allows what a :class:`~hqf.quantum.circuit.Circuit` refuses: a column read by several gates
(``Operation("RY", 0, 0)`` and ``Operation("RZZ", (0, 1), 0)``), a fixed angle (``Operation("RY", 0,
angle=math.pi / 4)``), a Hamiltonian's constant term (``Z(0) + 0.5``) and the variance of a Pauli word
(``Var(Z(0))``). It is lowered once, when built, to a strict circuit, in which every parameterized gate reads its
own column, and a gather map (:class:`Lowered`): the strict angle matrix is the user's columns gathered
(``angles[:, sources]``) followed by the fixed angles, each output's constant is added to the backend's values,
and a variance is ``1 − v²`` of its word's value ``v``. :func:`hqf.quantum.gradients.expval` applies it, so
backends, their fast paths and the output checks see only strict circuits; autograd through the gather sums
the gradients of the gates sharing a column, which is the parameter-shift rule of a shared parameter.

Strict columns are ordered by the user column they read (then by gate order), the fixed angles last: the
columns of ``shared`` angles (the ansatz weights) and the fixed angles then form the strict circuit's own
``shared`` tail, and a backend's broadcast path (:meth:`~hqf.quantum.interfaces.Backend.expval_broadcast`)
still sees them as such.
"""

from __future__ import annotations

import attrs

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import GATES, Circuit, Hamiltonian, Observable, Operation, PauliWord, Var


@attrs.frozen
class Lowered:
    """A strict circuit and how to build its angles: ``[angles[:, sources], constants]``; then the outputs
    flagged in ``variances[R]`` become ``1 − v²`` and ``offsets[R]`` is added to the values."""

    circuit: Circuit
    sources: tuple[int, ...]
    constants: tuple[float, ...]
    offsets: tuple[float, ...]
    variances: tuple[bool, ...]

    @property
    def identity(self) -> bool:
        """Whether the user's angles and values are the strict circuit's unchanged."""
        unchanged = not (self.constants or any(self.offsets) or any(self.variances))
        return unchanged and self.sources == tuple(range(len(self.sources)))


def _strict_observable(obs: Observable | Var) -> tuple[Observable, float]:
    """``obs`` without its constant term, and the constant (``0`` for all but a Hamiltonian); a variance's word."""
    if isinstance(obs, Var):
        return obs.word, 0.0
    if not isinstance(obs, Hamiltonian) or (obs.terms and not obs.constant):
        return obs, 0.0
    terms = obs.terms or ((0.0, PauliWord.z(0)),)  # a constant alone: a zero-weight word keeps the output
    return Hamiltonian(terms), obs.constant


def lower(n_qubits: int, operations: tuple[Operation, ...], observables: tuple[Observable, ...]) -> Lowered:
    """The strict circuit of these operations and observables, and its gather map; mistakes are
    :class:`~hqf.errors.InvalidCircuitError` (one line)."""
    for op in operations:
        if not isinstance(op, Operation):
            raise InvalidCircuitError(f"a circuit's operations are hqf.Operation values; got {op!r}")
    read = sorted({op.param for op in operations if op.param is not None})
    if read != list(range(len(read))):
        missing = sorted(set(range(read[-1] + 1)) - set(read))
        raise InvalidCircuitError(
            f"parameter columns must be 0..P-1 with none left out; column {missing[0]} is read by no gate "
            f"(columns read: {', '.join(map(str, read[:12]))}{', ...' if len(read) > 12 else ''})"
        )
    parameterized = [k for k, op in enumerate(operations) if GATES[op.gate][1]]
    big = len(read)  # fixed angles after every column
    order = sorted(parameterized, key=lambda k: (big if operations[k].param is None else operations[k].param, k))
    column = {k: strict for strict, k in enumerate(order)}
    strict_ops = [
        attrs.evolve(op, param=column[k], angle=None) if k in column else op for k, op in enumerate(operations)
    ]
    sources = tuple(operations[k].param for k in order if operations[k].param is not None)
    constants = tuple(operations[k].angle for k in order if operations[k].param is None)
    strict_observables, offsets, variances = [], [], []
    for obs in observables:
        strict, offset = _strict_observable(obs)
        strict_observables.append(strict)
        offsets += [offset] * getattr(strict, "n_outputs", 1)
        variances += [isinstance(obs, Var)] * getattr(strict, "n_outputs", 1)
    circuit = Circuit(n_qubits, strict_ops, strict_observables)
    return Lowered(circuit, sources, constants, tuple(offsets), tuple(variances))


@attrs.frozen(cache_hash=True)
class UserCircuit:
    """A circuit whose gates may share angle columns or hold fixed angles (``angle=``), whose Hamiltonians may
    have constant terms and which may read variances (:class:`~hqf.quantum.circuit.Var`); :func:`hqf.expval` takes
    it as it takes a :class:`~hqf.quantum.circuit.Circuit`.

    Its angle matrix is ``[B, P]``, ``P`` the number of columns read (``0..P-1``, each by one gate or more).

    Example::

        circuit = UserCircuit(2, [Operation("RY", 0, 0), Operation("RX", 1, angle=0.3),
                                  Operation("IsingZZ", (0, 1), 0)], [Z(0) @ Z(1) + 0.5])
        hqf.expval(backend, circuit, torch.tensor([0.7]))  # one value: a 1-D angle vector is one row
    """

    n_qubits: int
    operations: tuple[Operation, ...] = attrs.field(converter=tuple)
    observables: tuple[Observable, ...] = attrs.field(converter=tuple)
    _lowered: Lowered = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_lowered", lower(self.n_qubits, self.operations, self.observables))

    @property
    def lowered(self) -> Lowered:
        """The strict circuit and the gather map, computed once."""
        return self._lowered

    @property
    def circuit(self) -> Circuit:
        """The strict circuit a backend runs."""
        return self._lowered.circuit

    @property
    def n_params(self) -> int:
        """P, the width of the angle matrix this circuit reads."""
        return len(set(self._lowered.sources))

    @property
    def n_outputs(self) -> int:
        """R, the width of one output row."""
        return self._lowered.circuit.n_outputs

    def diagram(self) -> str:
        """A readable listing: one gate per line (a fixed angle as its value), then the observables."""
        lines = [f"UserCircuit: {self.n_qubits} qubit(s), {self.n_params} parameter(s)"]
        lines += [f"  {op}" for op in self.operations]
        lines.append("  measure <" + ">, <".join(str(o) for o in self.observables) + ">")
        return "\n".join(lines)
