"""Loss regularizers shipped with hqf."""

from hqf.plugins.regularizers.curvature import CurvatureRegularizer
from hqf.plugins.regularizers.stability import StabilityRegularizer
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_regularizers(register) -> None:
    register(StabilityRegularizer)
    register(CurvatureRegularizer)
