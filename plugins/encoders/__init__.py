"""Data encoders shipped with hqf."""

from hqf.plugins.encoders.amplitude import AmplitudeEncoder
from hqf.plugins.encoders.angle import AngleEncoder
from hqf.plugins.encoders.basis import BasisEncoder
from hqf.plugins.encoders.iqp import IQPEncoder
from hqf.plugins.encoders.reupload import ReuploadEncoder
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_encoders(register) -> None:
    register(AngleEncoder)
    register(AmplitudeEncoder)
    register(IQPEncoder)
    register(BasisEncoder)
    register(ReuploadEncoder)
