"""hqf: hybrid quantum-classical machine learning.

A backend-neutral circuit description (:mod:`hqf.circuit`), five small plugin interfaces
(:mod:`hqf.interfaces`), a pluggy registry (:mod:`hqf.registry`), and a parameter-shift core that makes
every backend differentiable inside torch (:mod:`hqf.gradients`). Importing hqf loads no plugin.
"""

from hqf.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
