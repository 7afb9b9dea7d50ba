"""``trajectories``: training under noise on sampled branches (Monte Carlo wave functions).

:class:`TrajectoryBackend` (``backend``) draws each row's branches (``branches``) and runs them in numba
kernels on tiles of rows with an adjoint backward (``kernels``, ``program``), or gate by gate in torch
(``plain``) for the circuits the kernels do not run. docs/noise.md, "Trajectories".
"""

from hqf.backends.trajectories.backend import TrajectoryBackend
from hqf.registry.hookspecs import hookimpl

__all__ = ["TrajectoryBackend", "register_backends"]


@hookimpl
def register_backends(register) -> None:
    register(TrajectoryBackend)
