"""``hqf --help`` imports no subcommand and no torch, and its command list stays what the commands say."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.utils import make_default_short_help

from hqf.cli import COMMANDS, SUMMARIES, main

#: runs ``hqf ARGS`` in a fresh interpreter and prints the modules it imported
PROBE = """
import json, sys
from hqf.cli import main
try:
    main(sys.argv[1:], prog_name="hqf")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported_by(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_help_and_version_import_no_command_and_no_torch(args):
    modules = _imported_by(*args)
    assert "torch" not in modules and "numpy" not in modules
    assert not {module for module in modules if module.startswith("hqf.cli.")}


@pytest.mark.parametrize("command", ["list", "draw", "check", "scale", "report"])
def test_a_commands_help_imports_no_torch(command):
    assert "torch" not in _imported_by(command, "--help")


def test_a_command_that_runs_gets_the_process_settings_of_every_hqf_command():
    """``tune_process`` (torch's own CPU kernels instead of oneDNN's) still runs, now after the options are parsed."""
    code = PROBE.replace("print(json.dumps(sorted(sys.modules)), file=sys.stderr)", "")
    code += "import torch; print(torch.backends.mkldnn.enabled)"
    out = subprocess.run([sys.executable, "-c", code, "draw"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"


def test_summaries_are_the_first_sentence_of_each_command_help():
    assert SUMMARIES.keys() == COMMANDS.keys()
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert SUMMARIES[name] == make_default_short_help(command.help, 10**6), name


@pytest.mark.parametrize("width", [60, 80, 120])
def test_help_lists_the_commands_as_click_would_from_the_commands_themselves(width):
    ctx = click.Context(main, info_name="hqf", terminal_width=width)
    lazy, loaded = ctx.make_formatter(), ctx.make_formatter()
    main.format_commands(ctx, lazy)
    click.Group.format_commands(main, ctx, loaded)  # click's own: imports every command and asks it
    assert lazy.getvalue() == loaded.getvalue()
    assert all(name in lazy.getvalue() for name in COMMANDS)


def test_hqf_draw_imports_torch_only_when_it_draws():
    assert "torch" not in _imported_by_import("hqf.cli.draw_cmd")


def _imported_by_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    return set(
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    )
