import pytest

from hqf.errors import InvalidSpecError
from hqf.registry.make import make_ansatz
from hqf.registry.specs import parse_ansatz_spec


def test_hea8x6_has_96_weights_and_the_designed_layout():
    ansatz = make_ansatz("hea8x6")
    assert (ansatz.n_qubits, ansatz.n_layers, ansatz.n_weights, ansatz.spec) == (8, 6, 96, "hea8x6")
    ops = ansatz.operations()
    first_layer = ops[:24]
    assert [(o.gate, o.wires, o.param) for o in first_layer[:4]] == [
        ("RY", (0,), 0),
        ("RZ", (0,), 1),
        ("RY", (1,), 2),
        ("RZ", (1,), 3),
    ]
    ring = [o.wires for o in first_layer[16:]]
    assert ring == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 0)]
    assert sum(o.param is not None for o in ops) == 96


def test_small_rings():
    assert [o.wires for o in make_ansatz("hea2x1").operations() if o.gate == "CNOT"] == [(0, 1), (1, 0)]
    assert [o for o in make_ansatz("hea1x3").operations() if o.gate == "CNOT"] == []


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("hea0x6", "qubits must be in 1..1024"),
        ("hea8", "does not parse"),
        ("heaXx6", "does not parse"),
        ("hea8x-1", "does not parse"),
        ("hea8x0", "layers must be >= 1"),
        ("hea1025x1", "qubits must be in 1..1024"),
        ("", "does not parse"),
        ("HEA8x6", "does not parse"),
    ],
)
def test_bad_specs_are_clear_errors(bad, fragment):
    with pytest.raises(InvalidSpecError, match=fragment):
        parse_ansatz_spec(bad)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown ansatz 'nope'; available: .*hea"):
        make_ansatz("nope4x2")
