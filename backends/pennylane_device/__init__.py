"""hqf as a PennyLane device: ``qml.device("hqf.torch", wires=n)`` runs PennyLane circuits on hqf's torch
simulator (registered under PennyLane's own entry-point group, ``pennylane.plugins``; docs/pennylane-device.md).
"""

from hqf.backends.pennylane_device.device import HqfTorchDevice

__all__ = ["HqfTorchDevice"]
