import pytest
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


def test_an_unknown_config_key_suggests_the_close_match(tmp_path):
    result = CliRunner().invoke(main, ["run", "--set", "lambda_stabb=0.2", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "unknown key 'lambda_stabb'; did you mean 'lambda_stab'?" in result.output
    config = tmp_path / "my.toml"
    config.write_text("epochz = 2\n")
    result = CliRunner().invoke(main, ["run", "--config", str(config), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "unknown key 'epochz'; did you mean 'epochs'?" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_baseline_trained_with_the_hybrids_regularizers_says_so():
    from hqf.learn.config import RunConfig
    from hqf.learn.resolution import resolution_notes

    (note,) = resolution_notes(RunConfig(baseline="logistic"), {})
    assert "baseline 'logistic' trained with the regularizers stability, curvature" in note
    assert "--regularizer none" in note
    assert resolution_notes(RunConfig(baseline="logistic", regularizers=[]), {}) == []
    assert resolution_notes(RunConfig(), {"gradient": "backprop"}) == []


@pytest.mark.slow
def test_hqf_run_baseline_logistic_prints_the_note_and_none_drops_the_terms(tmp_path):
    tiny = ["run", "--quick", "--samples", "400", "--epochs", "1", "--baseline", "logistic", "--quiet"]
    result = CliRunner().invoke(main, [*tiny, "--out", str(tmp_path / "kept")])
    assert result.exit_code == 0, result.output
    assert "note: baseline 'logistic' trained with the regularizers stability, curvature" in result.output
    result = CliRunner().invoke(main, [*tiny, "--regularizer", "none", "--out", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "note: baseline" not in result.output
    assert "regularizers = []" in (tmp_path / "none" / "config.toml").read_text()
