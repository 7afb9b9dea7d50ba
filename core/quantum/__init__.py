"""The quantum kernel: the circuit description, the gate maths, the noise model, the ``Backend``,
``Encoder`` and ``Ansatz`` interfaces, differentiable expectation values on any backend, and the
``QuantumLayer`` module.

It imports nothing from :mod:`hqf.registry`, :mod:`hqf.learn`, :mod:`hqf.studies` or :mod:`hqf.cli`, and
names no backend or plugin (checked by import-linter: ``lint-imports``).
"""
