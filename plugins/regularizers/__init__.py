"""Loss regularizers shipped with hqf."""

from hqf.registry.hookspecs import hookimpl
from hqf.plugins.regularizers.curvature import CurvatureRegularizer
from hqf.plugins.regularizers.stability import StabilityRegularizer


@hookimpl
def register_regularizers(register) -> None:
    register(StabilityRegularizer)
    register(CurvatureRegularizer)
