"""The plugin layer: the hooks (pluggy), the registry that loads plugins through the ``hqf`` entry-point
group, ``make_*`` (the one way to build a plugin by name), ansatz specs, and the learning plugins'
contracts (``Fusion``, ``Regularizer``, ``Baseline``, ``Backbone``).

It builds on :mod:`hqf.quantum` and imports nothing from :mod:`hqf.learn`, :mod:`hqf.studies` or
:mod:`hqf.cli`.
"""
