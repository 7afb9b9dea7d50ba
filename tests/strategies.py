"""Hypothesis strategies shared by the tests (they live in :mod:`hqf.testing.strategies`)."""

from __future__ import annotations

from hqf.testing.strategies import angle_batches, circuits, pauli_words

__all__ = ["angle_batches", "circuits", "pauli_words"]
