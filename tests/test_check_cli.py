"""``hqf check`` and the conformance suite catch wrong backends; exit codes 0 / 1 / 2.

The wrong backends are test doubles around the reference simulator; ``torch`` is the registered one.
"""

import importlib.metadata
import math
import re

import attrs
import pytest
import torch
from click.testing import CliRunner

from hqf.cli import main
from hqf.cli.check_cmd import MAX_QUBITS, parse_option
from hqf.quantum.circuit import Circuit
from hqf.quantum.interfaces import Availability
from hqf.registry.loader import GROUP
from hqf.testing import Limits, ReferenceBackend, check_backend


class SwappedWires(ReferenceBackend):
    """Wrong on purpose: runs every gate with wires 0 and 1 exchanged (observables untouched)."""

    name = "swapped-wires"

    def expval(self, circuit, angles):
        def swap(w):
            return {0: 1, 1: 0}.get(w, w)

        if circuit.n_qubits >= 2:
            ops = [attrs.evolve(op, wires=tuple(swap(w) for w in op.wires)) for op in circuit.operations]
            circuit = Circuit(circuit.n_qubits, ops, circuit.observables)
        return super().expval(circuit, angles)


class FlippedRY(ReferenceBackend):
    """Wrong on purpose: RY(θ) runs as RY(−θ), which ⟨Z⟩ alone (even in θ) cannot see."""

    name = "flipped-ry"

    def expval(self, circuit, angles):
        sign = torch.ones(circuit.n_params, dtype=angles.dtype)
        for op in circuit.operations:
            if op.gate == "RY":
                sign[op.param] = -1
        return super().expval(circuit, angles * sign)


class NeverAvailable(ReferenceBackend):
    name = "never"

    @classmethod
    def availability(cls):
        return Availability(False, "needs a machine that does not exist")


@pytest.fixture
def fake_registry(fake_plugins):
    """The registered ``torch`` backend (through its entry point) and the wrong ones."""
    torch_entry_point = importlib.metadata.entry_points(group=GROUP, name="torch")
    return fake_plugins(SwappedWires, FlippedRY, NeverAvailable, builtins=False, entry_points=torch_entry_point)


def test_api_catches_swapped_wires_and_shrinks_to_a_small_circuit():
    # shrinking unbounded in time (Hypothesis' own limits only): the witness found does not depend on the load
    unbounded = Limits(shrink_seconds=math.inf)
    results = {
        r.property: r
        for r in check_backend(SwappedWires, examples=30, seed=1, limits=unbounded, properties=["shape", "expval"])
    }
    failed = results["expval"]
    assert failed.status == "fail"
    assert failed.circuit is not None and failed.circuit.startswith("Circuit: ")
    # shrunk: the smallest witness needs two qubits and one gate that is not symmetric in them
    n_gates = len(failed.circuit.splitlines()) - 2
    assert "2 qubit(s)" in failed.circuit and n_gates <= 2, failed.report()
    assert "|Δ|" in failed.message and "bound" in failed.message
    assert results["shape"].status == "pass"


def test_api_catches_a_sign_error_through_the_gradients():
    results = {
        r.property: r
        for r in check_backend(
            FlippedRY, examples=30, seed=2, limits=Limits(max_qubits=3), properties=["shift-jacobian", "shift-gradient"]
        )
    }
    assert results["shift-jacobian"].status == "fail", results["shift-jacobian"].report()
    assert results["shift-gradient"].status == "fail"
    assert "RY" in results["shift-jacobian"].circuit


def test_cli_passes_torch_against_the_reference(fake_registry):
    result = CliRunner().invoke(main, ["check", "--backend", "torch", "--examples", "3", "--max-qubits", "4"])
    assert result.exit_code == 0, result.output
    assert "reference: hqf.testing.ReferenceBackend (dense, complex128)" in result.output
    for prop in ("shape", "expval", "shift-jacobian", "shift-gradient", "native-gradient"):
        assert f"\n{prop} " in result.output
    assert "5 passed, 0 failed" in result.output


def test_cli_draws_no_circuit_larger_than_the_reference_runs(fake_registry):
    assert MAX_QUBITS == ReferenceBackend.capabilities.max_qubits
    result = CliRunner().invoke(main, ["check", "--backend", "torch", "--max-qubits", str(MAX_QUBITS + 1)])
    assert result.exit_code == 2 and f"1<=x<={MAX_QUBITS}" in result.output, result.output


def test_cli_exits_1_and_shows_the_smallest_failing_circuit(fake_registry):
    args = [
        "--backend",
        "swapped-wires",
        "--examples",
        "20",
        "--seed",
        "3",
        "--property",
        "shape",
        "--property",
        "expval",
    ]
    result = CliRunner().invoke(main, ["check", *args])
    print(result.output)
    assert result.exit_code == 1, result.output
    assert "FAILED expval" in result.output
    assert "smallest failing circuit:" in result.output
    shown = result.output.split("smallest failing circuit:")[1].split("measure")[0]
    qubits = int(re.search(r"Circuit: (\d+) qubit", shown).group(1))
    assert qubits <= 3 and len(shown.strip().splitlines()) <= 3, shown  # the header and at most two gates


def test_cli_unavailable_backend_exits_2_with_the_reason(fake_registry):
    result = CliRunner().invoke(main, ["check", "--backend", "never"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: backend 'never' is unavailable: needs a machine that does not exist"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--backend", "torch", "--option", "colour=red"], "rejects the options"),
        (["--backend", "torch", "--option", "novalue"], "key=value"),
        (["--backend", "torch", "--property", "speed"], "unknown property 'speed'"),
    ],
)
def test_cli_user_mistakes_exit_2(fake_registry, args, message):
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_only_selected_properties_and_dtype(fake_registry):
    result = CliRunner().invoke(
        main, ["check", "--backend", "torch", "--dtype", "complex64", "--property", "expval", "--examples", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "dtype complex64" in result.output and "|Δ| ≤ 0.0001" in result.output
    assert "1 properties: 1 passed" in result.output


def test_parse_option_types():
    assert parse_option("shots=100") == ("shots", 100)
    assert parse_option("p=0.5") == ("p", 0.5)
    assert parse_option("flag=true") == ("flag", True)
    assert parse_option("seed=none") == ("seed", None)
    assert parse_option("pl_device=lightning.qubit") == ("pl_device", "lightning.qubit")


def test_examples_and_shrink_steps_are_counted_apart():
    results = {r.property: r for r in check_backend(SwappedWires, examples=30, seed=1, properties=["shape", "expval"])}
    passed, failed = results["shape"], results["expval"]
    assert (passed.examples, passed.shrink_steps) == (30, 0)  # a property that holds: every example, no shrinking
    assert 1 <= failed.examples <= 30 and failed.shrink_steps >= 1  # examples up to the first failure, then shrinking
    assert f"({failed.examples} examples, {failed.shrink_steps} shrink steps)" in failed.report()


def test_cli_table_shows_examples_and_shrink_steps_in_their_own_columns(fake_registry):
    args = [
        "--backend",
        "swapped-wires",
        "--examples",
        "20",
        "--seed",
        "3",
        "--property",
        "shape",
        "--property",
        "expval",
    ]
    result = CliRunner().invoke(main, ["check", *args])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "up to 20 examples per property" in result.output
    header = next(line for line in lines if line.startswith("property"))
    assert header.split()[:5] == ["property", "result", "examples", "shrink", "steps"]
    shape = next(line for line in lines if line.startswith("shape "))
    expval = next(line for line in lines if line.startswith("expval "))
    assert shape.split()[1:4] == ["pass", "20", "-"]
    examples, shrinks = (int(v) for v in expval.split()[2:4])
    assert examples <= 20 and shrinks >= 1
