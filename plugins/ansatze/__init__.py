"""Ansatz families shipped with hqf."""

from hqf.plugins.ansatze.basic import BasicEntangler
from hqf.plugins.ansatze.hea import HardwareEfficient
from hqf.plugins.ansatze.sel import StronglyEntangling
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_ansatze(register) -> None:
    register(HardwareEfficient)
    register(BasicEntangler)
    register(StronglyEntangling)
