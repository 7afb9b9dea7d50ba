"""Build registered plugins by name: the one way the model, the CLI and the tests construct them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hqf.errors import BackendUnavailableError
from hqf.quantum.interfaces import Ansatz, Backend, Encoder
from hqf.quantum.noise import NoiseModel, noise_model
from hqf.registry.contracts import Backbone, Fusion, Regularizer
from hqf.registry.loader import registry
from hqf.registry.specs import parse_ansatz_spec


def make_backend(name: str, **options: Any) -> Backend:
    """An instance of the backend registered as ``name``; raises if it cannot run here."""
    entry = registry().get("backend", name)
    availability = entry.availability()
    if not availability.ok:
        raise BackendUnavailableError(name, availability.reason)
    return entry.cls(**options)


def make_ansatz(spec: str) -> Ansatz:
    """The ansatz a spec such as ``hea8x6`` names."""
    parsed = parse_ansatz_spec(spec)
    cls = registry().get("ansatz", parsed.family).cls
    return cls(parsed.n_qubits, parsed.n_layers)


def make_encoder(name: str, in_features: int, n_qubits: int, **options: Any) -> Encoder:
    """The encoder registered as ``name``, mapping ``in_features`` inputs onto ``n_qubits`` qubits."""
    return registry().get("encoder", name).cls(in_features, n_qubits, **options)


def make_fusion(name: str, classical_features: int, quantum_features: int, **options: Any) -> Fusion:
    return registry().get("fusion", name).cls(classical_features, quantum_features, **options)


def make_regularizer(name: str, **options: Any) -> Regularizer:
    return registry().get("regularizer", name).cls(**options)


def make_backbone(name: str, in_features: int, latent: int, **options: Any) -> Backbone:
    return registry().get("backbone", name).cls(in_features, latent, **options)


def depolarizing_factory(backend: str, p: float, **options) -> Callable[[float], Backend]:
    """``scale -> backend``: the registered noisy backend ``backend`` with depolarizing ``scale·p``."""
    return lambda scale: make_backend(backend, depolarizing=scale * p, **options)


def noise_factory(backend: str, noise: NoiseModel | str, **options) -> Callable[[float], Backend]:
    """``scale -> backend``: the registered noisy backend ``backend`` under ``noise`` scaled by ``scale``
    (:meth:`~hqf.quantum.noise.NoiseModel.scaled`; ``noise`` may be a text for ``NoiseModel.parse``)."""
    model = noise_model(noise)
    return lambda scale: make_backend(backend, noise=model.scaled(scale), **options)
