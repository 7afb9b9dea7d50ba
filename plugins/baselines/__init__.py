"""Classical baseline models shipped with hqf.

- ``logistic``: multinomial logistic regression (seed 001).
- ``classical-surrogate``: the hybrid with its quantum block replaced by a classical layer of the same
  parameter count (seed 003's sanity check).
- ``qsvm``: a support-vector machine on a quantum kernel of the run's encoder and backend (seed 004).
- The classical backbone alone is the ``classical-only`` fusion (the same model class, backbone and
  head as the hybrid, with no quantum branch), so it is not registered twice here.
"""

from hqf.plugins.baselines.logistic import LogisticRegression
from hqf.plugins.baselines.qsvm import QuantumKernelSVM
from hqf.plugins.baselines.surrogate import ClassicalSurrogate
from hqf.registry.hookspecs import hookimpl


@hookimpl
def register_baselines(register) -> None:
    register(LogisticRegression)
    register(ClassicalSurrogate)
    register(QuantumKernelSVM)
