"""The ``hqf`` command. Subcommands live in their own modules and are imported only when used."""

from __future__ import annotations

import copy
import functools
import importlib
import os
import sys

import click
from click.utils import make_default_short_help

from hqf import __version__
from hqf.errors import BackendContractError, HqfError

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

#: commands that run no model, so skip the process settings (:func:`tuned`), which import torch
UNTUNED = frozenset({"list"})

#: command name -> the first sentence of its help, shown by ``hqf --help`` without importing the command
#: (tests/test_cli_speed_imports.py keeps each equal to the command's own docstring)
SUMMARIES: dict[str, str] = {
    "bench": "Time forward and forward+backward (samples/s, median after warm-up) of hqf backends on one circuit.",
    "check": "Check a backend against the reference simulator: values, shift Jacobians, gradients, shapes, and "
    "for a noisy backend its values and gradients under a noise model against the density-matrix reference.",
    "draw": "Print the circuit an encoder and an ansatz compose (one line per wire, gates labelled with their "
    "angle columns θk: the encoder's first, then the ansatz weights).",
    "evaluate": "Accuracy, macro-F1, ECE and NLL of the model a finished run kept, on the run's own test split "
    "(drawn as the run drew it), under the given backend, noise model, mitigation and input noise.",
    "list": "List encoders, ansätze, fusions, regularizers, baselines, backbones and backends, with availability.",
    "predict": "Predict with the model a finished run kept (model.safetensors): one CSV row per sample with its "
    "index, its label where the data has one, the predicted class and the probability of every class.",
    "report": "Aggregate finished runs (sweep folders or run folders) into Tables I–IV and Figures 2–5.",
    "run": "Train the hybrid model of the seed paper and write a run directory.",
    "scale": "Sweep qubits × depth (× bond): time per row, memory, discarded weight, and Var[∂C/∂θ₁] for two costs.",
    "sweep": "Run every configuration of GRID (variants × axes × seeds), each in its own run directory.",
}


class UserError(click.ClickException):
    """A mistake the user can fix: one line on stderr, exit code 2, no traceback."""

    exit_code = 2


class SystemProblem(click.ClickException):
    """The machine failed a command (a full disk, an I/O error, a backend that broke its contract): one line on
    stderr, exit code 1."""

    exit_code = 1


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, and whose errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(module), attr)
        return command if name in UNTUNED else tuned(command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``hqf --help``, as click writes it, from :data:`SUMMARIES`: no command is imported."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, make_default_short_help(SUMMARIES[name], limit)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BackendContractError as exc:  # the simulator failed, not the user's input: exit 1
            raise SystemProblem(str(exc)) from None
        except HqfError as exc:
            raise UserError(str(exc)) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            raise UserError(f"{exc.strerror or exc}: {exc.filename}") from None
        except BrokenPipeError:  # the reader went away (`hqf list | head`): quiet, exit 128 + SIGPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except OSError as exc:  # a full disk, an I/O error: one line, exit 1
            raise SystemProblem(
                f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)
            ) from None
        except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM in a run): what was kept and where, exit 128 + signal
            click.echo(f"Interrupted: {exc}" if str(exc) else "Interrupted.", err=True)
            raise click.exceptions.Exit(getattr(exc, "exit_code", 130)) from None


def tuned(command: click.Command) -> click.Command:
    """A copy of ``command`` that makes the process settings of every ``hqf`` command
    (:func:`hqf.learn.process.runtime.tune_process`) before it runs: after its options are parsed, so that
    ``hqf COMMAND --help`` does not import torch."""
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, **kwargs):
        from hqf.learn.process.runtime import tune_process  # at use: torch

        tune_process()
        return callback(*args, **kwargs)

    copied = copy.copy(command)
    copied.callback = run
    return copied


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hqf")
def main() -> None:
    """hqf: hybrid quantum-classical machine learning on any simulator."""
