"""hqf: hybrid quantum-classical machine learning.

Four layers, each a subpackage that may import only the ones before it:

- :mod:`hqf.quantum`: the circuit description, gate maths, the noise model, the ``Backend``, ``Encoder``
  and ``Ansatz`` interfaces, and differentiable expectation values on any backend;
- :mod:`hqf.registry`: the plugin hooks and registry, ``make_*`` by name, ansatz specs, and the learning
  plugins' contracts;
- :mod:`hqf.learn`: configuration, data, the hybrid model, training, metrics and run directories;
- :mod:`hqf.studies`: sweeps, reports, statistics, scaling studies and benchmarks;

with :mod:`hqf.cli` (the ``hqf`` command) and :mod:`hqf.testing` (the conformance suite and its
reference simulator) on top. Importing hqf loads no plugin.
"""

from hqf.registry.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
