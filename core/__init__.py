"""hqf: hybrid quantum-classical machine learning.

The names a user needs are here, imported on first use (``import hqf`` loads neither torch nor a plugin);
docs/api.md shows them together:

- circuits: :class:`Circuit`, :class:`Operation`, :class:`PauliWord`, :class:`Hamiltonian`, :class:`Probs`,
  :func:`compose`, and :func:`X`, :func:`Y`, :func:`Z`, :func:`I` for observables written as
  ``0.5 * Z(0) @ Z(1) + X(2) + 1``; :class:`UserCircuit` for shared columns, fixed angles, constant terms and
  :class:`Var` (a Pauli word's or a Hamiltonian's variance);
- on a backend: :func:`make_backend`, :func:`expval` (differentiable expectation values), :func:`state`,
  :func:`density_matrix`, :func:`sample`, :func:`counts` (read-outs as ``qml.state`` and its kin),
  :class:`QuantumLayer` (encoder → ansatz → backend as a ``torch.nn.Module``), :func:`make_encoder`,
  :func:`make_ansatz`;
- noise: :class:`NoiseModel`, :func:`noise_model`;
- runs: :class:`RunConfig`, :func:`run` (what ``hqf run`` does), :func:`load` (a finished run's model);
- :class:`HqfError`, the base of every error a user can cause; :data:`hookimpl` for plugins.

Four layers, each a subpackage that may import only the ones before it:

- :mod:`hqf.quantum`: the circuit description, gate maths, the noise model, the ``Backend``, ``Encoder``
  and ``Ansatz`` interfaces, and differentiable expectation values on any backend;
- :mod:`hqf.registry`: the plugin hooks and registry, ``make_*`` by name, ansatz specs, and the learning
  plugins' contracts;
- :mod:`hqf.learn`: configuration, data, the hybrid model, training, metrics and run directories;
- :mod:`hqf.studies`: sweeps, reports, statistics, scaling studies and benchmarks;

with :mod:`hqf.cli` (the ``hqf`` command) and :mod:`hqf.testing` (the conformance suite and its
reference simulator) on top.
"""

from __future__ import annotations

import importlib

from hqf.registry.hookspecs import hookimpl

__version__ = "0.1.0"

#: public name -> the module it is defined in; imported on first access (PEP 562), so ``import hqf`` stays light
PUBLIC: dict[str, str] = {
    "Circuit": "hqf.quantum.circuit",
    "Operation": "hqf.quantum.circuit",
    "PauliWord": "hqf.quantum.circuit",
    "Hamiltonian": "hqf.quantum.circuit",
    "Probs": "hqf.quantum.circuit",
    "compose": "hqf.quantum.circuit",
    "X": "hqf.quantum.circuit",
    "Y": "hqf.quantum.circuit",
    "Z": "hqf.quantum.circuit",
    "I": "hqf.quantum.circuit",
    "Var": "hqf.quantum.circuit",
    "UserCircuit": "hqf.quantum.lowering",
    "expval": "hqf.quantum.gradients",
    "state": "hqf.quantum.readouts",
    "density_matrix": "hqf.quantum.readouts",
    "sample": "hqf.quantum.readouts",
    "counts": "hqf.quantum.readouts",
    "QuantumLayer": "hqf.quantum.layer",
    "NoiseModel": "hqf.quantum.noise",
    "noise_model": "hqf.quantum.noise",
    "make_backend": "hqf.registry.make",
    "make_encoder": "hqf.registry.make",
    "make_ansatz": "hqf.registry.make",
    "RunConfig": "hqf.learn.config",
    "run": "hqf.learn.experiment",
    "load": "hqf.learn.rundir.saved",
    "HqfError": "hqf.errors",
}

__all__ = ["__version__", "hookimpl", *PUBLIC]


def __getattr__(name: str):
    """A public name of :data:`PUBLIC`, imported from its module the first time it is asked for."""
    if name not in PUBLIC:
        raise AttributeError(f"module 'hqf' has no attribute {name!r}")
    value = getattr(importlib.import_module(PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *PUBLIC})
