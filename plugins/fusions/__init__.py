"""Fusions of the classical and quantum branches shipped with hqf."""
