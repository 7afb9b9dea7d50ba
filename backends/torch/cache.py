"""What one torch backend keeps between calls: one :class:`Cache` per instance, every part with its key
and its bound.

- **compiled circuits** (:meth:`Cache.compiled`): by circuit identity (``id``, with the circuit held so
  that its id is not reused), at most ``MAX_COMPILED`` (all dropped when full). Each holds its plan,
  the plan's tables on the backend's dtype and device, its observables' Pauli actions, and the memo of
  its constant runs' matrices (one :class:`~hqf.backends.torch.steps.StepOperands` per step at most,
  replaced whenever that run's angles change);
- **frozen-weight matrices** (:meth:`Cache.frozen_matrix`): by circuit identity, at most
  ``MAX_FROZEN``; each entry holds the frozen angles last seen and the matrix built for them once they
  came twice in a row;
- **the last pass's prefix** (:attr:`Cache.prefix`): one :class:`Prefix` at most, the states entering
  each step of the last pass without autograd (at most the backend's ``prefix_mib``), from which the
  next pass resumes where its angles agree.

Hashing a circuit walks all its operations (~14 µs for hea8x6, which matters at batch 1): lookups go by
identity first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
import torch

from hqf.backends.torch.measure import pauli_actions
from hqf.backends.torch.plan import PlanTables, StepPlan, compile_plan, lower
from hqf.backends.torch.settings import Settings
from hqf.backends.torch.steps import StepOperands
from hqf.quantum.circuit import Circuit

#: compiled circuits kept per backend
MAX_COMPILED = 64
#: circuits whose frozen-weight matrix is kept per backend
MAX_FROZEN = 8

Matrix = TypeVar("Matrix")


@attrs.frozen(eq=False)
class CompiledCircuit:
    """A circuit ready to run on one backend: its plan, the plan's tables, the Pauli actions of its
    non-Z observables, and ``operands``, the memo :func:`~hqf.backends.torch.steps.run` keeps of
    its constant runs (step index → the matrices last built)."""

    circuit: Circuit
    plan: StepPlan
    tables: PlanTables
    actions: tuple
    operands: dict[int, StepOperands] = attrs.field(factory=dict)


@attrs.define(eq=False)
class FrozenEntry:
    """The frozen angles last seen for ``circuit``, and the matrix once built for them."""

    circuit: Circuit
    key: torch.Tensor
    matrix: object | None = None


@attrs.frozen(eq=False)
class Prefix:
    """The last pass without autograd: its plan, a copy of its angles, the state entering each step
    ``k`` (``states[k]``; ``states[len(steps)]`` is the final state) and the columns that were
    constant over its rows."""

    plan: StepPlan
    angles: torch.Tensor
    states: dict[int, torch.Tensor]
    constant: frozenset[int]


class Cache:
    """The per-instance cache of a :class:`~hqf.backends.torch.TorchBackend` (see the module docstring)."""

    def __init__(self) -> None:
        self._compiled: dict[int, CompiledCircuit] = {}
        self._frozen: dict[int, FrozenEntry] = {}
        #: the last pass without autograd, or ``None`` (none yet, or its states did not fit the budget)
        self.prefix: Prefix | None = None

    def compiled(self, circuit: Circuit, settings: Settings) -> CompiledCircuit:
        """The :class:`CompiledCircuit` form of ``circuit`` for ``settings`` (built on first use; the
        settings' block, dtype and device do not change for one instance)."""
        found = self._compiled.get(id(circuit))
        if found is not None and found.circuit is circuit:
            return found
        plan = compile_plan(circuit, settings.block)
        dtype, device = settings.complex_dtype, settings.device
        found = CompiledCircuit(circuit, plan, lower(plan, dtype, device), pauli_actions(circuit, dtype, device))
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.clear()
        self._compiled[id(circuit)] = found
        return found

    def frozen_matrix(self, circuit: Circuit, key: torch.Tensor, build: Callable[[], Matrix]) -> Matrix | None:
        """The matrix ``build()`` made for ``circuit`` at the frozen angles ``key``: ``None`` when the
        call before saw other angles (``key`` is remembered), built when the same ``key`` comes the
        second time in a row, then reused while it stays equal."""
        entry = self._frozen.get(id(circuit))
        if entry is None or entry.circuit is not circuit or not torch.equal(entry.key, key):
            if len(self._frozen) >= MAX_FROZEN:
                self._frozen.clear()
            self._frozen[id(circuit)] = FrozenEntry(circuit, key.clone())
            return None
        if entry.matrix is None:
            entry.matrix = build()
        return entry.matrix
