"""``Circuit.draw()`` and ``hqf draw``: one line per wire, gates in columns, parameter columns or values."""

from click.testing import CliRunner

from hqf.cli import main
from hqf.quantum.circuit import Circuit, Hamiltonian, Operation, PauliWord, Probs


def test_draw_one_line_per_wire_with_columns_or_values():
    circuit = Circuit(
        3,
        [Operation("H", 0), Operation("CRX", (0, 2), 0), Operation("RZ", 1, 1), Operation("Toffoli", (0, 2, 1))],
        [PauliWord.z(0), Hamiltonian([(0.5, "Z0 Z1")]), Probs((2,))],
    )
    lines = circuit.draw().splitlines()
    assert len(lines) == 3 and [line[:3] for line in lines] == ["0: ", "1: ", "2: "]
    assert lines[0] == "0: ──H──╭●───────────────╭●──┤  <Z>, <H>"
    assert lines[1] == "1: ─────│────────RZ(θ1)──├X──┤  <H>"
    assert lines[2] == "2: ─────╰RX(θ0)──────────╰●──┤  Probs"
    with_values = circuit.draw([0.5, -1.25]).splitlines()
    assert "RX(0.50)" in with_values[2] and "RZ(-1.25)" in with_values[1]


def test_draw_shows_the_control_on_wires_zero():
    circuit = Circuit(2, [Operation("CNOT", (1, 0))], [PauliWord.z(0)])
    assert circuit.draw().splitlines() == ["0: ──╭X──┤  <Z>", "1: ──╰●──┤"]


def test_hqf_draw_prints_the_composed_circuit_and_writes_a_png(tmp_path):
    png = tmp_path / "circuit.png"
    result = CliRunner().invoke(main, ["draw", "--ansatz", "hea4x2", "--encoder", "angle", "--png", str(png)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "angle encoder + hea4x2: 4 qubit(s), 20 angle column(s)"
    assert [line[:3] for line in lines[1:5]] == ["0: ", "1: ", "2: ", "3: "]
    assert lines[1].startswith("0: ──RY(θ0)") and "RY(θ3)" in lines[4]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hqf_draw_mistakes_are_one_line():
    result = CliRunner().invoke(main, ["draw", "--encoder", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
