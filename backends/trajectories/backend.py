"""``trajectories``: noisy circuits as Monte Carlo wave functions, one sampled branch per row and trajectory.

Each row of a batch runs ``trajectories`` times, each time with its own branch drawn at every noise site
(:mod:`hqf.backends.trajectories.branches`: state-independent branch probabilities, unnormalised branch
matrices), and its outputs are the mean over its trajectories. Every output's mean is the density-matrix
value, and the mean of the gradient of a loss linear in the outputs is that loss's exact gradient. Small
circuits of the usual gates read out in Z run in numba kernels with an adjoint backward
(:mod:`hqf.backends.trajectories.kernels`), the rest gate by gate in torch (``plain``). docs/noise.md,
"Trajectories".
"""

from __future__ import annotations

import functools

import torch

from hqf.backends.readout import readout
from hqf.backends.trajectories.branches import Sites, sites
from hqf.backends.trajectories.plain import word_values
from hqf.backends.trajectories.program import KernelProgram, KernelWordValues, runs
from hqf.quantum.circuit import GATES, OBSERVABLE_KINDS, Circuit
from hqf.quantum.gates import full_angles
from hqf.quantum.interfaces import Availability, Backend, Capabilities
from hqf.quantum.noise import NOISE_FEATURES, NoiseModel, noise_model


@functools.lru_cache(maxsize=64)
def compiled(circuit: Circuit, noise: NoiseModel) -> tuple[Sites, KernelProgram | None]:
    """``circuit``'s noise sites, and its kernel program when the kernels run it (cached)."""
    found = sites(circuit, noise)
    words = readout(circuit, noise).words
    return found, KernelProgram(circuit, words, found) if runs(circuit, words, found) else None


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{name}' must be an integer >= 1 (got {value!r})")
    return value


class TrajectoryBackend(Backend):
    """Trajectories (Monte Carlo wave functions) under a :class:`~hqf.quantum.noise.NoiseModel`.

    Args:
        noise: the model, or its text form (``"depolarizing=0.02,amplitude_damping=0.01"``).
        depolarizing: shorthand for ``NoiseModel.depolarizing(p)``; not with ``noise``.
        trajectories: trajectories per row, averaged (the outputs stay ``[B, R]``).
        seed: seeds the backend's own ``torch.Generator`` (None: a random seed); every call draws fresh
            branches from it, so a fixed seed reproduces the same sequence of calls bit for bit. Under
            :meth:`fix_randomness` a call draws from ``(seed, key)`` instead (common random numbers).

    Raises:
        ValueError: a bad option, in one line.

    Example:
        >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
        >>> backend = TrajectoryBackend(noise="bit_flip=0.25", trajectories=4000, seed=1)
        >>> one = Circuit(1, [Operation("H", 0), Operation("H", 0)], [PauliWord.z(0)])
        >>> value = backend.expval(one, torch.zeros(1, 0, dtype=torch.float64))  # exact: (1 − 2·0.25)² = 0.25
        >>> abs(value.item() - 0.25) < 0.05
        True
    """

    name = "trajectories"
    description = "Monte Carlo wave functions: one sampled noise branch per row (noise=, trajectories=K, seed=)"
    capabilities = Capabilities(
        dtypes={"complex128"},
        devices={"cpu"},
        max_qubits=24,
        gradients={"backprop"},
        noise=True,
        estimates=True,
        channels=NOISE_FEATURES,
        gates=GATES,
        observables=OBSERVABLE_KINDS,
    )

    @classmethod
    def availability(cls) -> Availability:
        return Availability.of_modules(("numba",))

    def __init__(
        self,
        *,
        noise: NoiseModel | str | None = None,
        depolarizing: float = 0.0,
        trajectories: int = 1,
        seed: int | None = None,
        dtype: str = "complex128",
        device: str = "cpu",
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.noise = noise_model(noise, depolarizing)
        self.noise.require(self.name, self.capabilities.channels)
        self.trajectories = _count(trajectories, "trajectories")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"'seed' must be an integer or None (got {seed!r})")
        self.seed = seed
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        #: the non-negative seed keyed draws derive from (the generator's initial seed)
        self.key_seed = self.generator.initial_seed()
        #: the key of :meth:`fix_randomness` (None: fresh draws from :attr:`generator`)
        self.key: int | None = None

    def rng_state(self) -> torch.Tensor:
        """The state of the generator the branches are drawn from (for a checkpoint)."""
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore a state of :meth:`rng_state`: the next calls draw what they drew after it was taken."""
        self.generator.set_state(state)

    def fix_randomness(self, key: int | None) -> None:
        """Until called again, every call draws its branches from ``(key_seed, key)``: row ``r`` of a call
        (trajectory ``t`` of row ``r`` is draw row ``r·trajectories + t``) gets the same branches whatever
        the batch size, and :attr:`generator` is left alone; None: fresh draws from :attr:`generator`."""
        if key is not None and (isinstance(key, bool) or not isinstance(key, int) or key < 0):
            raise ValueError(f"'key' must be a non-negative integer or None (got {key!r})")
        self.key = key

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` float64: each row's outputs averaged over its ``trajectories`` (differentiable)."""
        return self.expval_broadcast(circuit, angles, angles.new_zeros(0))

    def expval_broadcast(self, circuit: Circuit, angles: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
        """:meth:`expval` of ``[angles, shared]``; the kernels sum the gradient of ``shared`` over the rows."""
        out_device = angles.device
        batch, k = angles.shape[0], self.trajectories
        if batch == 0:
            return torch.zeros(0, circuit.n_outputs, dtype=torch.float64, device=out_device)
        rows = angles.to("cpu", torch.float64).repeat_interleave(k, dim=0)  # a row's trajectories together
        shared = shared.to("cpu", torch.float64).reshape(-1)
        found, program = compiled(circuit, self.noise)
        if self.key is None:
            branches = found.draw(rows.shape[0], self.generator)
        else:
            branches = found.draw_keyed(rows.shape[0], self.key_seed, self.key)
        words = readout(circuit, self.noise)

        def plain(data: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            return word_values(circuit, found, branches, full_angles(data, weights), words, self.complex_dtype)

        if program is None:
            values = plain(rows, shared)
        else:
            threads = self.threads or torch.get_num_threads()
            values = KernelWordValues.apply(rows, shared, program, branches, threads, plain)
        out = words.apply_torch(values)
        return out.reshape(batch, k, -1).mean(dim=1).to(out_device)
