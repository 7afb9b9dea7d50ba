"""Ansatz families shipped with hqf."""

from hqf.hookspecs import hookimpl
from hqf.plugins.ansatze.hea import HardwareEfficient


@hookimpl
def register_ansatze(register) -> None:
    register(HardwareEfficient)
