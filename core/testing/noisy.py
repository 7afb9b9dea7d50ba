"""The noise properties: a noisy backend against the density-matrix reference under the same noise model.

The backend under test is built with ``noise=<NoiseModel>`` and compared, on drawn circuits of at most
:data:`MAX_NOISY_QUBITS` qubits, with :class:`~hqf.testing.reference.ReferenceDensityBackend` under the same
model:

- ``noisy-expval``: the expectation values (the drawn observables, then X, Y and Z on every wire). An exact
  backend is held to the dtype's ``atol`` (:class:`~hqf.testing.tolerance.Tolerance`). An estimate (a backend
  declaring ``exact=False``, or one with a ``trajectories`` count) is held to the Hoeffding bound of
  :class:`~hqf.testing.tolerance.Hoeffding` for its ``K`` trajectories per row, the circuit's trajectory
  range ``c`` (:func:`trajectory_range`) and ``δ`` = 1e-6 per value; its drawn circuit is cut to the longest
  prefix with ``c ≤`` :data:`MAX_RANGE` (every gate is kept under Pauli noise, where ``c = 1``). A
  shot-based one is held to the Bernstein bound of its shots.
- ``noisy-gradient``: each native gradient the backend declares (``backprop``, ``adjoint``), in the hybrid
  graph of the noiseless properties, against autograd through the reference; skipped when the backend
  declares none or is an estimate (its values are checked by ``noisy-expval``).

:func:`default_noise` is the model when none is given: every channel the backend declares, at a small
strength, with an asymmetric readout error (so that a transposed confusion matrix shows); for an estimate,
its Pauli channels and readout only.
"""

from __future__ import annotations

import attrs
import numpy as np

from hqf.quantum.circuit import Circuit
from hqf.quantum.interfaces import Backend
from hqf.quantum.noise import Channel, NoiseModel
from hqf.testing.properties import Example, HybridGraph, native_gradients, with_probes
from hqf.testing.tolerance import ATOL, Hoeffding, Tolerance

#: property name -> what must hold (``hqf check --property`` takes these names too)
NOISE_PROPERTIES: dict[str, str] = {
    "noisy-expval": "under the noise model, expectation values match the density-matrix reference's",
    "noisy-gradient": "under the noise model, the declared native gradient matches the reference's",
}
#: the largest drawn circuit of the noise properties
MAX_NOISY_QUBITS = 6
#: the largest trajectory range ``c`` a drawn circuit keeps for an estimate (its prefix is cut there)
MAX_RANGE = 4.0
#: each feature of the default model, in ``NoiseModel.parse`` text: small, and no two alike
DEFAULT_STRENGTHS = {
    "depolarizing": "0.02",
    "bit_flip": "0.01",
    "phase_flip": "0.015",
    "pauli": "0.01:0.005:0.02",
    "amplitude_damping": "0.03",
    "phase_damping": "0.02",
    "thermal_relaxation": "50:70:1",
    "readout": "0.03:0.01",
}


#: the features of :data:`DEFAULT_STRENGTHS` whose trajectories stay normalised (range ``c = 1``)
PAULI_FEATURES = ("depolarizing", "bit_flip", "phase_flip", "pauli", "readout")


def default_noise(channels, estimate: bool = False) -> NoiseModel:
    """Every feature in ``channels`` (a backend's ``Capabilities.channels``) at its strength of
    :data:`DEFAULT_STRENGTHS`, in that order; the noiseless model when it declares none.

    For an ``estimate`` only the Pauli channels and readout (:data:`PAULI_FEATURES`): a damping site may
    double a trajectory's range ``c``, so under every channel the cut of :func:`within_range` would leave
    no gate; damping is checked on a trajectory backend under an explicit model.
    """
    wanted = set(channels) & (set(PAULI_FEATURES) if estimate else set(DEFAULT_STRENGTHS))
    return NoiseModel.parse(",".join(f"{name}={value}" for name, value in DEFAULT_STRENGTHS.items() if name in wanted))


def estimates(backend: Backend) -> bool:
    """Whether ``backend``'s noisy values are estimates: it declares ``exact=False``, or samples trajectories."""
    return not backend.capabilities.exact or trajectory_count(backend) is not None


def trajectory_count(backend: Backend) -> int | None:
    """The backend's ``trajectories`` per row, when it has an integer one."""
    count = getattr(backend, "trajectories", None)
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else None


def branch_range(channel: Channel) -> float:
    """``max_k ‖K_k‖² / q_k`` with ``q_k = Tr(K_k† K_k)/2``: how much one site may grow a trajectory's
    squared norm, for the state-independent unravelling of docs/noise.md (1 for a Pauli channel)."""
    largest = 1.0
    for k in channel.kraus():
        q = float(np.trace(k.conj().T @ k).real) / 2
        if q > 0:
            largest = max(largest, float(np.linalg.norm(k, 2)) ** 2 / q)
    return largest


def trajectory_range(circuit: Circuit, noise: NoiseModel) -> float:
    """``c = Π_sites branch_range``: one trajectory's ``‖ψ̃‖²``, and so its Pauli-word values, lie in
    ``[−c, c]``."""
    c = 1.0
    for op in circuit.operations:
        for _, channel in noise.after(op):
            c *= branch_range(channel)
    return c


def within_range(circuit: Circuit, noise: NoiseModel, cap: float = MAX_RANGE) -> Circuit:
    """The longest prefix of ``circuit``'s gates whose :func:`trajectory_range` is at most ``cap``
    (and its observables); drawn circuits number their angle columns in order, so the prefix reads the
    first ones."""
    c, kept = 1.0, 0
    for op in circuit.operations:
        for _, channel in noise.after(op):
            c *= branch_range(channel)
        if c > cap:
            break
        kept += 1
    if kept == len(circuit.operations):
        return circuit
    return Circuit(circuit.n_qubits, circuit.operations[:kept], circuit.observables)


def noisy_tolerance(backend: Backend) -> Tolerance | Hoeffding:
    """The bound a noisy backend is held to: Hoeffding's for trajectories, else the dtype's or the shots'."""
    count = trajectory_count(backend)
    if count is None:
        return Tolerance.for_backend(backend)
    return Hoeffding(ATOL.get(backend.dtype, 1e-4), count)


def check_noisy_expval(ex: Example, noise: NoiseModel) -> None:
    circuit = ex.circuit
    tolerance = ex.tolerance
    if isinstance(tolerance, Hoeffding):
        circuit = within_range(circuit, noise)
        tolerance = attrs.evolve(tolerance, spread=trajectory_range(circuit, noise))
    circuit = with_probes(circuit)
    width = circuit.n_params
    exact = ex.reference.expval(circuit, ex.angles64[:, :width])
    got = ex.backend.expval(circuit, ex.angles[:, :width])
    ex.compare("noisy expval", got, exact, tolerance.output_bound(circuit, exact), circuit)


def check_noisy_gradient(ex: Example, seed: int) -> None:
    """Each native gradient in a :class:`HybridGraph` against autograd through the density reference."""
    if ex.circuit.n_params == 0:
        return
    graph = HybridGraph.draw(ex, seed)
    want_x, want_w = graph.gradients(ex.reference, ex.circuit, "backprop")
    batch, n_params = graph.base.shape
    per_angle = ex.tolerance.atol * graph.cotangent.abs().sum(1, keepdim=True).expand(batch, n_params)
    bound_x, bound_w = graph.chain(per_angle, graph.proj.abs())
    for method in native_gradients(ex.backend):
        try:
            got_x, got_w = graph.gradients(ex.backend, ex.circuit, method)
        except Exception as exc:
            raise ex.fail(f"noisy {method} gradient raised {type(exc).__name__}: {exc}") from exc
        ex.compare(f"noisy {method} gradient w.r.t. data", got_x, want_x, bound_x)
        ex.compare(f"noisy {method} gradient w.r.t. weights", got_w, want_w, bound_w)


def check_noisy(prop: str, ex: Example, noise: NoiseModel, gradient_seed: int) -> None:
    """Run the noise property named ``prop`` (a key of :data:`NOISE_PROPERTIES`) on one example."""
    if prop == "noisy-expval":
        check_noisy_expval(ex, noise)
    else:
        check_noisy_gradient(ex, gradient_seed)
