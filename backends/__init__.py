"""Simulator backends shipped with hqf; each registers through the ``hqf`` entry-point group."""
