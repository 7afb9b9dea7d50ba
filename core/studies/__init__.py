"""Studies over many runs: sweeps and searches, reports with statistics and figures, scaling studies
and benchmarks. Builds on :mod:`hqf.learn` and :mod:`hqf.quantum`; imports nothing from :mod:`hqf.cli`.
"""
