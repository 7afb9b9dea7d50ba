"""Noise as a value: one-qubit channels, where they act, and readout error, apart from any simulator.

A :class:`Channel` is a one-qubit completely positive trace-preserving map; its :meth:`Channel.kraus` is
the single source of truth for what it does (``Σ K†K = 1``), and every backend and the reference read
it (the Kraus operators, the parameters and the mapping to PennyLane and Qiskit Aer: docs/noise.md).

A :class:`NoiseModel` is an ordered tuple of :class:`Rule` (a channel, the gates it follows and the
wires it hits; ``None`` means all) and readout errors. After each gate ``op`` of a circuit,
:meth:`NoiseModel.after` lists the ``(wire, channel)`` pairs applied: for each rule in order whose
gate filter admits ``op.gate``, the channel on each wire of ``op.wires`` the rule's wire filter admits.
Readout error is a per-wire confusion matrix applied to each measured bit (:class:`ReadoutError`).

hqf's original gate noise is :meth:`NoiseModel.depolarizing`: after every gate, each wire it acts on
goes through ``D_p(ρ) = (1 − p) ρ + (p/3) (XρX + YρY + ZρZ)``; PennyLane's
``qml.DepolarizingChannel(p)`` is ``D_p`` and Qiskit's ``depolarizing_error(λ, 1)`` is ``D_p`` at
``λ = 4p/3`` (:func:`qiskit_lambda`).
"""

from __future__ import annotations

import abc
import difflib
import math
from collections.abc import Iterable
from typing import ClassVar

import attrs
import numpy as np

from hqf.quantum.circuit import GATES, Circuit, Operation

#: the channel names, in the order docs/noise.md lists them
CHANNELS = (
    "depolarizing",
    "bit_flip",
    "phase_flip",
    "pauli",
    "amplitude_damping",
    "phase_damping",
    "thermal_relaxation",
)
#: what a backend may declare it runs (``Capabilities.channels``): the channels and ``readout``
NOISE_FEATURES = CHANNELS + ("readout",)

IDENTITY = np.eye(2, dtype=np.complex128)
PAULI_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
PAULI_Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
PAULI_Z = np.array([[1, 0], [0, -1]], dtype=np.complex128)


def check_probability(p: float, name: str = "depolarizing") -> float:
    """``p`` as a float; raises ``ValueError`` naming ``name`` unless ``0 ≤ p ≤ 1``."""
    p = float(p)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise ValueError(f"'{name}' must be a probability in [0, 1] (got {p})")
    return p


def check_scale(factor: float) -> float:
    """``factor`` as a float; raises ``ValueError`` unless it is a finite number ``>= 0``."""
    factor = float(factor)
    if not 0 <= factor < math.inf:
        raise ValueError(f"a noise scale factor must be a finite number >= 0 (got {factor})")
    return factor


def qiskit_lambda(p: float) -> float:
    """The ``λ`` of ``qiskit_aer.noise.depolarizing_error(λ, 1)`` for hqf's ``p``: ``4p/3``."""
    return 4.0 * check_probability(p) / 3.0


def superoperator(kraus: Iterable[np.ndarray]) -> np.ndarray:
    """``Σ K ⊗ K*`` (4×4): the channel on a row-major flattened ``ρ`` (``vec(KρK†) = (K ⊗ K*) vec(ρ)``);
    reshaped to ``[2, 2, 2, 2]`` it is indexed ``(i', j', i, j)``: ``ρ'[i', j'] = Σ S[i', j', i, j] ρ[i, j]``."""
    return sum(np.kron(k, k.conj()) for k in kraus)


def _probability(instance, attribute, value) -> None:
    check_probability(value, f"{getattr(type(instance), 'name', 'readout')} {attribute.name}")


def _pauli_mixture(px: float, py: float, pz: float) -> tuple[np.ndarray, ...]:
    """``√(1−px−py−pz) 1, √px X, √py Y, √pz Z``."""
    identity = max(0.0, 1.0 - px - py - pz)
    return tuple(math.sqrt(w) * m for w, m in ((identity, IDENTITY), (px, PAULI_X), (py, PAULI_Y), (pz, PAULI_Z)))


@attrs.frozen
class Channel(abc.ABC):
    """A one-qubit noise channel; subclasses set :attr:`name` and hold their parameters as fields."""

    #: one of :data:`CHANNELS`
    name: ClassVar[str]

    @abc.abstractmethod
    def kraus(self) -> tuple[np.ndarray, ...]:
        """The Kraus operators (2×2 complex128, ``Σ K†K = 1``)."""

    def pauli_probabilities(self) -> tuple[float, float, float] | None:
        """``(px, py, pz)`` when the channel is ``ρ → (1 − Σp) ρ + px XρX + py YρY + pz ZρZ``, else None."""
        return None

    def superoperator(self) -> np.ndarray:
        """The 4×4 superoperator of :func:`superoperator`."""
        return superoperator(self.kraus())

    @property
    def is_identity(self) -> bool:
        """True when the channel leaves every state as it is (a probability or a gate time of 0)."""
        return bool(np.array_equal(self.superoperator(), np.eye(4)))

    @property
    def parameters(self) -> dict[str, float]:
        """The parameters by name, in order."""
        return attrs.asdict(self)

    def scaled(self, factor: float) -> Channel:
        """The channel with its noise strength multiplied by ``factor`` (every parameter here; a
        probability pushed past its range is a one-line ``ValueError`` naming the channel and ``factor``)."""
        factor = check_scale(factor)
        try:
            return attrs.evolve(self, **{key: factor * value for key, value in self.parameters.items()})
        except ValueError as error:
            raise ValueError(f"'{self.name}' scaled by {factor!r} leaves its range: {error}") from None

    def __str__(self) -> str:
        return f"{self.name}={':'.join(repr(v) for v in self.parameters.values())}"


@attrs.frozen
class Depolarizing(Channel):
    """``(1 − p) ρ + (p/3)(XρX + YρY + ZρZ)``: one of the three Pauli errors with probability ``p``."""

    name: ClassVar[str] = "depolarizing"
    p: float = attrs.field(converter=float, validator=_probability)

    def kraus(self) -> tuple[np.ndarray, ...]:
        return _pauli_mixture(self.p / 3, self.p / 3, self.p / 3)

    def pauli_probabilities(self) -> tuple[float, float, float]:
        return (self.p / 3, self.p / 3, self.p / 3)


@attrs.frozen
class BitFlip(Channel):
    """``(1 − p) ρ + p XρX``."""

    name: ClassVar[str] = "bit_flip"
    p: float = attrs.field(converter=float, validator=_probability)

    def kraus(self) -> tuple[np.ndarray, ...]:
        return _pauli_mixture(self.p, 0.0, 0.0)[:2]

    def pauli_probabilities(self) -> tuple[float, float, float]:
        return (self.p, 0.0, 0.0)


@attrs.frozen
class PhaseFlip(Channel):
    """``(1 − p) ρ + p ZρZ``."""

    name: ClassVar[str] = "phase_flip"
    p: float = attrs.field(converter=float, validator=_probability)

    def kraus(self) -> tuple[np.ndarray, ...]:
        identity, _, _, z = _pauli_mixture(0.0, 0.0, self.p)
        return (identity, z)

    def pauli_probabilities(self) -> tuple[float, float, float]:
        return (0.0, 0.0, self.p)


@attrs.frozen
class Pauli(Channel):
    """``(1 − px − py − pz) ρ + px XρX + py YρY + pz ZρZ``."""

    name: ClassVar[str] = "pauli"
    px: float = attrs.field(converter=float, validator=_probability)
    py: float = attrs.field(converter=float, validator=_probability)
    pz: float = attrs.field(converter=float, validator=_probability)

    def __attrs_post_init__(self) -> None:
        if self.px + self.py + self.pz > 1.0:
            raise ValueError(f"'pauli' needs px + py + pz <= 1 (got {self.px} + {self.py} + {self.pz})")

    def kraus(self) -> tuple[np.ndarray, ...]:
        return _pauli_mixture(self.px, self.py, self.pz)

    def pauli_probabilities(self) -> tuple[float, float, float]:
        return (self.px, self.py, self.pz)


@attrs.frozen
class AmplitudeDamping(Channel):
    """Energy loss towards ``|0⟩`` with probability ``gamma``: ``K0 = [[1, 0], [0, √(1−γ)]]``,
    ``K1 = [[0, √γ], [0, 0]]``."""

    name: ClassVar[str] = "amplitude_damping"
    gamma: float = attrs.field(converter=float, validator=_probability)

    def kraus(self) -> tuple[np.ndarray, ...]:
        k0 = np.array([[1, 0], [0, math.sqrt(1 - self.gamma)]], dtype=np.complex128)
        k1 = np.array([[0, math.sqrt(self.gamma)], [0, 0]], dtype=np.complex128)
        return (k0, k1)


@attrs.frozen
class PhaseDamping(Channel):
    """Loss of coherence without energy loss: ``K0 = [[1, 0], [0, √(1−λ)]]``, ``K1 = [[0, 0], [0, √λ]]``
    (the off-diagonal of ``ρ`` shrinks by ``√(1−λ)``)."""

    name: ClassVar[str] = "phase_damping"
    lam: float = attrs.field(converter=float, validator=_probability)

    def kraus(self) -> tuple[np.ndarray, ...]:
        k0 = np.array([[1, 0], [0, math.sqrt(1 - self.lam)]], dtype=np.complex128)
        k1 = np.array([[0, 0], [0, math.sqrt(self.lam)]], dtype=np.complex128)
        return (k0, k1)


def _positive_time(instance, attribute, value) -> None:
    if not value > 0:  # also refuses NaN
        raise ValueError(f"'{attribute.name}' must be > 0 (got {value})")


def _gate_time(instance, attribute, value) -> None:
    if not 0 <= value < math.inf:
        raise ValueError(f"'{attribute.name}' must be a finite time >= 0 (got {value})")


@attrs.frozen
class ThermalRelaxation(Channel):
    """Qiskit's thermal relaxation towards ``|0⟩`` (excited-state population 0) for a gate of duration
    ``time``: with ``a = exp(−time/t1)`` and ``c = exp(−time/t2)``, ``ρ11 → a ρ11``, ``ρ01 → c ρ01``;
    Kraus ``[[1, 0], [0, c]]``, ``[[0, √(1−a)], [0, 0]]``, ``[[0, 0], [0, √(a − c²)]]``, which needs
    ``t2 ≤ 2·t1``. ``t1`` or ``t2`` may be ``inf``; the three share one time unit."""

    name: ClassVar[str] = "thermal_relaxation"
    t1: float = attrs.field(converter=float, validator=_positive_time)
    t2: float = attrs.field(converter=float, validator=_positive_time)
    time: float = attrs.field(converter=float, validator=_gate_time)

    def __attrs_post_init__(self) -> None:
        if self.t2 > 2 * self.t1:
            raise ValueError(f"'thermal_relaxation' needs t2 <= 2 * t1 (got t1={self.t1}, t2={self.t2})")

    def scaled(self, factor: float) -> ThermalRelaxation:
        """The same ``t1`` and ``t2`` for a gate ``factor`` times as long."""
        return attrs.evolve(self, time=check_scale(factor) * self.time)

    def kraus(self) -> tuple[np.ndarray, ...]:
        a, c = math.exp(-self.time / self.t1), math.exp(-self.time / self.t2)
        k0 = np.array([[1, 0], [0, c]], dtype=np.complex128)
        k1 = np.array([[0, math.sqrt(1 - a)], [0, 0]], dtype=np.complex128)
        k2 = np.array([[0, 0], [0, math.sqrt(max(0.0, a - c * c))]], dtype=np.complex128)
        return (k0, k1, k2)


def depolarizing(p: float) -> Depolarizing:
    """:class:`Depolarizing` ``D_p``."""
    return Depolarizing(p)


def bit_flip(p: float) -> BitFlip:
    """:class:`BitFlip` with probability ``p``."""
    return BitFlip(p)


def phase_flip(p: float) -> PhaseFlip:
    """:class:`PhaseFlip` with probability ``p``."""
    return PhaseFlip(p)


def pauli(px: float, py: float, pz: float) -> Pauli:
    """:class:`Pauli` with the probabilities of X, Y and Z."""
    return Pauli(px, py, pz)


def amplitude_damping(gamma: float) -> AmplitudeDamping:
    """:class:`AmplitudeDamping` with decay probability ``gamma``."""
    return AmplitudeDamping(gamma)


def phase_damping(lam: float) -> PhaseDamping:
    """:class:`PhaseDamping` with parameter ``lam``."""
    return PhaseDamping(lam)


def thermal_relaxation(t1: float, t2: float, time: float) -> ThermalRelaxation:
    """:class:`ThermalRelaxation` for relaxation times ``t1``, ``t2`` and a gate of duration ``time``."""
    return ThermalRelaxation(t1, t2, time)


#: channel name -> its class
CHANNEL_TYPES: dict[str, type[Channel]] = {
    cls.name: cls
    for cls in (Depolarizing, BitFlip, PhaseFlip, Pauli, AmplitudeDamping, PhaseDamping, ThermalRelaxation)
}


def _gate_names(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = frozenset([value] if isinstance(value, str) else value)
    unknown = sorted(names - set(GATES))
    if unknown:
        raise ValueError(f"'gates' must name gates of hqf.quantum.circuit.GATES (got {unknown})")
    return names


def _wire_set(value: Iterable[int] | int | None) -> frozenset[int] | None:
    if value is None:
        return None
    wires = frozenset([value] if isinstance(value, int) else value)
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in wires):
        raise ValueError(f"'wires' must be integers >= 0 (got {sorted(wires, key=str)})")
    return wires


@attrs.frozen
class Rule:
    """``channel`` after each gate named in ``gates``, on each of its wires in ``wires`` (None: all)."""

    channel: Channel = attrs.field(validator=attrs.validators.instance_of(Channel))
    gates: frozenset[str] | None = attrs.field(default=None, converter=_gate_names)
    wires: frozenset[int] | None = attrs.field(default=None, converter=_wire_set)

    def admits(self, op: Operation) -> tuple[int, ...]:
        """The wires of ``op`` this rule's channel hits after it (none when ``op.gate`` is filtered out)."""
        if self.gates is not None and op.gate not in self.gates:
            return ()
        return tuple(w for w in op.wires if self.wires is None or w in self.wires)


@attrs.frozen
class ReadoutError:
    """Each measured bit of a wire in ``wires`` (None: all) reads wrong: 1 for a true 0 with probability
    ``p1_given_0``, 0 for a true 1 with probability ``p0_given_1``."""

    p1_given_0: float = attrs.field(converter=float, validator=_probability)
    p0_given_1: float = attrs.field(converter=float, validator=_probability)
    wires: frozenset[int] | None = attrs.field(default=None, converter=_wire_set)

    def confusion(self) -> np.ndarray:
        """``M[read, true]`` (2×2, columns sum to 1): the read distribution is ``M @ true distribution``."""
        e0, e1 = self.p1_given_0, self.p0_given_1
        return np.array([[1 - e0, e1], [e0, 1 - e1]])

    @property
    def is_identity(self) -> bool:
        """True when no bit is ever misread."""
        return self.p1_given_0 == 0 and self.p0_given_1 == 0


def _rules(value: Iterable) -> tuple[Rule, ...]:
    return tuple(r if isinstance(r, Rule) else Rule(*r) for r in value)


def _readouts(value: Iterable) -> tuple[ReadoutError, ...]:
    return tuple(r if isinstance(r, ReadoutError) else ReadoutError(*r) for r in value)


@attrs.frozen
class NoiseModel:
    """Channels after gates (:attr:`rules`, applied in order) and readout error (:attr:`readout`).

    Example:
        >>> model = NoiseModel.parse("depolarizing=0.02,amplitude_damping=0.01,readout=0.03")
        >>> [(w, c.name) for w, c in model.after(Operation("CNOT", (0, 1)))]
        [(0, 'depolarizing'), (1, 'depolarizing'), (0, 'amplitude_damping'), (1, 'amplitude_damping')]
        >>> model.confusion(3).tolist()
        [[0.97, 0.03], [0.03, 0.97]]
    """

    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_rules)
    #: readout errors; for each wire the last one that admits it applies
    readout: tuple[ReadoutError, ...] = attrs.field(default=(), converter=_readouts)

    @classmethod
    def depolarizing(cls, p: float) -> NoiseModel:
        """hqf's gate noise: ``D_p`` after every gate on each wire it acts on."""
        return cls((Rule(Depolarizing(p)),))

    @classmethod
    def parse(cls, text: str) -> NoiseModel:
        """A model from ``"name=value,…"``: each channel of :data:`CHANNELS` after every gate on each of its
        wires, in the order given, and ``readout=p`` (both directions) or ``readout=p1_given_0:p0_given_1``
        on every wire. A channel of several parameters separates them by ``:`` (``pauli=0.01:0:0.02``,
        ``thermal_relaxation=t1:t2:time``). An empty text or ``none`` is the noiseless model.

        Raises:
            ValueError: in one line, naming the bad item and the accepted names.
        """
        model = cls()
        if text.strip().lower() in ("", "none"):
            return model
        accepted = NOISE_FEATURES
        seen = set()
        for item in text.split(","):
            name, _, value = (part.strip() for part in item.partition("="))
            if name not in accepted:
                close = difflib.get_close_matches(name, accepted, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown noise item {item.strip()!r} (accepted: {', '.join(accepted)}){hint}")
            if name in seen:
                raise ValueError(f"noise item {name!r} is given twice")
            seen.add(name)
            try:
                numbers = [float(v) for v in value.split(":")]
                if name == "readout":
                    if len(numbers) > 2:
                        raise TypeError("too many values")
                    model = model.with_readout(*numbers)
                else:
                    model = model.with_channel(CHANNEL_TYPES[name](*numbers))
            except (TypeError, ValueError) as error:
                raise ValueError(f"noise item {item.strip()!r}: {_reason(error, name)}") from None
        return model

    def with_channel(
        self, channel: Channel, gates: Iterable[str] | str | None = None, wires: Iterable[int] | int | None = None
    ) -> NoiseModel:
        """This model and ``channel`` after the gates named in ``gates`` on their wires in ``wires``."""
        return attrs.evolve(self, rules=self.rules + (Rule(channel, gates, wires),))

    def with_readout(
        self, p1_given_0: float, p0_given_1: float | None = None, wires: Iterable[int] | int | None = None
    ) -> NoiseModel:
        """This model and a readout error on ``wires`` (None: all); ``p0_given_1`` defaults to ``p1_given_0``."""
        p0_given_1 = p1_given_0 if p0_given_1 is None else p0_given_1
        return attrs.evolve(self, readout=self.readout + (ReadoutError(p1_given_0, p0_given_1, wires),))

    def scaled(self, factor: float) -> NoiseModel:
        """The same rules with every channel's strength multiplied by ``factor`` (:meth:`Channel.scaled`:
        ``p``, ``γ``, ``λ`` times ``factor``; thermal relaxation's gate time times ``factor``); the readout
        error unchanged. Zero-noise extrapolation's ``channel`` scaling (:mod:`hqf.quantum.mitigation`).

        Raises:
            ValueError: ``factor`` is negative or not finite, or pushes a probability past its range.
        """
        factor = check_scale(factor)
        return attrs.evolve(self, rules=tuple(attrs.evolve(r, channel=r.channel.scaled(factor)) for r in self.rules))

    def after(self, op: Operation) -> tuple[tuple[int, Channel], ...]:
        """The ``(wire, channel)`` pairs applied right after ``op``, in order."""
        return tuple((wire, rule.channel) for rule in self.rules for wire in rule.admits(op))

    def confusion(self, wire: int) -> np.ndarray | None:
        """``M[read, true]`` of ``wire`` (:meth:`ReadoutError.confusion`), or None when it reads exactly."""
        for error in reversed(self.readout):
            if error.wires is None or wire in error.wires:
                return None if error.is_identity else error.confusion()
        return None

    def count(self, circuit: Circuit) -> int:
        """How many one-qubit channels the model inserts into ``circuit``."""
        return sum(len(self.after(op)) for op in circuit.operations)

    @property
    def channel_names(self) -> frozenset[str]:
        """The names of the channels the rules use."""
        return frozenset(rule.channel.name for rule in self.rules)

    @property
    def features(self) -> frozenset[str]:
        """:attr:`channel_names`, and ``readout`` when a readout error is set: what a backend must run."""
        return self.channel_names | ({"readout"} if self.readout else set())

    @property
    def has_readout(self) -> bool:
        """True when some wire may be misread."""
        return any(not error.is_identity for error in self.readout)

    @property
    def is_noiseless(self) -> bool:
        """True when every channel is the identity and no bit is misread."""
        return all(rule.channel.is_identity for rule in self.rules) and not self.has_readout

    def require(self, backend: str, runs: frozenset[str]) -> None:
        """Raise ``ValueError`` in one line unless ``runs`` (a backend's ``Capabilities.channels``) holds
        every channel the model uses, and ``readout`` when it sets a readout error."""
        missing = sorted(self.features - runs)
        if missing:
            listed = ", ".join(sorted(runs)) or "none"
            raise ValueError(f"backend {backend!r} does not run noise {', '.join(missing)} (it runs: {listed})")

    def __str__(self) -> str:
        parts = [str(rule.channel) if rule.gates is None and rule.wires is None else repr(rule) for rule in self.rules]
        for error in self.readout:
            text = f"readout={error.p1_given_0!r}:{error.p0_given_1!r}"
            parts.append(text if error.wires is None else repr(error))
        return ",".join(parts) or "none"


def _reason(error: Exception, name: str) -> str:
    if isinstance(error, TypeError):
        fields = (
            "p1_given_0[:p0_given_1]"
            if name == "readout"
            else ":".join(f.name for f in attrs.fields(CHANNEL_TYPES[name]))
        )
        return f"expected {name}={fields}"
    return str(error)


def noise_model(noise: NoiseModel | str | None = None, depolarizing: float = 0.0) -> NoiseModel:
    """A noisy backend's model from its options: ``noise`` (a model, or a text for :meth:`NoiseModel.parse`),
    or ``depolarizing=p`` as shorthand for :meth:`NoiseModel.depolarizing`; not both."""
    p = check_probability(depolarizing)
    if noise is None:
        return NoiseModel.depolarizing(p) if p > 0 else NoiseModel()
    if p > 0:
        raise ValueError("give either 'noise' or 'depolarizing', not both")
    if isinstance(noise, str):
        return NoiseModel.parse(noise)
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"'noise' must be a NoiseModel or a text such as 'depolarizing=0.02' (got {noise!r})")
    return noise


def count_channels(circuit: Circuit, model: NoiseModel | None = None) -> int:
    """How many one-qubit channels ``model`` (default: the depolarizing model) inserts into ``circuit``."""
    return (model or NoiseModel.depolarizing(0.0)).count(circuit)
