"""Error mitigation: zero-noise extrapolation (ZNE) and readout-error mitigation.

ZNE measures expectation values at amplified gate noise and extrapolates them to none. The noise is
scaled by a factor ``λ ≥ 1`` in one of two ways (Temme et al. 2017; Giurgica-Tiron et al. 2020):

- ``folding``: the whole circuit ``U`` is replaced by ``U (U† U)^k`` (global unitary folding), which is
  the same unitary with ``λ = 2k + 1`` times as many gates, so ``λ`` times the gate noise of a backend
  that adds noise per gate (:class:`hqf.quantum.noise.NoiseModel`). ``U†`` is
  :func:`hqf.quantum.circuit.adjoint`, its columns holding the negated angles. Needs one backend.
- ``channel``: the same circuit on a backend whose channels are scaled by ``λ``
  (:meth:`hqf.quantum.noise.NoiseModel.scaled`): needs a factory ``scale -> backend``
  (:func:`hqf.registry.make.noise_factory`, :func:`hqf.registry.make.depolarizing_factory`).

Neither scales the readout error; :func:`zne` removes it from every value first when given the model.

Then the values ``E(λ_i)`` are extrapolated to ``λ = 0``:

- ``linear``: the least-squares line through the points, read at 0;
- ``richardson``: the polynomial of degree ``S − 1`` through the ``S`` points, read at 0:
  ``E(0) = Σ_i E(λ_i) Π_{j≠i} λ_j / (λ_j − λ_i)`` (exact for such a polynomial).

Readout-error mitigation inverts the per-wire confusion matrices ``M_w`` (docs/noise.md):

- ``Probs(wires)`` reads ``(⊗_m M_{w_m}) p``, so the true distribution is ``(⊗_m M_{w_m}^{-1})`` applied
  to the read one;
- a wire's ``±1`` outcome ``s`` reads on average ``a·s + b`` (``a = 1 − p(1|0) − p(0|1) = det M``,
  ``b = p(0|1) − p(1|0)``), so ``P_w = (R_w − b_w)/a_w`` with ``R_w`` the read observable, and a word is
  ``⊗_w P_w = Σ_{S ⊆ W} Π_{w∈S} (1/a_w) Π_{w∉S} (−b_w/a_w) R_S``: the read values of its sub-words
  ``S`` (the empty one is the constant 1), all measured in the word's own basis. With ``b = 0`` on every
  wire this is ``R_W / Π_w a_w``.

Both are exact for hqf's readout model; a wire with ``a = 0`` (its read bit carries no information)
cannot be inverted.

Example::

    >>> import torch
    >>> from hqf.quantum.circuit import Circuit, Operation, PauliWord
    >>> circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0)])
    >>> from hqf.registry.make import noise_factory
    >>> factory = noise_factory("torch-dm", "depolarizing=0.02,amplitude_damping=0.01")
    >>> result = zne(circuit, torch.tensor([[0.3]]), factory, scaling="channel")
    >>> abs(float(result.estimate[0, 0]) - math.cos(0.3)) < 1e-3
    True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch

from hqf.quantum.circuit import Circuit, Hamiltonian, Observable, PauliWord, Probs, adjoint, compose
from hqf.quantum.gradients import expval
from hqf.quantum.interfaces import Backend, Capabilities
from hqf.quantum.noise import NoiseModel

SCALINGS = ("folding", "channel")
METHODS = ("linear", "richardson")


def fold(circuit: Circuit, scale: int) -> Circuit:
    """``U (U† U)^k`` for ``scale = 2k + 1``: the same unitary, ``scale`` times the gates; its angle rows
    are :func:`folded_angles`."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale % 2 == 0:
        raise ValueError(f"a folding scale must be an odd integer >= 1 (got {scale!r})")
    operations = circuit.operations
    blocks = [operations] + [adjoint(operations), operations] * ((scale - 1) // 2)
    return compose(circuit.n_qubits, blocks, circuit.observables)


def folded_angles(angles: torch.Tensor, scale: int) -> torch.Tensor:
    """The rows of :func:`fold` ``(circuit, scale)`` for ``angles[B, P]``: ``[θ, −θ, θ, …]``."""
    return torch.cat([angles] + [-angles, angles] * ((scale - 1) // 2), dim=1)


def extrapolation_weights(scales: Sequence[float], method: str) -> torch.Tensor:
    """``[S]`` weights ``w`` with ``E(0) ≈ Σ_i w_i E(λ_i)`` for ``method`` (both are linear in the values)."""
    if method not in METHODS:
        raise ValueError(f"'method' must be one of {', '.join(METHODS)} (got {method!r})")
    x = torch.tensor([float(s) for s in scales], dtype=torch.float64)
    if method == "richardson":
        weights = [math.prod(x[j] / (x[j] - x[i]) for j in range(len(x)) if j != i) for i in range(len(x))]
        return torch.stack([torch.as_tensor(w, dtype=torch.float64) for w in weights])
    design = torch.stack([torch.ones_like(x), x], dim=1)  # least squares: intercept row of the pseudo-inverse
    return torch.linalg.pinv(design)[0]


def extrapolate(scales: Sequence[float], values: torch.Tensor, method: str = "richardson") -> torch.Tensor:
    """``values[S, …]`` measured at ``scales[S]`` extrapolated to zero noise: ``[…]``."""
    check_scales(scales)
    if values.shape[0] != len(scales):
        raise ValueError(
            f"'values' must have one entry per scale on its first axis ({len(scales)}; got {values.shape[0]})"
        )
    weights = extrapolation_weights(scales, method).to(values.dtype)
    return torch.tensordot(weights, values, dims=1)


def check_scales(scales: Sequence[float]) -> None:
    """Raise ``ValueError`` unless ``scales`` holds at least two distinct finite numbers ``>= 1``."""
    values = [float(s) for s in scales]
    if len(values) < 2 or len(set(values)) != len(values) or not all(math.isfinite(s) and s >= 1 for s in values):
        raise ValueError(f"'scales' must be at least two distinct numbers >= 1 (got {list(scales)})")


def _odd_integers(scales: Sequence[float]) -> list[int]:
    """The folding scales as ints; a scale that is not an odd integer is a ``ValueError``."""
    if any(isinstance(s, bool) or float(s) != int(s) or int(s) % 2 == 0 for s in scales):
        raise ValueError(f"folding scales must be odd integers >= 1 (got {list(scales)})")
    return [int(s) for s in scales]


def wire_inverse(noise: NoiseModel, wire: int) -> np.ndarray:
    """``M_w^{-1}`` (2×2) of ``wire``'s confusion matrix, the identity when it reads exactly.

    Raises:
        ValueError: ``p(1|0) + p(0|1) = 1`` on ``wire`` (``M_w`` is singular).
    """
    confusion = noise.confusion(wire)
    if confusion is None:
        return np.eye(2)
    if abs(np.linalg.det(confusion)) < 1e-12:
        raise ValueError(f"the readout error of wire {wire} cannot be inverted (p(1|0) + p(0|1) = 1)")
    return np.linalg.inv(confusion)


def unconfused_word(word: PauliWord, noise: NoiseModel) -> list[tuple[float, PauliWord | None]]:
    """The true value of ``word`` as ``(coefficient, sub-word)`` terms of read values (None: the constant
    1); ``[(1.0, word)]`` when none of its wires is misread. The inverse of the readout model's
    ``⊗_w (a_w P_w + b_w 1)`` (docs/noise.md)."""
    factors = []  # per wire of the word: ((weight, letter or None), ...)
    for wire, letter in word.terms:
        confusion = noise.confusion(wire)
        if confusion is None:
            factors.append(((1.0, letter),))
            continue
        wire_inverse(noise, wire)  # refuses a confusion matrix that cannot be inverted
        a = 1.0 - confusion[1, 0] - confusion[0, 1]
        b = confusion[0, 1] - confusion[1, 0]
        factors.append(((1.0 / a, letter), (-b / a, None)))
    terms = []
    for choice in itertools.product(*factors):
        weight = math.prod(w for w, _ in choice)
        kept = tuple((wire, letter) for (wire, _), (_, letter) in zip(word.terms, choice) if letter is not None)
        if weight != 0.0:
            terms.append((weight, PauliWord(kept) if kept else None))
    return terms


def unconfused_probs(wires: tuple[int, ...], noise: NoiseModel) -> np.ndarray:
    """``⊗_m M_{w_m}^{-1}`` (``2^k × 2^k``, ``wires[0]`` the most significant bit): read to true
    distribution of ``Probs(wires)``."""
    inverse = np.ones((1, 1))
    for wire in wires:
        inverse = np.kron(inverse, wire_inverse(noise, wire))
    return inverse


@attrs.frozen(eq=False)
class ReadoutMitigation:
    """The true outputs of a circuit from the read outputs of :attr:`measured` (the same gates, other
    observables): ``offset[R] + matrix[R, M] @ read[M]``."""

    measured: Circuit
    matrix: np.ndarray
    offset: np.ndarray

    def apply(self, read: torch.Tensor) -> torch.Tensor:
        """``[B, R]`` true outputs from ``read[B, M]``, the read outputs of :attr:`measured` (differentiable)."""
        matrix = torch.as_tensor(self.matrix, dtype=read.dtype, device=read.device)
        return read @ matrix.T + torch.as_tensor(self.offset, dtype=read.dtype, device=read.device)


def readout_mitigation(circuit: Circuit, noise: NoiseModel) -> ReadoutMitigation:
    """What to measure, and how to combine it, to undo ``noise``'s readout error on ``circuit``'s outputs:
    each ``Probs`` is measured as it is and multiplied by :func:`unconfused_probs`; each Pauli word (also
    inside a Hamiltonian) is replaced by the sub-words of :func:`unconfused_word`.

    Raises:
        ValueError: a measured wire's readout error cannot be inverted.
    """
    measured: list[Observable] = []
    columns: dict[Observable, int] = {}  # measured observable -> its first column
    entries: list[tuple[int, int, float]] = []  # (output row, measured column, coefficient)
    offset = np.zeros(circuit.n_outputs)

    def column(obs: Observable) -> int:
        if obs not in columns:
            columns[obs] = sum(o.n_outputs for o in measured)
            measured.append(obs)
        return columns[obs]

    def add_word(row: int, word: PauliWord, coefficient: float) -> None:
        for weight, part in unconfused_word(word, noise):
            if part is None:
                offset[row] += coefficient * weight
            else:
                entries.append((row, column(part), coefficient * weight))

    row = 0
    for obs in circuit.observables:
        if isinstance(obs, PauliWord):
            add_word(row, obs, 1.0)
        elif isinstance(obs, Hamiltonian):
            for coefficient, word in obs.terms:
                add_word(row, word, coefficient)
        elif isinstance(obs, Probs):
            inverse, first = unconfused_probs(obs.wires, noise), column(obs)
            entries += [(row + i, first + j, inverse[i, j]) for i, j in zip(*np.nonzero(inverse))]
        row += obs.n_outputs
    matrix = np.zeros((circuit.n_outputs, sum(o.n_outputs for o in measured)))
    for r, m, coefficient in entries:
        matrix[r, m] += coefficient
    return ReadoutMitigation(Circuit(circuit.n_qubits, circuit.operations, measured), matrix, offset)


def mitigate_readout(circuit: Circuit, angles: torch.Tensor, backend: Backend, noise: NoiseModel) -> torch.Tensor:
    """``circuit``'s outputs ``[B, R]`` at ``angles[B, P]`` on ``backend`` with ``noise``'s readout error
    undone (:func:`readout_mitigation`): exact when ``backend`` misreads as ``noise`` says. ``noise`` is
    the readout calibration: its gate channels are ignored."""
    plan = readout_mitigation(circuit, noise)
    return plan.apply(expval(backend, plan.measured, angles.to(backend.real_dtype)))


@attrs.frozen
class ZNEResult:
    """What :func:`zne` measured and its zero-noise estimate."""

    scales: tuple[float, ...]
    #: ``[S, B, R]``: the expectation values at each noise scale
    values: torch.Tensor
    #: ``[B, R]``: the values extrapolated to zero noise
    estimate: torch.Tensor
    method: str
    scaling: str


def zne(
    circuit: Circuit,
    angles: torch.Tensor,
    backend: Backend | Callable[[float], Backend],
    scales: Sequence[float] = (1, 3, 5),
    method: str = "richardson",
    scaling: str = "folding",
    readout: NoiseModel | None = None,
) -> ZNEResult:
    """Zero-noise estimate of ``circuit``'s expectation values at ``angles[B, P]``.

    Args:
        circuit: any circuit the backend runs.
        angles: its angle rows.
        backend: a noisy backend (``folding``), or ``scale -> backend`` (``channel``; e.g.
            :func:`noise_factory`; ``folding`` accepts a factory too and calls it at scale 1).
        scales: the noise factors ``λ_i`` (``folding``: odd integers).
        method: ``richardson`` or ``linear``.
        scaling: ``folding`` or ``channel``.
        readout: the readout calibration; when given, every value is read through
            :func:`mitigate_readout` before the extrapolation (neither scaling changes the readout error).

    Raises:
        ValueError: an unknown method or scaling, unsuitable scales, ``channel`` without a factory, or a
            readout error that cannot be inverted.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"'scaling' must be one of {', '.join(SCALINGS)} (got {scaling!r})")
    check_scales(scales)
    extrapolation_weights(scales, method)  # the method is known before any circuit runs
    factory = None if isinstance(backend, Backend) else backend
    if scaling == "channel" and factory is None:
        raise ValueError("'channel' scaling needs a factory scale -> backend (e.g. noise_factory)")
    if readout is not None:
        readout_mitigation(circuit, readout)  # an error that cannot be inverted is refused before any work

    def measure(noisy: Backend, measured: Circuit, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.to(noisy.real_dtype)
        return expval(noisy, measured, rows) if readout is None else mitigate_readout(measured, rows, noisy, readout)

    with torch.no_grad():
        if scaling == "folding":
            folds = [fold(circuit, scale) for scale in _odd_integers(scales)]  # every scale checked first
            noisy = backend if factory is None else factory(1)
            values = [
                measure(noisy, folded, folded_angles(angles, scale))
                for folded, scale in zip(folds, _odd_integers(scales))
            ]
        else:
            values = [measure(factory(scale), circuit, angles) for scale in scales]
    stacked = torch.stack([v.to("cpu", torch.float64) for v in values])
    return ZNEResult(tuple(float(s) for s in scales), stacked, extrapolate(scales, stacked, method), method, scaling)


def _check_scaling(instance, attribute, value) -> None:
    if value not in SCALINGS:
        raise ValueError(f"'scaling' must be one of {', '.join(SCALINGS)} (got {value!r})")


def _check_method(instance, attribute, value) -> None:
    if value not in METHODS:
        raise ValueError(f"'method' must be one of {', '.join(METHODS)} (got {value!r})")


def _check_zne_scales(instance, attribute, value) -> None:
    check_scales(value)


@attrs.frozen
class ZNE:
    """How :class:`MitigatedBackend` extrapolates to zero noise: the arguments of :func:`zne`."""

    scales: tuple[float, ...] = attrs.field(default=(1, 3, 5), converter=tuple, validator=_check_zne_scales)
    method: str = attrs.field(default="richardson", validator=_check_method)
    scaling: str = attrs.field(default="folding", validator=_check_scaling)

    def __attrs_post_init__(self) -> None:
        if self.scaling == "folding":
            _odd_integers(self.scales)

    def __str__(self) -> str:
        scales = ",".join(f"{s:g}" for s in self.scales)
        return f"zne({self.scaling} {scales}, {self.method})"


#: what ``mitigate`` texts name (``"zne"``, ``"readout"``, ``"zne,readout"``)
MITIGATIONS = ("zne", "readout")


def parse_mitigation(text: str) -> tuple[ZNE | None, bool]:
    """``(zne, readout)`` of a comma-separated text of :data:`MITIGATIONS`: ZNE with its defaults
    (folding 1, 3, 5, Richardson) for ``zne``, readout inversion for ``readout``.

    Raises:
        ValueError: an empty text, an unknown or repeated name.
    """
    names = [part.strip() for part in text.split(",")]
    unknown = [name for name in names if name not in MITIGATIONS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"'mitigate' must name some of {', '.join(MITIGATIONS)}, comma-separated, once (got {text!r})")
    return (ZNE() if "zne" in names else None), "readout" in names


class MitigatedBackend(Backend):
    """The mitigated expectation values of a noisy backend: a backend whose :meth:`expval` reads
    ``backend``'s values through readout-error mitigation (the confusion matrices of ``backend.noise``,
    :func:`mitigate_readout`) and/or zero-noise extrapolation (:func:`zne`), in that order.

    Values only: it declares no gradient and refuses the parameter-shift rule (a folded circuit reads each
    angle several times, so the two-term rule would be wrong); evaluate under ``torch.no_grad``. Its
    gates, observables, dtype and device are the wrapped backend's.

    Args:
        backend: the noisy backend (with ``readout``: one with a ``noise`` model that has a readout error).
        zne: how to extrapolate; None: no ZNE.
        readout: invert the readout error of ``backend.noise``.
        factory: ``scale -> backend`` for ``zne.scaling == "channel"`` (e.g.
            :func:`hqf.registry.make.noise_factory`); built once per scale.

    Raises:
        ValueError: neither mitigation asked for; ``readout`` on a backend without a readout error;
            channel scaling without ``factory``; (from :meth:`expval`) a readout error that cannot be inverted.

    Example::

        >>> from hqf.quantum.circuit import Operation
        >>> from hqf.registry.make import make_backend
        >>> noisy = make_backend("torch-dm", noise="depolarizing=0.01,readout=0.03")
        >>> mitigated = MitigatedBackend(noisy, zne=ZNE(scales=(1, 3, 5)), readout=True)
        >>> circuit = Circuit(1, [Operation("RX", 0, 0)], [PauliWord.z(0)])
        >>> abs(float(mitigated.expval(circuit, torch.tensor([[0.3]], dtype=torch.float64))) - math.cos(0.3)) < 1e-4
        True
    """

    name = "mitigated"
    description = "another backend's expectation values with readout-error mitigation and/or ZNE"
    bounded = False  # extrapolated and unconfused values may leave the observables' ranges

    def __init__(
        self,
        backend: Backend,
        *,
        zne: ZNE | None = None,
        readout: bool = False,
        factory: Callable[[float], Backend] | None = None,
    ) -> None:
        if zne is None and not readout:
            raise ValueError("give 'zne' and/or 'readout=True': nothing to mitigate")
        noise = getattr(backend, "noise", None)
        if readout and not (isinstance(noise, NoiseModel) and noise.has_readout):
            raise ValueError(f"readout mitigation needs a readout error; backend {backend.name!r} has none")
        if zne is not None and zne.scaling == "channel" and factory is None:
            raise ValueError("'channel' scaling needs a factory scale -> backend (e.g. noise_factory)")
        inner = backend.capabilities
        self.capabilities = Capabilities(
            dtypes={backend.dtype}, devices={backend.device.type}, max_qubits=inner.max_qubits,
            exact=inner.exact, noise=inner.noise, estimates=inner.estimates, channels=inner.channels,
            gates=inner.gates, observables=inner.observables,
        )  # fmt: skip
        super().__init__(dtype=backend.dtype, device=str(backend.device))
        self.name = f"{backend.name}+" + "+".join(["zne"] * (zne is not None) + ["readout"] * readout)
        self.backend, self.zne, self.readout = backend, zne, noise if readout else None
        scaled = zne is not None and zne.scaling == "channel"
        self.scaled_backends = {s: factory(s) for s in zne.scales} if scaled else {}

    @property
    def settings(self) -> dict:
        """The mitigation as plain data: ``{"zne": {"scales", "method", "scaling"} or None, "readout": bool}``."""
        z = self.zne
        zne_settings = None if z is None else {"scales": list(z.scales), "method": z.method, "scaling": z.scaling}
        return {"zne": zne_settings, "readout": self.readout is not None}

    @property
    def backends(self) -> list[Backend]:
        """Every backend it measures on."""
        return [self.backend, *self.scaled_backends.values()]

    def set_threads(self, n: int) -> None:
        super().set_threads(n)
        for backend in self.backends:
            backend.set_threads(n)

    def fix_randomness(self, key: int | None) -> None:
        for backend in self.backends:
            backend.fix_randomness(key)

    def expval(self, circuit: Circuit, angles: torch.Tensor) -> torch.Tensor:
        if angles.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(f"backend {self.name!r} gives values only; evaluate under torch.no_grad()")
        with torch.no_grad():
            if self.zne is None:
                values = mitigate_readout(circuit, angles, self.backend, self.readout)
            else:
                source = self.backend if self.zne.scaling == "folding" else self.scaled_backends.__getitem__
                z = self.zne
                values = zne(circuit, angles, source, z.scales, z.method, z.scaling, readout=self.readout).estimate
        return values.to(angles.device, self.real_dtype)

    def expval_shifted(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        raise NotImplementedError(f"backend {self.name!r} gives values only: mitigated values have no gradient")

    def expval_shifts(self, circuit: Circuit, angles: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        raise NotImplementedError(f"backend {self.name!r} gives values only: mitigated values have no gradient")
