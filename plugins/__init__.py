"""Encoders, ansätze, fusions, regularizers and baselines shipped with hqf (entry-point plugins)."""
