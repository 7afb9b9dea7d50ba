"""Fusions of the classical and quantum branches shipped with hqf."""

from hqf.plugins.fusions.classical_only import ClassicalOnlyFusion
from hqf.plugins.fusions.concat import ConcatFusion
from hqf.plugins.fusions.gated import GatedFusion
from hqf.plugins.fusions.quantum_only import QuantumOnlyFusion
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_fusions(register) -> None:
    register(GatedFusion)
    register(ConcatFusion)
    register(QuantumOnlyFusion)
    register(ClassicalOnlyFusion)
