"""The ``hqf`` command. Subcommands live in their own modules and are imported only when used."""

from __future__ import annotations

import importlib

import click

from hqf import __version__
from hqf.errors import HqfError

#: command name -> "module:attribute"; loaded on demand so ``hqf --help`` stays fast
COMMANDS: dict[str, str] = {
    "bench": "hqf.cli.bench_cmd:bench_command",
    "check": "hqf.cli.check_cmd:check_command",
    "draw": "hqf.cli.draw_cmd:draw_command",
    "evaluate": "hqf.cli.evaluate_cmd:evaluate_command",
    "list": "hqf.cli.list_cmd:list_command",
    "predict": "hqf.cli.predict_cmd:predict_command",
    "report": "hqf.cli.report_cmd:report_command",
    "run": "hqf.cli.run_cmd:run_command",
    "scale": "hqf.cli.scale_cmd:scale_command",
    "sweep": "hqf.cli.sweep_cmd:sweep_command",
}


class UserError(click.ClickException):
    """A mistake the user can fix: one line on stderr, exit code 2, no traceback."""

    exit_code = 2


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, and whose errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HqfError as exc:
            raise UserError(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            raise UserError(f"{exc.strerror or exc}: {exc.filename}") from None
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM in a run): what was kept and where, exit 128 + signal
            click.echo(f"Interrupted: {exc}" if str(exc) else "Interrupted.", err=True)
            raise click.exceptions.Exit(getattr(exc, "exit_code", 130)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hqf")
def main() -> None:
    """hqf: hybrid quantum-classical machine learning on any simulator."""
    from hqf.learn.process.runtime import tune_process

    tune_process()
