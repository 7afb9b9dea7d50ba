"""A Qiskit ``BaseEstimatorV2`` primitive that runs on any hqf backend.

``Estimator()`` takes the place of Aer's or Qiskit's estimator wherever a primitive is expected, e.g.
Qiskit Machine Learning's ``EstimatorQNN`` + ``TorchConnector``::

    from hqf.backends.qiskit_estimator import Estimator
    qnn = EstimatorQNN(circuit=qc, estimator=Estimator(), observables=obs, input_params=x, weight_params=w,
                       default_precision=0.0)

Each pub's circuit is transpiled to the gates hqf knows, every parameterized gate becomes one angle column
whose value is its parameter expression evaluated for each row of parameter values, and all the pub's
observables are read in one backend call. Observables are Pauli sums (dense labels, little-endian as in
Qiskit: the last character acts on qubit 0); Qiskit qubit ``q`` is hqf wire ``q`` (an expectation value does
not depend on how basis indices are written). Precision 0 gives exact values; precision ``ε > 0`` adds
Gaussian noise of standard deviation ``ε`` to each value, as Aer's and Qiskit's reference estimators do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
import sympy
import torch

try:
    from qiskit import transpile
    from qiskit.circuit import ParameterExpression
    from qiskit.primitives import BaseEstimatorV2, DataBin, PrimitiveJob, PrimitiveResult, PubResult
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
except ImportError as exc:  # pragma: no cover - exercised only without Qiskit
    raise ImportError("hqf.backends.qiskit_estimator needs Qiskit: pip install 'hqf[qiskit]'") from exc

from hqf.backends.qiskit_aer import QISKIT_GATES
from hqf.errors import InvalidCircuitError
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.interfaces import Backend
from hqf.registry.make import make_backend

#: Qiskit instruction name -> hqf gate; ``p(λ)`` is ``RZ(λ)`` up to a global phase, which no expectation value
#: sees, and RZ runs on the torch backend's fastest paths
HQF_GATES = {qiskit: hqf for hqf, qiskit in QISKIT_GATES.items()} | {"p": "RZ"}
#: instructions that do not change the state an estimator reads
IGNORED = frozenset({"barrier", "delay", "id"})


@attrs.frozen
class AngleRecipe:
    """How one angle column follows from a row of the circuit's parameter values: ``offset + values @ slope``,
    or, for an expression that is not linear, ``function`` of the columns ``used``."""

    offset: float
    slope: np.ndarray | None  # [n_parameters]
    function: Any = None  # numpy function of the used parameters' columns
    used: tuple[int, ...] = ()

    def angles(self, values: np.ndarray) -> np.ndarray:
        """The column's angles for ``values[rows, n_parameters]``."""
        if self.slope is not None:
            return self.offset + values @ self.slope
        return np.broadcast_to(np.asarray(self.function(*(values[:, i] for i in self.used)), float), len(values))


def angle_recipe(value: Any, parameters: tuple) -> AngleRecipe:
    """The recipe for one gate parameter: a number, or a parameter expression in ``parameters``."""
    if not isinstance(value, ParameterExpression):
        return AngleRecipe(float(value), np.zeros(len(parameters)))
    used = value.parameters
    slope = np.zeros(len(parameters))
    for i, parameter in enumerate(parameters):
        if parameter not in used:
            continue
        derivative = value.gradient(parameter)
        if isinstance(derivative, ParameterExpression) and derivative.parameters:
            return nonlinear_recipe(value, parameters)
        slope[i] = float(derivative)
    offset = float(value.bind(dict.fromkeys(used, 0.0)))
    return AngleRecipe(offset, slope)


def nonlinear_recipe(value: Any, parameters: tuple) -> AngleRecipe:
    """A recipe that evaluates ``value`` on whole columns (through sympy, which Qiskit expressions convert to)."""
    expression = value.sympify()
    symbols = {str(symbol): symbol for symbol in expression.free_symbols}
    used = tuple(i for i, parameter in enumerate(parameters) if parameter in value.parameters)
    function = sympy.lambdify([symbols[parameters[i].name] for i in used], expression, "numpy")
    return AngleRecipe(0.0, None, function, used)


@attrs.frozen
class TranslatedCircuit:
    """A Qiskit circuit in hqf's terms: its gates (column ``k`` read by the ``k``-th parameterized gate) and the
    recipe of every column."""

    n_qubits: int
    operations: tuple[Operation, ...]
    recipes: tuple[AngleRecipe, ...]
    parameters: tuple  # the circuit's Parameters, in Qiskit's order (``QuantumCircuit.parameters``)

    def angles(self, values: np.ndarray) -> np.ndarray:
        """``angles[rows, P]`` for ``values[rows, n_parameters]``."""
        columns = [recipe.angles(values) for recipe in self.recipes]
        return np.stack(columns, axis=1) if columns else np.zeros((len(values), 0))


def translate(qc) -> TranslatedCircuit:
    """The hqf form of a ``QuantumCircuit`` without measurements (transpiled to hqf's gates when needed)."""
    if any(
        instruction.operation.name not in HQF_GATES and instruction.operation.name not in IGNORED
        for instruction in qc.data
    ):
        qc = transpile(qc, basis_gates=sorted(HQF_GATES), optimization_level=0)
    parameters = tuple(qc.parameters)
    operations, recipes = [], []
    for instruction in qc.data:
        name = instruction.operation.name
        if name in IGNORED:
            continue
        if name not in HQF_GATES:
            raise InvalidCircuitError(f"an estimator circuit holds gates only; got {name!r}")
        wires = tuple(qc.find_bit(qubit).index for qubit in instruction.qubits)
        gate = HQF_GATES[name]
        if instruction.operation.params:
            operations.append(Operation(gate, wires, len(recipes)))
            recipes.append(angle_recipe(instruction.operation.params[0], parameters))
        else:
            operations.append(Operation(gate, wires))
    return TranslatedCircuit(qc.num_qubits, tuple(operations), tuple(recipes), parameters)


def pauli_sum(terms: dict[str, complex]) -> tuple[float, list[tuple[float, PauliWord]]]:
    """A Qiskit Pauli sum ``{label: coefficient}`` (Hermitian: real coefficients, as Qiskit's pubs check) as its
    identity part and its other terms as hqf Pauli words."""
    constant, words = 0.0, []
    for label, coefficient in terms.items():
        factors = [(q, p) for q, p in enumerate(reversed(label)) if p != "I"]
        if factors:
            words.append((float(complex(coefficient).real), PauliWord(factors)))
        else:
            constant += float(complex(coefficient).real)
    return constant, words


#: how many distinct circuits an estimator keeps translated
CACHED_CIRCUITS = 64


def circuit_key(qc) -> tuple:
    """A circuit's structure: equal keys translate to the same hqf circuit and angle recipes."""
    instructions = tuple(
        (
            instruction.operation.name,
            tuple(qc.find_bit(qubit).index for qubit in instruction.qubits),
            tuple(str(param) for param in instruction.operation.params),
        )
        for instruction in qc.data
    )
    return qc.num_qubits, instructions, tuple(parameter.name for parameter in qc.parameters)


def observable_key(terms: dict[str, complex]) -> tuple:
    return tuple(sorted((label, complex(c)) for label, c in terms.items()))


class Estimator(BaseEstimatorV2):
    """Qiskit's ``EstimatorV2`` interface on an hqf backend (``"torch"`` by default, float64). Pubs that share a
    circuit run in one backend call, whatever their observables and parameter values."""

    def __init__(
        self,
        backend: str | Backend = "torch",
        *,
        default_precision: float = 0.0,
        seed: int | None = None,
        **backend_options: Any,
    ) -> None:
        self.backend = make_backend(backend, **backend_options) if isinstance(backend, str) else backend
        self.default_precision = float(default_precision)
        self._rng = np.random.default_rng(seed)
        self._translations: OrderedDict[tuple, TranslatedCircuit] = OrderedDict()

    def run(self, pubs: Iterable, *, precision: float | None = None) -> PrimitiveJob:
        """Expectation values of each pub ``(circuit, observables[, parameter values[, precision]])``."""
        chosen = self.default_precision if precision is None else precision
        coerced = [EstimatorPub.coerce(pub, chosen) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def translation(self, qc) -> TranslatedCircuit:
        """The hqf form of ``qc``, translated once per distinct circuit."""
        key = circuit_key(qc)
        if key in self._translations:
            self._translations.move_to_end(key)
        else:
            self._translations[key] = translate(qc)
            if len(self._translations) > CACHED_CIRCUITS:
                self._translations.popitem(last=False)
        return self._translations[key]

    def _run(self, pubs: list) -> PrimitiveResult:
        by_object: dict[int, TranslatedCircuit] = {}  # a circuit cannot change during one call
        translations = [
            by_object.get(id(pub.circuit)) or by_object.setdefault(id(pub.circuit), self.translation(pub.circuit))
            for pub in pubs
        ]
        groups: dict[int, list[int]] = {}
        for i, translated in enumerate(translations):
            groups.setdefault(id(translated), []).append(i)
        results: list = [None] * len(pubs)
        for members in groups.values():
            for i, evs in zip(
                members, self._evaluate(translations[members[0]], [pubs[i] for i in members]), strict=True
            ):
                results[i] = self._result(pubs[i], evs)
        return PrimitiveResult(results, metadata={"version": 2})

    def _evaluate(self, translated: TranslatedCircuit, pubs: list) -> list[np.ndarray]:
        """Every pub's expectation values (broadcast to the pub's shape), from one backend call."""
        n_parameters = len(translated.parameters)
        rows = [
            pub.parameter_values.as_array(translated.parameters).reshape(pub.parameter_values.size, n_parameters)
            for pub in pubs
        ]
        distinct: dict[tuple, int] = {}
        pub_observables = []
        for pub in pubs:
            ids = [distinct.setdefault(observable_key(terms), len(distinct)) for terms in pub.observables.ravel()]
            pub_observables.append(np.array(ids, dtype=int))
        parts = [pauli_sum(dict(key)) for key in distinct]
        words: dict[PauliWord, int] = {}
        for _, terms in parts:
            for _, word in terms:
                words.setdefault(word, len(words))
        coefficients = np.zeros((len(words), len(parts)))  # observable j = constant_j + Σ_w c[w, j] <w>
        for j, (_, terms) in enumerate(parts):
            for c, word in terms:
                coefficients[words[word], j] += c
        all_rows = np.concatenate(rows)
        values = np.tile(np.array([constant for constant, _ in parts]), (len(all_rows), 1))
        if words:
            circuit = Circuit(translated.n_qubits, translated.operations, list(words))
            angles = torch.as_tensor(translated.angles(all_rows), dtype=torch.float64)
            with torch.no_grad():
                values += self.backend.expval(circuit, angles).cpu().numpy() @ coefficients
        out, start = [], 0
        for pub, pub_rows, ids in zip(pubs, rows, pub_observables, strict=True):
            block = values[start : start + len(pub_rows)][:, ids]
            start += len(pub_rows)
            row_index = np.arange(len(pub_rows)).reshape(pub.parameter_values.shape)
            obs_index = np.arange(len(ids)).reshape(pub.observables.shape)
            row_b, obs_b = np.broadcast_arrays(row_index, obs_index)
            out.append(block[row_b, obs_b])
        return out

    def _result(self, pub, evs: np.ndarray) -> PubResult:
        if pub.precision > 0:
            evs = self._rng.normal(evs, pub.precision)
        stds = np.full(evs.shape, pub.precision)
        return PubResult(
            DataBin(evs=evs, stds=stds, shape=evs.shape),
            metadata={"target_precision": pub.precision, "backend": type(self.backend).__name__},
        )
