"""Ansatz families shipped with hqf."""

from hqf.registry.hookspecs import hookimpl
from hqf.plugins.ansatze.basic import BasicEntangler
from hqf.plugins.ansatze.hea import HardwareEfficient
from hqf.plugins.ansatze.sel import StronglyEntangling


@hookimpl
def register_ansatze(register) -> None:
    register(HardwareEfficient)
    register(BasicEntangler)
    register(StronglyEntangling)
