"""Circuits as a PennyLane user writes them, lowered to the strict form every backend reads.

A :class:`UserCircuit` allows what a :class:`~hqf.quantum.circuit.Circuit` refuses: a column read by several gates
(``Operation("RY", 0, 0)`` and ``Operation("RZZ", (0, 1), 0)``), a fixed angle (``Operation("RY", 0,
angle=math.pi / 4)``), a Hamiltonian's constant term (``Z(0) + 0.5``) and the variance of a Pauli word or a
Hamiltonian (``Var(Z(0))``, ``Var(Z(0) + 0.5 * X(1))``). It is lowered once, when built, to a strict circuit, in
which every parameterized gate reads its own column, and a gather map (:class:`Lowered`): the strict angle matrix
is the user's columns gathered (``angles[:, sources]``) followed by the fixed angles, each output's constant is
added to the backend's values, and a variance is ``⟨O²⟩ − v²`` of its observable's value ``v``, with ``⟨O²⟩``
either known (a Pauli word: ``P² = 1``) or read as one more strict output (a Hamiltonian's square, expanded into
Pauli words). :func:`hqf.quantum.gradients.expval` applies it, so backends, their fast paths and the output checks
see only strict circuits; autograd through the gather sums the gradients of the gates sharing a column, which is
the parameter-shift rule of a shared parameter.

Strict columns are ordered by the user column they read (then by gate order), the fixed angles last: the
columns of ``shared`` angles (the ansatz weights) and the fixed angles then form the strict circuit's own
``shared`` tail, and a backend's broadcast path (:meth:`~hqf.quantum.interfaces.Backend.expval_broadcast`)
still sees them as such.
"""

from __future__ import annotations

import bisect

import attrs
import torch

from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Circuit, Hamiltonian, Observable, Operation, PauliWord, Var, expanded, is_parameterized


@attrs.frozen
class Lowered:
    """A strict circuit and how to build its angles, ``[angles[:, sources], constants]`` (:meth:`gather`), and
    the user's values from its values (:meth:`finish`): ``offsets[R]`` is added to the first ``R`` strict
    outputs; an output whose ``variances[r]`` is ``(q, c)`` becomes ``⟨O²⟩ − v²``, with ``⟨O²⟩`` the strict
    output ``q`` plus ``c`` (``q = −1``: the constant ``c`` alone, as for a Pauli word's ``P² = 1``)."""

    circuit: Circuit
    sources: tuple[int, ...]
    constants: tuple[float, ...]
    offsets: tuple[float, ...]
    variances: tuple[tuple[int, float] | None, ...]

    @property
    def identity(self) -> bool:
        """Whether the user's angles and values are the strict circuit's unchanged."""
        unchanged = not (self.constants or any(self.offsets) or any(self.variances))
        return unchanged and self.sources == tuple(range(len(self.sources)))

    def gather(
        self, angles: torch.Tensor, shared: torch.Tensor | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The strict circuit's angles ``[B, P' − S']`` and shared tail ``[S']`` (None when empty) from the
        user's ``angles[B, P − S]`` and ``shared[S]``, in ``dtype``."""
        device, width = angles.device, angles.shape[1]  # the user columns before the shared ones
        split = bisect.bisect_left(self.sources, width)
        data = angles.to(dtype).index_select(1, torch.tensor(self.sources[:split], device=device, dtype=torch.long))
        tail = []
        if split < len(self.sources):
            index = torch.tensor(self.sources[split:], device=device, dtype=torch.long) - width
            tail.append(shared.to(dtype).index_select(0, index))
        if self.constants:
            tail.append(torch.tensor(self.constants, device=device, dtype=dtype))
        return data, torch.cat(tail) if tail else None

    def finish(self, values: torch.Tensor) -> torch.Tensor:
        """The user's values ``[B, R]`` from the strict circuit's ``values[B, R']``."""
        user = values[:, : len(self.offsets)]
        if any(self.variances):
            columns = []
            for r, variance in enumerate(self.variances):
                if variance is None:
                    columns.append(user[:, r])
                    continue
                q, constant = variance
                square = values[:, q] + constant if q >= 0 else constant
                columns.append(square - user[:, r].square())
            user = torch.stack(columns, dim=1)
        if any(self.offsets):
            user = user + torch.tensor(self.offsets, device=values.device, dtype=values.dtype)
        return user


def _strict_observable(obs: Observable) -> tuple[Observable, float]:
    """``obs`` without its constant term, and the constant (``0`` for all but a Hamiltonian)."""
    if not isinstance(obs, Hamiltonian) or (obs.terms and not obs.constant):
        return obs, 0.0
    terms = obs.terms or ((0.0, PauliWord.z(0)),)  # a constant alone: a zero-weight word keeps the output
    return Hamiltonian(terms), obs.constant


#: the product of two Pauli factors on one wire: (phase, factor; "" for the identity)
_FACTOR_PRODUCTS = {
    ("X", "X"): (1, ""), ("Y", "Y"): (1, ""), ("Z", "Z"): (1, ""),
    ("X", "Y"): (1j, "Z"), ("Y", "X"): (-1j, "Z"), ("Y", "Z"): (1j, "X"),
    ("Z", "Y"): (-1j, "X"), ("Z", "X"): (1j, "Y"), ("X", "Z"): (-1j, "Y"),
}  # fmt: skip


def _word_product(left: PauliWord, right: PauliWord) -> tuple[complex, tuple[tuple[int, str], ...]]:
    """``left · right`` as a phase times a word (its ``(wire, factor)`` pairs; empty for the identity)."""
    phase, factors = 1, dict(left.terms)
    for wire, factor in right.terms:
        if wire not in factors:
            factors[wire] = factor
            continue
        sign, factors[wire] = _FACTOR_PRODUCTS[(factors[wire], factor)]
        phase *= sign
    return phase, tuple(sorted((w, f) for w, f in factors.items() if f))


def _variance_parts(obs: PauliWord | Hamiltonian) -> tuple[Observable, Hamiltonian | None, float]:
    """For ``Var(O)``: the strict observable whose value ``v`` is read (``O`` without its constant, which the
    variance ignores), and ``O²`` of that as a strict Hamiltonian (None when it is a constant) and its constant.

    ``O² = Σ_jk c_j c_k P_j P_k``: a pair of commuting words contributes ``±P_j P_k`` (a real phase), an
    anticommuting pair cancels its mirror (``P_j P_k = −P_k P_j``), so only real phases are kept."""
    if isinstance(obs, PauliWord):
        return obs, None, 1.0
    if not obs.terms:  # a constant's variance is 0: read any word with weight 0
        return Hamiltonian(((0.0, PauliWord.z(0)),)), None, 0.0
    square: dict[tuple[tuple[int, str], ...], float] = {}
    for a, left in obs.terms:
        for b, right in obs.terms:
            phase, word = _word_product(left, right)
            if phase.imag == 0:
                square[word] = square.get(word, 0.0) + a * b * phase.real
    constant = square.pop((), 0.0)
    words = [(c, PauliWord(word)) for word, c in square.items() if c != 0]
    return Hamiltonian(obs.terms), Hamiltonian(words) if words else None, constant


def lower(n_qubits: int, operations: tuple[Operation, ...], observables: tuple[Observable, ...]) -> Lowered:
    """The strict circuit of these operations and observables, and its gather map; mistakes are
    :class:`~hqf.errors.InvalidCircuitError` (one line)."""
    for op in operations:
        if not isinstance(op, Operation):
            raise InvalidCircuitError(f"a circuit's operations are hqf.Operation values; got {op!r}")
    operations = expanded(operations)  # MultiRZ: its RZ reads the column or angle
    read = sorted({op.param for op in operations if op.param is not None})
    if read != list(range(len(read))):
        missing = sorted(set(range(read[-1] + 1)) - set(read))
        raise InvalidCircuitError(
            f"parameter columns must be 0..P-1 with none left out; column {missing[0]} is read by no gate "
            f"(columns read: {', '.join(map(str, read[:12]))}{', ...' if len(read) > 12 else ''})"
        )
    parameterized = [k for k, op in enumerate(operations) if is_parameterized(op.gate)]
    big = len(read)  # fixed angles after every column
    order = sorted(parameterized, key=lambda k: (big if operations[k].param is None else operations[k].param, k))
    column = {k: strict for strict, k in enumerate(order)}
    strict_ops = [
        attrs.evolve(op, param=column[k], angle=None) if k in column else op for k, op in enumerate(operations)
    ]
    sources = tuple(operations[k].param for k in order if operations[k].param is not None)
    constants = tuple(operations[k].angle for k in order if operations[k].param is None)
    strict_observables, offsets, variances, squares = [], [], [], []
    for obs in observables:
        if isinstance(obs, Var):
            strict, square, constant = _variance_parts(obs.observable)
            strict_observables.append(strict)
            offsets.append(0.0)
            variances.append((-1 if square is None else len(squares), constant))
            squares += [] if square is None else [square]
            continue
        strict, offset = _strict_observable(obs)
        strict_observables.append(strict)
        offsets += [offset] * getattr(strict, "n_outputs", 1)
        variances += [None] * getattr(strict, "n_outputs", 1)
    # each ⟨O²⟩ that is not a constant is one more strict output, after the user's R
    variances = [v if v is None or v[0] < 0 else (len(offsets) + v[0], v[1]) for v in variances]
    circuit = Circuit(n_qubits, strict_ops, strict_observables + squares)
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
        return len(self._lowered.offsets)

    def diagram(self) -> str:
        """A readable listing: one gate per line (a fixed angle as its value), then the observables."""
        lines = [f"UserCircuit: {self.n_qubits} qubit(s), {self.n_params} parameter(s)"]
        lines += [f"  {op}" for op in self.operations]
        lines.append("  measure <" + ">, <".join(str(o) for o in self.observables) + ">")
        return "\n".join(lines)
