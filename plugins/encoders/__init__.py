"""Data encoders shipped with hqf."""

from hqf.quantum.hookspecs import hookimpl
from hqf.plugins.encoders.amplitude import AmplitudeEncoder
from hqf.plugins.encoders.angle import AngleEncoder


@hookimpl
def register_encoders(register) -> None:
    register(AngleEncoder)
    register(AmplitudeEncoder)
