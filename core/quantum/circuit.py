"""The backend-neutral circuit description.

A :class:`Circuit` is a qubit count, an ordered tuple of :class:`Operation` and a tuple of observables
(:class:`PauliWord`, :class:`Hamiltonian`, :class:`Probs`). Parameterized gates do not hold numbers: each reads one
column of a batched angle matrix ``angles[B, P]``, so a backend only ever sees a circuit (hashable, cacheable) and a
real matrix. Each column is read by exactly one gate, which keeps the parameter-shift rule exact; a column read by
several gates, a fixed angle (``Operation("RY", 0, angle=0.5)``) and a Hamiltonian's constant term are written in a
:class:`hqf.quantum.lowering.UserCircuit`, which :func:`hqf.quantum.gradients.expval` lowers to this form.

Wire order: wire 0 is the most significant bit of a computational-basis index (big-endian, as in
PennyLane). Backends with another convention convert in their adapter. A controlled gate's
``wires[0]`` is the control; a rotation is ``exp(−iθP/2)``. Multi-parameter gates (``Rot``, ``U3``)
are products of one-parameter gates (:func:`rot`, :func:`u3`), so each column still has one gate.
"""

from __future__ import annotations

import difflib
import math
import numbers
import operator
from collections.abc import Iterable, Sequence

import attrs
import numpy as np

from hqf.errors import InvalidCircuitError
from hqf.quantum.drawing import draw_text

#: gate name -> (number of wires, parameterized); every matrix is in :mod:`hqf.quantum.gates`
GATES: dict[str, tuple[int, bool]] = {
    "RX": (1, True),
    "RY": (1, True),
    "RZ": (1, True),
    "H": (1, False),
    "X": (1, False),
    "CNOT": (2, False),
    "CZ": (2, False),
    "Y": (1, False),
    "Z": (1, False),
    "S": (1, False),
    "T": (1, False),
    "SX": (1, False),
    "PhaseShift": (1, True),
    "CY": (2, False),
    "SWAP": (2, False),
    "RXX": (2, True),
    "RYY": (2, True),
    "RZZ": (2, True),
    "CRX": (2, True),
    "CRY": (2, True),
    "CRZ": (2, True),
    "CPhase": (2, True),
    "Toffoli": (3, False),
    "CSWAP": (3, False),
}
#: other spellings of vocabulary gates, PennyLane's and Qiskit's (any gate name is also accepted in any letter case)
GATE_ALIASES: dict[str, str] = {
    "Hadamard": "H", "PauliX": "X", "PauliY": "Y", "PauliZ": "Z", "IsingXX": "RXX", "IsingYY": "RYY",
    "IsingZZ": "RZZ", "ControlledPhaseShift": "CPhase", "CX": "CNOT", "CCX": "Toffoli", "CCNOT": "Toffoli",
    "Fredkin": "CSWAP", "P": "PhaseShift", "CP": "CPhase",
}  # fmt: skip
#: a gate on any number of wires: ``exp(−iθ Z⊗…⊗Z/2)`` (PennyLane's ``MultiRZ``), lowered by every circuit into
#: CNOTs and one RZ that reads its column or angle (:func:`expand_multi_rz`), so every backend and fast path runs it
MULTI_RZ = "MultiRZ"
#: a fixed unitary matrix on 1 to :data:`UNITARY_MAX_WIRES` wires (``Operation("QubitUnitary", wires, matrix=U)``),
#: run natively by the backends that declare it in ``Capabilities.gates``
UNITARY = "QubitUnitary"
UNITARY_MAX_WIRES = 3
#: the gate names a backend may declare: the vocabulary and :data:`UNITARY`
DECLARABLE_GATES = frozenset(GATES) | {UNITARY}
_BY_FOLDED_NAME = {
    name.casefold(): canonical
    for name, canonical in {**{g: g for g in [*GATES, MULTI_RZ, UNITARY]}, **GATE_ALIASES}.items()
}


def gate_name(name: str) -> str:
    """The vocabulary name of gate ``name`` (``"IsingZZ"``, ``"rzz"`` and ``"RZZ"`` are all ``"RZZ"``); an unknown
    name is an error that suggests the closest known one."""
    if name in GATES:
        return name
    canonical = _BY_FOLDED_NAME.get(str(name).casefold())
    if canonical is not None:
        return canonical
    close = difflib.get_close_matches(str(name), [*GATES, MULTI_RZ, UNITARY, *GATE_ALIASES], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InvalidCircuitError(
        f"unknown gate {name!r}{hint} (gates: {', '.join([*GATES, MULTI_RZ, UNITARY])}; PennyLane's and Qiskit's "
        "names such as 'Hadamard', 'IsingZZ', 'CX' work too)"
    )


#: the gates every backend supports unless it declares otherwise (the original vocabulary)
BASE_GATES = frozenset({"RX", "RY", "RZ", "H", "X", "CNOT", "CZ"})
#: the observable kinds a backend may declare (``Capabilities.observables``)
OBSERVABLE_KINDS = ("pauli", "hamiltonian", "probs")

#: the widest circuit hqf describes; how many qubits a backend runs is its own (``Capabilities.max_qubits``,
#: checked before any work): a state vector stops near 30, a matrix-product state goes further
MAX_QUBITS = 1024
#: where a mistake in a strict circuit points a user who meant a shared column, a fixed angle or a constant term
USER_FORM = "hqf.UserCircuit takes shared columns, fixed angles (angle=), constant terms and Var"


def _wires(value: Iterable[int] | int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    return tuple(int(w) for w in value)


def _column(value: int | None) -> int | None:
    if value is None:
        return None
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidCircuitError(
            f"param is an angle column (an integer); got {value!r} (a fixed angle is angle={value!r})"
        ) from None


def _real(value: float | None, what: str = "a fixed angle") -> float | None:
    """``value`` as a float (None stays None); a complex, non-numeric or non-finite one is a one-line error."""
    if value is None:
        return None
    if isinstance(value, complex) or not hasattr(value, "__float__"):
        raise InvalidCircuitError(f"{what} must be a finite real number; got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidCircuitError(f"{what} must be a finite real number; got {number}")
    return number


def _unitary(value) -> tuple[tuple[complex, ...], ...] | None:
    """A fixed matrix as rows of complex numbers (hashable); it must be square, ``2**k`` wide for ``k`` in
    ``1..UNITARY_MAX_WIRES``, and unitary to ``1e-10``: otherwise a one-line error naming what was given."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=complex)
    except (TypeError, ValueError):
        given = repr(value)[:80]
        raise InvalidCircuitError(f"QubitUnitary's matrix must be a square array of numbers; got {given}") from None
    widths = [2**k for k in range(1, UNITARY_MAX_WIRES + 1)]
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] not in widths:
        raise InvalidCircuitError(
            f"QubitUnitary's matrix must be square and 2, 4 or 8 wide (1 to {UNITARY_MAX_WIRES} wires); "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidCircuitError("QubitUnitary's matrix must be finite; got a NaN or infinite entry")
    error = float(np.abs(array.conj().T @ array - np.eye(array.shape[0])).max())
    if error > 1e-10:
        raise InvalidCircuitError(f"QubitUnitary's matrix must be unitary to 1e-10; got max |U†U − 1| = {error:.3g}")
    return tuple(tuple(complex(x) for x in row) for row in array)


def is_parameterized(gate: str) -> bool:
    """Whether ``gate`` reads an angle (a column or a fixed ``angle=``)."""
    return gate == MULTI_RZ or GATES.get(gate, (0, False))[1]


@attrs.frozen
class Operation:
    """One gate on some wires; a parameterized gate reads column ``param`` of the angle matrix, or holds a fixed
    ``angle`` (only in a :class:`hqf.quantum.lowering.UserCircuit`); a ``QubitUnitary`` holds its fixed
    ``matrix`` (over its wires, ``wires[0]`` the most significant bit)."""

    gate: str = attrs.field(converter=gate_name)
    wires: tuple[int, ...] = attrs.field(converter=_wires)
    param: int | None = attrs.field(default=None, converter=_column)
    angle: float | None = attrs.field(default=None, converter=_real, kw_only=True)
    matrix: tuple[tuple[complex, ...], ...] | None = attrs.field(
        default=None, converter=_unitary, kw_only=True, repr=lambda m: "None" if m is None else f"<{len(m)}x{len(m)}>"
    )

    def __attrs_post_init__(self) -> None:
        if self.gate == UNITARY and self.matrix is None:
            raise InvalidCircuitError("QubitUnitary needs its matrix: Operation('QubitUnitary', wires, matrix=U)")
        if self.gate != UNITARY and self.matrix is not None:
            raise InvalidCircuitError(f"{self.gate} takes no matrix (only QubitUnitary does)")
        if self.gate == UNITARY:
            n_wires, parameterized = len(self.matrix).bit_length() - 1, False
        elif self.gate == MULTI_RZ:
            n_wires, parameterized = max(1, len(self.wires)), True
        else:
            n_wires, parameterized = GATES[self.gate]
        if len(self.wires) != n_wires and self.gate == UNITARY:
            size = len(self.matrix)
            message = f"QubitUnitary of a {size}x{size} matrix acts on {n_wires} wire(s); got {self.wires}"
            raise InvalidCircuitError(message)
        if len(self.wires) != n_wires:
            raise InvalidCircuitError(f"{self.gate} acts on {n_wires} wire(s); got wires {self.wires}")
        if len(set(self.wires)) != len(self.wires):
            raise InvalidCircuitError(f"{self.gate} needs distinct wires; got {self.wires}")
        if any(w < 0 for w in self.wires):
            raise InvalidCircuitError(f"wires must be >= 0; got {self.wires}")
        if parameterized and self.param is not None and self.angle is not None:
            raise InvalidCircuitError(f"{self.gate} reads column {self.param} or holds angle={self.angle:g}, not both")
        if parameterized and self.angle is None and (self.param is None or self.param < 0):
            raise InvalidCircuitError(
                f"{self.gate} needs a parameter column >= 0 (or a fixed angle=); got {self.param}"
            )
        if not parameterized and self.param is not None:
            raise InvalidCircuitError(f"{self.gate} takes no parameter; got column {self.param}")
        if not parameterized and self.angle is not None:
            raise InvalidCircuitError(f"{self.gate} takes no angle; got angle={self.angle:g}")

    @property
    def unitary(self) -> np.ndarray:
        """A ``QubitUnitary``'s matrix as a complex128 numpy array."""
        return np.array(self.matrix, dtype=complex)

    def renumbered(self, offset: int) -> Operation:
        """The same gate reading column ``param + offset``."""
        return self if self.param is None else attrs.evolve(self, param=self.param + offset)

    def __str__(self) -> str:
        wires = ",".join(f"q{w}" for w in self.wires)
        if self.angle is not None:
            return f"{self.gate}({self.angle:.4g}) {wires}"
        return f"{self.gate}(θ{self.param}) {wires}" if self.param is not None else f"{self.gate} {wires}"


NO_FACTOR = "a Pauli word needs at least one X, Y or Z factor (an identity is a Hamiltonian's constant term)"


def _pauli_terms(value: Iterable[tuple[int, str]]) -> tuple[tuple[int, str], ...]:
    try:
        terms = tuple(sorted((int(w), str(p).upper()) for w, p in value))
    except (TypeError, ValueError) as exc:
        raise InvalidCircuitError(
            f"a Pauli word is (wire, 'X'|'Y'|'Z') pairs with integer wires; got {value!r}"
        ) from exc
    terms = tuple((w, p) for w, p in terms if p != "I")  # I(w) @ Z(v) is Z(v)
    wires = [w for w, _ in terms]
    if not terms:
        raise InvalidCircuitError(NO_FACTOR)
    if len(set(wires)) != len(wires):
        raise InvalidCircuitError(f"a Pauli word names each wire once; got {terms}")
    for w, p in terms:
        if p not in "XYZ" or len(p) != 1 or w < 0:
            raise InvalidCircuitError(f"a Pauli factor is X, Y or Z on a wire >= 0; got {p}{w}")
    return terms


@attrs.frozen
class PauliWord:
    """A tensor product of Pauli operators, e.g. ``Z0 Z3`` or ``X1 Y2``; identity elsewhere."""

    terms: tuple[tuple[int, str], ...] = attrs.field(converter=_pauli_terms)
    kind = "pauli"
    n_outputs = 1

    @classmethod
    def z(cls, wire: int) -> PauliWord:
        """Pauli Z on one wire."""
        return cls(((wire, "Z"),))

    @classmethod
    def parse(cls, text: str) -> PauliWord:
        """Read ``"Z0 X3"`` (factors separated by spaces; ``I`` factors are dropped)."""
        if text.split() and _is_identity(text):
            raise InvalidCircuitError(f"cannot read Pauli word {text!r}: {NO_FACTOR}")
        try:
            return cls((tok[1:], tok[0]) for tok in text.split())
        except (ValueError, IndexError) as exc:
            raise InvalidCircuitError(f"cannot read Pauli word {text!r}: expected e.g. 'Z0 X3'") from exc

    @property
    def wires(self) -> tuple[int, ...]:
        return tuple(w for w, _ in self.terms)

    def __str__(self) -> str:
        return " ".join(f"{p}{w}" for w, p in self.terms)

    def __matmul__(self, other: PauliWord) -> PauliWord:
        """The tensor product of two words on distinct wires: ``Z(0) @ Z(1)``."""
        if not isinstance(other, PauliWord):
            return NotImplemented
        shared = sorted(set(self.wires) & set(other.wires))
        if shared:
            raise InvalidCircuitError(
                f"{self} @ {other}: a product of Pauli words needs distinct wires; both act on {shared}"
            )
        return PauliWord(self.terms + other.terms)

    def __mul__(self, coefficient: float) -> Hamiltonian:
        return Hamiltonian([(coefficient, self)])

    __rmul__ = __mul__

    def __add__(self, other: PauliWord | Hamiltonian | float) -> Hamiltonian:
        return Hamiltonian([(1.0, self)]) + other

    __radd__ = __add__

    def __neg__(self) -> Hamiltonian:
        return Hamiltonian([(-1.0, self)])

    def __sub__(self, other: PauliWord | Hamiltonian | float) -> Hamiltonian:
        return self + (-other)

    def __rsub__(self, other: float) -> Hamiltonian:
        return -self + other


def _is_identity(word: object) -> bool:
    """Whether ``word`` is a text of identity factors only (``"I"``, ``"I0 I2"``, ``""``)."""
    return isinstance(word, str) and all(token[:1].upper() == "I" for token in word.split())


def _coefficient(value: object, word: object) -> float:
    return _real(value, f"a Hamiltonian's coefficient of {word}")


def _hamiltonian_terms(value) -> tuple[tuple[float, PauliWord | None], ...]:
    """The terms, an identity word (``"I"``) kept as ``None`` until the constant takes it."""
    terms = []
    for coefficient, word in value:
        if not (isinstance(word, PauliWord) or _is_identity(word)):
            word = PauliWord.parse(str(word))
        terms.append((_coefficient(coefficient, word), word if isinstance(word, PauliWord) else None))
    return tuple(terms)


@attrs.frozen
class Hamiltonian:
    """``c_0 + Σ_k c_k P_k``: Pauli words with real coefficients and a ``constant`` (identity) term; one
    expectation value. A term whose word is ``"I"`` is added to the constant. Only a
    :class:`hqf.quantum.lowering.UserCircuit` reads a non-zero constant (added after the backend's value)."""

    terms: tuple[tuple[float, PauliWord], ...] = attrs.field(converter=_hamiltonian_terms)
    constant: float = attrs.field(default=0.0, kw_only=True, converter=lambda c: _coefficient(c, "the identity"))
    kind = "hamiltonian"
    n_outputs = 1

    def __attrs_post_init__(self) -> None:
        identity = [c for c, word in self.terms if word is None]
        if identity:
            object.__setattr__(self, "terms", tuple((c, word) for c, word in self.terms if word is not None))
            object.__setattr__(self, "constant", self.constant + sum(identity))
        if not self.terms and not identity and self.constant == 0:
            raise InvalidCircuitError("a Hamiltonian needs at least one term")

    @property
    def wires(self) -> tuple[int, ...]:
        return tuple(sorted({w for _, word in self.terms for w in word.wires}))

    def __str__(self) -> str:
        parts = [f"{c:g}·{word}" for c, word in self.terms] + ([f"{self.constant:g}"] if self.constant else [])
        return " + ".join(parts) or "0"

    def __add__(self, other: PauliWord | Hamiltonian | float) -> Hamiltonian:
        """The sum of two Pauli sums (terms kept in order, equal words not merged), or with a constant."""
        if isinstance(other, PauliWord):
            other = Hamiltonian([(1.0, other)])
        if isinstance(other, numbers.Number) and not isinstance(other, bool):
            return Hamiltonian(self.terms, constant=self.constant + _coefficient(other, "the identity"))
        if not isinstance(other, Hamiltonian):
            return NotImplemented
        return Hamiltonian(self.terms + other.terms, constant=self.constant + other.constant)

    __radd__ = __add__

    def __matmul__(self, other: PauliWord | Hamiltonian) -> Hamiltonian:
        """The product, term by term, with words on other wires: ``(0.5 * Z(0)) @ Z(1)``."""
        if isinstance(other, PauliWord):
            other = Hamiltonian([(1.0, other)])
        if not isinstance(other, Hamiltonian):
            return NotImplemented
        terms = [(a * b, left @ right) for a, left in self.terms for b, right in other.terms]
        terms += [(self.constant * b, right) for b, right in other.terms if self.constant]
        terms += [(a * other.constant, left) for a, left in self.terms if other.constant]
        return Hamiltonian(terms, constant=self.constant * other.constant)

    def __rmatmul__(self, other: PauliWord) -> Hamiltonian:
        if not isinstance(other, PauliWord):
            return NotImplemented
        return Hamiltonian([(1.0, other)]) @ self

    def __mul__(self, coefficient: float) -> Hamiltonian:
        terms = [(coefficient * c, word) for c, word in self.terms]
        return Hamiltonian(terms, constant=_coefficient(coefficient, "the identity") * self.constant)

    __rmul__ = __mul__

    def __neg__(self) -> Hamiltonian:
        return self * -1.0

    def __sub__(self, other: PauliWord | Hamiltonian | float) -> Hamiltonian:
        return self + (-other)

    def __rsub__(self, other: float) -> Hamiltonian:
        return -self + other


def X(wire: int) -> PauliWord:  # noqa: N802 — the operator's name, as qml.X
    """Pauli X on ``wire``, for observables written as sums of products: ``0.5 * Z(0) @ Z(1) + X(2)``."""
    return PauliWord(((wire, "X"),))


def Y(wire: int) -> PauliWord:  # noqa: N802
    """Pauli Y on ``wire``."""
    return PauliWord(((wire, "Y"),))


def Z(wire: int) -> PauliWord:  # noqa: N802
    """Pauli Z on ``wire``."""
    return PauliWord(((wire, "Z"),))


def I(wire: int) -> Hamiltonian:  # noqa: E743, N802, ARG001 — the operator's name, as qml.I
    """The identity on ``wire``: the constant 1 (``Z(0) + 0.5 * I(1)``, ``I(0) @ Z(1)`` is ``Z(1)``)."""
    return Hamiltonian([], constant=1.0)


def _probs_wires(value) -> tuple[int, ...]:
    wires = _wires(value)
    if not wires or len(set(wires)) != len(wires) or min(wires) < 0:
        raise InvalidCircuitError(f"Probs needs distinct wires >= 0; got {wires}")
    return wires


@attrs.frozen
class Probs:
    """Computational-basis probabilities on ``wires``: ``2**k`` outputs, ``wires[0]`` the most significant
    bit of the output index (as ``qml.probs(wires=…)``)."""

    wires: tuple[int, ...] = attrs.field(converter=_probs_wires)
    kind = "probs"

    @property
    def n_outputs(self) -> int:
        return 2 ** len(self.wires)

    def __str__(self) -> str:
        return "probs(" + ",".join(f"q{w}" for w in self.wires) + ")"


def _var_observable(value: PauliWord | Hamiltonian | str) -> PauliWord | Hamiltonian:
    if isinstance(value, str):
        return PauliWord.parse(value)
    if not isinstance(value, (PauliWord, Hamiltonian)):
        raise InvalidCircuitError(
            f"Var reads a Pauli word or a Hamiltonian (e.g. Var(Z(0) @ Z(1)), Var(0.5 * X(0) + Z(1)) or Var('Z0 Z1')); "
            f"got {value!r}"
        )
    return value


@attrs.frozen
class Var:
    """The variance ``⟨O²⟩ − ⟨O⟩²`` of a Pauli word or a Hamiltonian ``O`` (as ``qml.var(O)``; ``1 − ⟨P⟩²`` for a
    word, ``P² = 1``); one output, read by a :class:`hqf.quantum.lowering.UserCircuit` on a backend whose values
    are exact."""

    observable: PauliWord | Hamiltonian = attrs.field(converter=_var_observable)
    kind = "var"
    n_outputs = 1

    @property
    def wires(self) -> tuple[int, ...]:
        return self.observable.wires

    def __str__(self) -> str:
        return f"var({self.observable})"


#: anything a circuit may read out
Observable = PauliWord | Hamiltonian | Probs


def rot(wire: int, columns: Sequence[int]) -> tuple[Operation, ...]:
    """``Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)`` on ``wire`` as three gates reading ``columns = (φ, θ, ω)``."""
    phi, theta, omega = columns
    return (Operation("RZ", wire, phi), Operation("RY", wire, theta), Operation("RZ", wire, omega))


def u3(wire: int, columns: Sequence[int]) -> tuple[Operation, ...]:
    """``U3(θ, φ, λ) = RZ(φ) RY(θ) RZ(λ)`` (up to the global phase ``e^{i(φ+λ)/2}``) on ``wire``, as
    three gates reading ``columns = (θ, φ, λ)``."""
    theta, phi, lam = columns
    return (Operation("RZ", wire, lam), Operation("RY", wire, theta), Operation("RZ", wire, phi))


#: the dagger of the fixed gates that are not their own inverse, as vocabulary gates in order:
#: ``S† = Z S``, ``T† = Z S T``, ``SX† = X SX`` (``SX² = X``); every other fixed gate is self-inverse
FIXED_ADJOINTS: dict[str, tuple[str, ...]] = {"S": ("S", "Z"), "T": ("T", "S", "Z"), "SX": ("SX", "X")}


def adjoint(operations: Sequence[Operation]) -> tuple[Operation, ...]:
    """The gates of ``U†`` for the gates of ``U``: reversed, each fixed gate replaced by its dagger.

    A parameterized gate keeps its gate and its column: every one is ``exp(−iθG)``, whose inverse is
    the same gate at ``−θ``, so the result is ``U(θ)†`` when each column holds ``−θ``. Compose it as
    its own block (:func:`compose`) and pass the negated angles there. A fixed ``angle`` is negated here.
    """
    out: list[Operation] = []
    for op in reversed(tuple(operations)):
        if op.angle is not None:
            op = attrs.evolve(op, angle=-op.angle)
        if op.gate == UNITARY:
            op = attrs.evolve(op, matrix=op.unitary.conj().T)
        out += [Operation(gate, op.wires) for gate in FIXED_ADJOINTS[op.gate]] if op.gate in FIXED_ADJOINTS else [op]
    return tuple(out)


def expand_multi_rz(op: Operation) -> tuple[Operation, ...]:
    """``MultiRZ(θ)`` on wires ``w0 … wk`` as vocabulary gates: ``RZ(θ)`` on one wire, else a CNOT ladder that
    gathers the wires' parity on ``wk``, ``RZ(θ)`` there (the same column or angle), and the ladder undone.
    Any other gate is itself."""
    if getattr(op, "gate", None) != MULTI_RZ:
        return (op,)
    rz = Operation("RZ", op.wires[-1], op.param, angle=op.angle)
    ladder = tuple(Operation("CNOT", pair) for pair in zip(op.wires, op.wires[1:]))
    return ladder + (rz,) + ladder[::-1]


def expanded(operations: Iterable[Operation]) -> tuple[Operation, ...]:
    """``operations`` with every ``MultiRZ`` lowered by :func:`expand_multi_rz`."""
    return tuple(part for op in operations for part in expand_multi_rz(op))


@attrs.frozen(cache_hash=True)
class Circuit:
    """A qubit count, gates in order, and the observables whose expectation values a backend returns."""

    n_qubits: int = attrs.field(validator=[attrs.validators.ge(1), attrs.validators.le(MAX_QUBITS)])
    operations: tuple[Operation, ...] = attrs.field(converter=expanded)
    observables: tuple[Observable, ...] = attrs.field(converter=tuple)
    _n_params: int = attrs.field(init=False, eq=False, repr=False)
    _column_gates: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)
    _gate_names: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    _observable_kinds: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.observables:
            raise InvalidCircuitError("a circuit needs at least one observable")
        for op in self.operations:
            if max(op.wires) >= self.n_qubits:
                raise InvalidCircuitError(f"{op} acts outside the {self.n_qubits} qubit(s)")
            if op.angle is not None:
                raise InvalidCircuitError(f"{op}: a Circuit's gates read angle columns; {USER_FORM}")
        for obs in self.observables:
            if isinstance(obs, Var):
                raise InvalidCircuitError(f"observable {obs}: a Circuit reads expectation values; {USER_FORM}")
            if not isinstance(obs, (PauliWord, Hamiltonian, Probs)):
                raise InvalidCircuitError(f"an observable is a PauliWord, Hamiltonian or Probs; got {obs!r}")
            if isinstance(obs, Hamiltonian) and (obs.constant or not obs.terms):
                raise InvalidCircuitError(f"observable {obs} has a constant (identity) term; {USER_FORM}")
            if max(obs.wires) >= self.n_qubits:
                raise InvalidCircuitError(f"observable {obs} acts outside the {self.n_qubits} qubit(s)")
        columns = sorted(op.param for op in self.operations if op.param is not None)
        if columns != list(range(len(columns))):
            raise InvalidCircuitError(
                "parameter columns must be 0..P-1, each read by exactly one gate; "
                f"got {columns[:12]}{'...' if len(columns) > 12 else ''} ({USER_FORM})"
            )
        object.__setattr__(self, "_n_params", len(columns))  # read on every call: counted once
        by_column = sorted((op.param, op.gate) for op in self.operations if op.param is not None)
        object.__setattr__(self, "_column_gates", tuple(gate for _, gate in by_column))
        object.__setattr__(self, "_gate_names", frozenset(op.gate for op in self.operations))
        object.__setattr__(self, "_observable_kinds", frozenset(obs.kind for obs in self.observables))

    @property
    def n_params(self) -> int:
        """P, the width of the angle matrix this circuit reads."""
        return self._n_params

    @property
    def column_gates(self) -> tuple[str, ...]:
        """The gate reading each angle column, ``[P]`` (its shift recipe is ``SHIFT_RULES[gate]``)."""
        return self._column_gates

    @property
    def gate_names(self) -> frozenset[str]:
        """The distinct gates this circuit uses."""
        return self._gate_names

    @property
    def observable_kinds(self) -> frozenset[str]:
        """The distinct observable kinds it reads (``pauli``, ``hamiltonian``, ``probs``)."""
        return self._observable_kinds

    @property
    def n_outputs(self) -> int:
        """R, the width of one output row: the observables' outputs concatenated in order."""
        return sum(obs.n_outputs for obs in self.observables)

    def draw(self, angles: Sequence[float] | None = None, decimals: int = 2) -> str:
        """A text diagram in the style of ``qml.draw``: one line per wire, gates in columns, each
        parametric gate labelled with its column (``θ3``) or, given one angle row, its value."""
        return draw_text(self, angles, decimals)

    def diagram(self) -> str:
        """A readable listing: one gate per line, then the observables."""
        lines = [f"Circuit: {self.n_qubits} qubit(s), {self.n_params} parameter(s)"]
        lines += [f"  {op}" for op in self.operations]
        lines.append("  measure <" + ">, <".join(str(o) for o in self.observables) + ">")
        return "\n".join(lines)


def compose(
    n_qubits: int,
    blocks: Sequence[Sequence[Operation]],
    observables: Sequence[Observable] | None = None,
) -> Circuit:
    """Concatenate blocks whose parameters are numbered locally from 0 into one circuit.

    Block ``k``'s columns follow those of blocks ``0..k-1`` in the angle matrix. Observables default to
    Pauli Z on every qubit.
    """
    operations: list[Operation] = []
    offset = 0
    for block in blocks:
        block = tuple(block)
        operations += [op.renumbered(offset) for op in block]
        offset += sum(op.param is not None for op in block)
    if observables is None:
        observables = [PauliWord.z(q) for q in range(n_qubits)]
    return Circuit(n_qubits, operations, observables)
