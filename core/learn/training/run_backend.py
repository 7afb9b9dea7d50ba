"""The simulator backends of a run: the one it trains on and, under noise, the exact one it is evaluated on.

A run without noise trains and evaluates on ``config.backend``. A run with noise (``config.noise``, or
its shorthand ``depolarizing``) on the default, noiseless ``torch`` backend trains on
:data:`NOISY_TRAINING` (one sampled trajectory per row, its generator seeded with ``config.seed`` plus the rank)
and is evaluated on the first of :data:`EXACT_NOISY` that runs its noise and circuit; a run that names
a noisy backend (``torch-dm``, ``ptm``, ...) trains and evaluates on it. A backend that cannot run the
noise is refused in one line before any work.
"""

from __future__ import annotations

import os

import torch

from hqf.errors import ConfigError
from hqf.quantum.interfaces import Backend
from hqf.quantum.noise import NoiseModel, noise_model
from hqf.registry.loader import registry
from hqf.registry.make import make_ansatz, make_backend

#: the noiseless default backend; under noise a run named so trains on :data:`NOISY_TRAINING`
NOISELESS_DEFAULT = "torch"
#: the backend a noisy run of the default backend trains on
NOISY_TRAINING = "trajectories"
#: exact noisy backends a run trained on :data:`NOISY_TRAINING` is evaluated on, in order of preference
EXACT_NOISY = ("ptm", "torch-dm")


def run_noise(config) -> NoiseModel | None:
    """The run's noise model (``noise``, or ``depolarizing=p``), or None without noise."""
    text = config.noise_text
    return noise_model(text) if text else None


def training_backend(config) -> str:
    """The name of the backend the run trains on: ``config.backend``, or :data:`NOISY_TRAINING` for a
    noisy run of :data:`NOISELESS_DEFAULT`."""
    if config.backend == NOISELESS_DEFAULT and run_noise(config) is not None:
        return NOISY_TRAINING
    return config.backend


def evaluation_backend(config) -> str:
    """The name of the backend the run's test metrics come from: the training backend, except that a run
    trained on :data:`NOISY_TRAINING` is evaluated on the first of :data:`EXACT_NOISY` that is available
    and runs its noise and qubits (the training backend when none does)."""
    name = training_backend(config)
    noise = run_noise(config)
    if name != NOISY_TRAINING or noise is None:
        return name
    return exact_backend(noise, make_ansatz(config.ansatz).n_qubits) or name


def exact_backend(noise: NoiseModel, n_qubits: int) -> str | None:
    """The first of :data:`EXACT_NOISY` registered here, available, and running ``noise`` on ``n_qubits``."""
    found = {entry.name: entry for entry in registry().entries("backend")}
    for name in EXACT_NOISY:
        entry = found.get(name)
        if entry is None or not entry.availability().ok:
            continue
        capabilities = entry.cls.capabilities
        if noise.features <= capabilities.channels and n_qubits <= capabilities.max_qubits:
            return name
    return None


def make_run_backend(config, name: str | None = None) -> Backend:
    """The backend ``name`` (default: :func:`training_backend`) with the run's options and noise, checked
    first (unknown, unavailable, or not running the noise: a one-line HqfError).

    The run's ``backend_options`` go to the backend the run names; the trajectories of a noisy run of
    the default backend get them too, with ``seed = config.seed + rank`` unless they set one (``rank``:
    this process's rank in a data-parallel run, :func:`data_parallel_rank`). The simulator
    runs on ``config.device`` when the backend supports that device type; a backend that does not
    (cuquantum: GPU only, the model on the CPU) keeps its own default device, and the expectation
    values come back to the model's device.
    """
    name = name or training_backend(config)
    options = dict(config.backend_options) if name in (config.backend, training_backend(config)) else {}
    cls = registry().get("backend", name).cls
    noise = run_noise(config)
    if noise is not None:
        try:
            noise.require(name, cls.capabilities.channels)
        except ValueError as exc:
            raise ConfigError(f"{exc}; noisy backends: {', '.join(noisy_backends())}") from None
        if config.noise:
            options["noise"] = config.noise
        else:
            options["depolarizing"] = config.depolarizing
        if name == NOISY_TRAINING:
            options.setdefault("seed", config.seed + data_parallel_rank())
    if "device" not in options and torch.device(config.device).type in cls.capabilities.devices:
        options["device"] = config.device
    try:
        return make_backend(name, dtype=config.dtype, **options)
    except TypeError as exc:
        raise ConfigError(f"backend {name!r} does not take these options {sorted(options)}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"backend {name!r}: {exc}") from None


def data_parallel_rank(environ=os.environ) -> int:
    """This process's rank in a data-parallel run (torchrun's ``RANK`` when ``WORLD_SIZE`` > 1), else 0:
    each rank's trajectories are seeded apart, so that ranks do not draw the same noise branches."""
    try:
        world, rank = int(environ.get("WORLD_SIZE", 1)), int(environ.get("RANK", 0))
    except ValueError:
        return 0  # hqf.learn.process.distributed.from_environment reports malformed values in one line
    return rank if world > 1 else 0


def noisy_backends() -> list[str]:
    """The registered backends that run some noise."""
    return [entry.name for entry in registry().entries("backend") if entry.cls.capabilities.noise]
