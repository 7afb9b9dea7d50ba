"""The noise properties of ``hqf check``: the noisy backends agree with the density-matrix reference under a
noise model, a trajectory backend within its Hoeffding bound, and a channel of the wrong convention is caught.

The wrong backends are the reference itself run under a wrongly translated model: Qiskit's depolarizing
``λ`` taken for hqf's ``p`` (so ``p·3/4`` is applied), amplitude damping towards ``|1⟩``, and the readout
confusion matrix transposed.
"""

import math
from typing import ClassVar

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hqf.backends.trajectories import TrajectoryBackend
from hqf.cli import check_cmd, main
from hqf.quantum.circuit import Circuit, Operation, PauliWord
from hqf.quantum.noise import AmplitudeDamping, Channel, Depolarizing, NoiseModel, ReadoutError, Rule
from hqf.testing import NOISE_PROPERTIES, Hoeffding, Limits, ReferenceDensityBackend, Target, default_noise
from hqf.testing.noisy import MAX_NOISY_QUBITS, branch_range, trajectory_range, within_range

#: what the wrong backends are checked under: every convention below shows in it
MODEL = "depolarizing=0.02,amplitude_damping=0.01,readout=0.03:0.01"
TINY = Limits(max_qubits=3, max_ops=6, max_batch=2)


@attrs.frozen
class DampingTowardsOne(Channel):
    """Amplitude damping with ``|0⟩`` and ``|1⟩`` exchanged: ``X K X`` for each of its Kraus operators."""

    name: ClassVar[str] = "amplitude_damping"
    gamma: float

    def kraus(self):
        x = np.array([[0, 1], [1, 0]], dtype=np.complex128)
        return tuple(x @ k @ x for k in AmplitudeDamping(self.gamma).kraus())


def wrong_channel(channel: Channel, kind: str) -> Channel:
    if kind == "qiskit-lambda" and isinstance(channel, Depolarizing):
        return Depolarizing(3 * channel.p / 4)  # hqf's p passed where Qiskit's λ = 4p/3 belongs
    if kind == "damping-to-one" and isinstance(channel, AmplitudeDamping):
        return DampingTowardsOne(channel.gamma)
    return channel


def wrong_model(model: NoiseModel, kind: str) -> NoiseModel:
    rules = [Rule(wrong_channel(r.channel, kind), r.gates, r.wires) for r in model.rules]
    readout = model.readout
    if kind == "transposed-readout":
        readout = [ReadoutError(e.p0_given_1, e.p1_given_0, e.wires) for e in readout]
    return NoiseModel(rules, readout)


class WrongConvention(ReferenceDensityBackend):
    """The reference under the model as a backend with the convention :attr:`kind` would translate it."""

    kind = ""

    def __init__(self, *, noise=None, **options):
        super().__init__(noise=None if noise is None else wrong_model(noise, self.kind), **options)


class QiskitLambda(WrongConvention):
    name = kind = "qiskit-lambda"


class DampingToOne(WrongConvention):
    name = kind = "damping-to-one"


class TransposedReadout(WrongConvention):
    name = kind = "transposed-readout"


class RightConvention(WrongConvention):
    name = "right-convention"


class DampingToOneTrajectories(TrajectoryBackend):
    """hqf's trajectory backend run under amplitude damping towards ``|1⟩``."""

    name = "damping-to-one-trajectories"

    def __init__(self, *, noise=None, trajectories=1, seed=None):
        noise = None if noise is None else wrong_model(noise, "damping-to-one")
        super().__init__(noise=noise, trajectories=trajectories, seed=seed)


@pytest.fixture
def wrong_backends(fake_plugins):
    return fake_plugins(QiskitLambda, DampingToOne, TransposedReadout, RightConvention, DampingToOneTrajectories)


def check(*args):
    return CliRunner().invoke(main, ["check", *args])


@pytest.mark.parametrize("name", ["qiskit-lambda", "damping-to-one", "transposed-readout"])
def test_a_wrong_convention_is_caught_and_named(wrong_backends, name):
    result = check(
        "--backend",
        name,
        "--noise",
        MODEL,
        "--property",
        "noisy-expval",
        "--examples",
        "5",
        "--max-qubits",
        "3",
        "--max-ops",
        "6",
    )
    assert result.exit_code == 1, result.output
    assert "FAILED noisy-expval" in result.output and "smallest failing circuit:" in result.output
    assert "after 1 fixed cases" in result.output  # the first gate case already shows it


def test_the_right_convention_passes_in_the_same_check(wrong_backends):
    result = check(
        "--backend",
        "right-convention",
        "--noise",
        MODEL,
        "--property",
        "noisy-expval",
        "--property",
        "noisy-gradient",
        "--examples",
        "5",
        "--max-qubits",
        "3",
        "--max-ops",
        "6",
    )
    assert result.exit_code == 0, result.output
    assert "2 properties: 2 passed" in result.output


def test_a_wrong_convention_is_caught_within_the_hoeffding_bound(wrong_backends):
    result = check(
        "--backend",
        "damping-to-one-trajectories",
        "--noise",
        "amplitude_damping=0.4",
        "--property",
        "noisy-expval",
        "--examples",
        "3",
        "--max-qubits",
        "2",
        "--max-ops",
        "4",
    )
    assert result.exit_code == 1, result.output
    assert "seed=0, trajectories=4096" in result.output and "Hoeffding bound" in result.output
    assert "FAILED noisy-expval" in result.output


def test_without_noise_given_the_default_model_of_the_declared_channels_runs(wrong_backends):
    result = check("--backend", "damping-to-one", "--property", "noisy-expval", "--examples", "3", "--max-ops", "4")
    assert result.exit_code == 1, result.output
    assert "(the default model of its channels)" in result.output and "FAILED noisy-expval" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "torch", "--noise", "depolarizing=0.01"], "runs no noise"),
        (["--backend", "right-convention", "--noise", "depolarising=0.01"], "did you mean 'depolarizing'"),
    ],
)
def test_noise_mistakes_exit_2_in_one_line(wrong_backends, args, message):
    result = check(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_the_cli_literal_is_the_suite_limit():
    assert check_cmd.MAX_NOISY_QUBITS == MAX_NOISY_QUBITS


def test_default_noise_holds_every_declared_feature_and_an_asymmetric_readout():
    model = default_noise(ReferenceDensityBackend.capabilities.channels)
    assert model.features == ReferenceDensityBackend.capabilities.channels
    confusion = model.confusion(0)
    assert not np.allclose(confusion, confusion.T)  # a transposed confusion matrix would show
    assert default_noise(["depolarizing"]).features == {"depolarizing"}
    assert default_noise([]).is_noiseless
    pauli = default_noise(ReferenceDensityBackend.capabilities.channels, estimate=True)
    assert pauli.features == {"depolarizing", "bit_flip", "phase_flip", "pauli", "readout"}


def test_trajectory_range_and_the_cut_prefix():
    assert branch_range(Depolarizing(0.2)) == pytest.approx(1.0)
    assert branch_range(AmplitudeDamping(0.1)) == pytest.approx(2.0)  # the decay branch [[0, √2], [0, 0]]
    noise = NoiseModel.parse("depolarizing=0.1,amplitude_damping=0.1")
    ops = [Operation("RY", 0, 0), Operation("CNOT", (0, 1)), Operation("RX", 1, 1)]
    circuit = Circuit(2, ops, [PauliWord.z(1)])
    assert trajectory_range(circuit, noise) == pytest.approx(2.0**4)
    cut = within_range(circuit, noise, cap=4.0)
    assert cut.operations == tuple(ops[:1]) and cut.n_params == 1
    assert within_range(circuit, NoiseModel.parse("depolarizing=0.3")) is circuit


def test_hoeffding_bound_is_the_stated_formula():
    circuit = Circuit(1, [Operation("RY", 0, 0)], [PauliWord.z(0)])
    bound = Hoeffding(1e-8, 4096, spread=2.0, delta=1e-6)
    stated = 1e-8 + 2.0 * math.sqrt(2 * math.log(2 / 1e-6) / 4096)
    assert bound.output_bound(circuit, torch.zeros(1, 1)).item() == pytest.approx(stated, rel=1e-12)


NOISY = [
    Target("torch-dm", examples=5, limits=TINY),
    Target("ptm", examples=5, limits=TINY),
    Target("pennylane-mixed", examples=3, limits=TINY),
    Target("qiskit-aer-dm", examples=3, limits=TINY),
    Target("trajectories", {"trajectories": 4096, "seed": 3}, examples=5, limits=TINY),
    # damping doubles a trajectory's range per site: strong, so that a wrong branch shows within the bound
    Target(
        "trajectories",
        {"trajectories": 4096, "seed": 3},
        examples=5,
        limits=TINY,
        noise="amplitude_damping=0.3,phase_damping=0.2,readout=0.03:0.01",
    ),
]


@pytest.mark.parametrize("prop", list(NOISE_PROPERTIES))
@pytest.mark.parametrize("target", NOISY, ids=[t.id for t in NOISY])
def test_noisy_backend_conforms(target, prop):
    availability = target.availability()
    if not availability.ok:
        pytest.skip(f"{target.backend}: {availability.reason}")
    result = target.check(prop)
    assert result.ok, result.report()
    if result.status == "skip":
        assert prop == "noisy-gradient", result.report()
