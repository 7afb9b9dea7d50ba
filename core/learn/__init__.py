"""The learning application: run configuration, data, the hybrid model, training (Algorithm 1 of the
seed paper), metrics, run directories and one whole run (:func:`hqf.learn.experiment.run`).

It builds on :mod:`hqf.quantum` and imports nothing from :mod:`hqf.studies` or :mod:`hqf.cli`.
"""
