from click.testing import CliRunner

from hqf import __version__
from hqf.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_list_shows_torch_and_hea():
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["torch", "[hqf]", "available"] for line in lines), result.output
    assert any(line.strip().startswith("hea{Q}x{L}") for line in lines)


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output
