"""``hqf run``: train one hybrid model, print a results table, write a run directory."""

from __future__ import annotations

import pathlib
import sys

import click
from tqdm import tqdm

from hqf.errors import ConfigError, RunFailedError, RunInterrupted
from hqf.learn.config import MAX_CONFIG_DEPTH, RunConfig, nesting_depth
from hqf.learn.rundir.folder import claimed_run_dir

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

#: CLI option -> configuration key (options left unset do not override the file or the defaults)
OPTION_KEYS = {
    "backend": "backend",
    "noise": "noise",
    "ansatz": "ansatz",
    "encoder": "encoder",
    "fusion": "fusion",
    "baseline": "baseline",
    "lambda_stab": "lambda_stab",
    "gamma_curv": "gamma_curv",
    "dataset": "dataset",
    "samples": "samples",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "seed": "seed",
    "device": "device",
    "dtype": "dtype",
    "gradient": "gradient",
    "threads": "threads",
    "tensorboard": "tensorboard",
}
#: ``--quick``: a first look at the default model in seconds (options given explicitly still win)
QUICK = {"samples": 2000, "epochs": 2, "vai_samples": 256, "latency_repeats": 5}


def threads_value(text: str | None) -> int | str | None:
    """``--threads``: ``auto`` or a whole number (None: not given)."""
    if text is None or text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"--threads expects auto or an integer >= 1 (got {text!r})")
    return int(text)


def _parse_set(items: tuple[str, ...]) -> dict:
    """``KEY=VALUE`` pairs; VALUE is read as a TOML value (``3``, ``0.1``, ``true``, ``["a"]``), else text; a
    value nested deeper than :data:`~hqf.learn.config.MAX_CONFIG_DEPTH` is a ConfigError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (got {item!r})")
        too_deep = ConfigError(
            f"--set {key.strip()}: tables or lists nested deeper than {MAX_CONFIG_DEPTH} levels (hqf's limit)"
        )
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value
        except RecursionError:
            raise too_deep from None
        if nesting_depth({key: parsed}) > MAX_CONFIG_DEPTH:  # counted as in a config file's `KEY = VALUE`
            raise too_deep
        out[key.strip()] = parsed
    return out


def resolve_config(
    config_file: str | None, options: dict, regularizers: tuple[str, ...], sets: tuple[str, ...], quick: bool = False
):
    """The run configuration: defaults, then the TOML file, then :data:`QUICK` (``quick``), then CLI
    options, then ``--set`` pairs (a flat key such as ``curvature_every`` or ``--lambda-stab`` sets its
    plugin's option). A flag option left off (``False``) overrides nothing."""
    base = RunConfig.from_toml(config_file) if config_file else None  # unknown keys are reported against the file
    data = {}
    if quick:
        data.update(QUICK)
    for option, key in OPTION_KEYS.items():
        value = options.get(option)
        if value is not None and value is not False:  # `is`: --seed 0 and --lambda-stab 0 do override
            data[key] = value
    if regularizers:
        data["regularizers"] = list(regularizers)
    data.update({k.replace("-", "_"): v for k, v in _parse_set(sets).items()})
    # a plugin's option table given here changes only the options it names
    return (base or RunConfig()).updated(data, source="run configuration")


def _refuse_with_resume(config_file, regularizers, sets, out, quick, options) -> None:
    """``--resume`` takes the run's own configuration: any other setting is a mistake (ConfigError)."""
    given = [
        name
        for name, value in (
            ("--config", config_file),
            ("--regularizer", regularizers),
            ("--set", sets),
            ("--out", out),
            ("--quick", quick),
        )
        if value
    ]
    given += [
        f"--{option.replace('_', '-')}" for option, value in options.items() if value is not None and value is not False
    ]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own configuration (RUN_DIR/config.toml); "
            f"it cannot be combined with {', '.join(given)}"
        )


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def results_table(metrics: dict, config, out) -> list[str]:
    """The closing table of ``hqf run``: metric, value."""
    eps = metrics.get("iterations_to_eps")
    if eps is None:
        eps_text = f"not reached (lowest smoothed ‖∇L‖ {_fmt(metrics.get('grad_norm_ema_min'))})"
    else:
        eps_text = str(eps)
    rows = [
        ("accuracy (test)", _fmt(metrics["accuracy"])),
        ("macro-F1 (test)", _fmt(metrics["macro_f1"])),
        ("ECE, 15 bins (test)", _fmt(metrics["ece"])),
        ("NLL (test)", _fmt(metrics["nll"])),
        ("validation loss (final)", _fmt(metrics["val_loss"])),
        (f"iterations to ε={config.eps:g}", eps_text),
        ("iterations to val loss within 1% of best", _fmt(metrics["iterations_to_val_within_1pct"])),
        (
            "stopped by",
            f"{metrics['stop_reason']} after {metrics['steps']} iterations, {metrics['epochs_completed']} full epochs",
        ),
        ("training wall time (s)", _fmt(metrics["wall_time_s"])),
        ("time per epoch (s)", _fmt(metrics["time_per_epoch_s"])),
        ("latency per instance, batch 1 (ms)", _fmt(metrics["latency_ms_batch1"])),
        ("latency per instance, batch 256 (ms)", _fmt(metrics["latency_ms_batch256"])),
        (f"variance amplification index (σ={config.vai_sigma:g})", _fmt(metrics["variance_amplification_index"])),
        (f"accuracy under input noise σ={config.vai_sigma:g}", _fmt(metrics["accuracy_input_noise"])),
        ("mean fusion gate (1 = classical only)", _fmt(metrics["gate_mean"])),
        ("trainable parameters (quantum)", f"{metrics['n_parameters']} ({metrics['n_quantum_parameters']})"),
        ("noise", noise_text(metrics)),
        ("run directory", str(out)),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 5}"] + [
        f"{name:<{width}}  {value}" for name, value in rows
    ]


def noise_text(metrics: dict) -> str:
    """The noise model of a run and the backends it trained and was evaluated on."""
    noise = metrics.get("noise") or "none"
    train, evaluated = metrics.get("train_backend"), metrics.get("eval_backend")
    if noise == "none" or train is None:
        return noise
    return f"{noise} (trained on {train}, evaluated on {evaluated})"


@click.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file with run keys (CLI options override it).",
)
@click.option("--backend", help="Simulator backend (hqf list) [default: torch].")
@click.option(
    "--noise",
    metavar="MODEL",
    help="Train and evaluate under this noise model, e.g. "
    '"depolarizing=0.02,amplitude_damping=0.01,readout=0.03" (docs/noise.md); on the default backend the '
    "run trains on trajectories and is evaluated on an exact density-matrix backend [default: none].",
)
@click.option("--ansatz", help="Ansatz spec FAMILY{Q}x{L} [default: hea8x6].")
@click.option("--encoder", help="Data encoder: angle, amplitude, … [default: angle].")
@click.option("--fusion", help="gated, concat, quantum-only, classical-only [default: gated].")
@click.option(
    "--baseline",
    help="Classical baseline model replacing the whole hybrid: logistic, classical-surrogate, … (hqf list) "
    "[default: None].",
)
@click.option(
    "--regularizer",
    "regularizers",
    multiple=True,
    help="Regularizer in the loss (repeatable; 'none' for none) [default: stability, curvature].",
)
@click.option("--lambda-stab", type=float, help="Weight λ of the stability term [default: 0.1].")
@click.option("--gamma-curv", type=float, help="Weight γ of the curvature term [default: 0.01].")
@click.option(
    "--dataset",
    help="dataset-a, dataset-b, digits, digits-4x4, a .csv/.npz file, or images KIND:DIR "
    "(mnist, fashion-mnist, cifar10, cifar100, stl10, images) [default: dataset-a].",
)
@click.option(
    "--samples",
    type=int,
    help="Samples before the 70/15/15 split; --set samples=all for the full size [default: 60000].",
)
@click.option("--epochs", type=int, help="Epoch budget [default: 8].")
@click.option("--batch-size", type=int, help="Mini-batch size [default: 256].")
@click.option("--lr", type=float, help="Learning rate [default: 0.001].")
@click.option("--optimizer", help="adam, sgd or rmsprop [default: adam].")
@click.option("--seed", type=int, help="Seed of initialization, data sample and batch order [default: 0].")
@click.option("--device", help="torch device: cpu, cuda, cuda:1 [default: cpu].")
@click.option("--dtype", help="Simulation precision: complex128 or complex64 [default: complex128].")
@click.option("--gradient", help="auto, backprop, adjoint or parameter-shift [default: auto].")
@click.option(
    "--threads",
    callback=lambda ctx, param, value: threads_value(value),
    metavar="N|auto",
    help="Threads of torch and the simulator; auto: one for small circuits, else the idle cores "
    "(docs/performance.md) [default: auto].",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other configuration key (repeatable), e.g. --set curvature_every=5.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run directory (must not exist or be empty) [default: runs/<UTC time>].",
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Write TensorBoard event files into the run directory (pip install 'hqf[tensorboard]') [default: False].",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"A first look, about 7 s on 2 CPU cores (mostly start-up): {QUICK['samples']:,} samples, "
    f"{QUICK['epochs']} epochs, {QUICK['vai_samples']} VAI samples, {QUICK['latency_repeats']} latency repeats "
    "(options given still win).",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False),
    metavar="RUN_DIR",
    help="Continue the interrupted run in RUN_DIR from its last checkpoint, with its own configuration.",
)
@click.option(
    "--allow-changed",
    "allow_changed",
    multiple=True,
    metavar="KEY",
    help="With --resume: continue although RUN_DIR/config.toml changed KEY since the checkpoint was saved "
    "(repeatable or comma-separated; e.g. lr, epochs). Any other change is refused.",
)
@click.option("--quiet", is_flag=True, help="No progress bar and no status lines (warnings still show).")
@click.option(
    "--ddp",
    type=click.IntRange(min=2),
    metavar="N",
    help="Train data-parallel in N processes of this machine, rendezvous on 127.0.0.1 (gloo on CPU, nccl on CUDA; "
    "a rank that dies keeps the checkpoint: continue with --resume RUN_DIR --ddp N; docs/scale-out.md).",
)
def run_command(config_file, regularizers, sets, out, quick, resume, allow_changed, quiet, ddp, **options) -> None:
    """Train the hybrid model of the seed paper and write a run directory.

    With no options: torch backend, hea8x6, angle encoder, gated fusion, stability and curvature
    regularizers, on a 60,000-sample Dataset-A-like set, 8 epochs: 1,320 iterations, 24.5 s measured
    on two quiet CPU cores (17.7 s of training; 27.6 s with one core kept busy). For a first look in
    about 7 s, use --quick. The run
    directory holds config.toml, meta.json, metrics.json, curves.csv, epochs.csv, convergence.png and
    model.safetensors; while the run trains, a checkpoint too (continue an interrupted run with --resume).
    Exit status: 0 done, 1 the run failed (a non-finite loss) or a rank of a data-parallel run was lost (its
    checkpoint kept), 2 a mistake in the input, 130 Ctrl-C. A resumed run refuses a config.toml edited since
    its checkpoint, naming the keys, unless --allow-changed names them.
    Under torchrun (`torchrun --nproc-per-node N -m hqf run …`) each process trains one rank's shard of
    every batch and rank 0 alone writes the run directory.
    """
    from hqf.learn.rundir.lifecycle import read_run_config  # at use: it loads torch, which --help does not need

    if allow_changed and not resume:
        raise ConfigError("--allow-changed goes with --resume RUN_DIR")
    if resume:
        _refuse_with_resume(config_file, regularizers, sets, out, quick, options)
        _run_in(pathlib.Path(resume), read_run_config(resume), resume, allow_changed, quiet, ddp, given_out=True)
        return
    config = resolve_config(config_file, options, regularizers, sets, quick=quick)
    with claimed_run_dir(out) as folder:  # runs/<time>, removed again when nothing was written into it
        _run_in(folder, config, resume, allow_changed, quiet, ddp, given_out=bool(out))


def _run_in(folder: pathlib.Path, config, resume, allow_changed, quiet: bool, ddp, given_out: bool) -> None:
    """Check, then train ``config`` into ``folder`` (``resume``: continue the run there), or launch ``ddp``
    ranks to; print the results table."""
    from hqf.learn.config import read_resolved

    # at use: they load torch, which --help does not need
    from hqf.learn.experiment import preflight, run
    from hqf.learn.process.distributed import LOST_EXIT, from_environment, launched, rank_setup
    from hqf.learn.process.eta import clock
    from hqf.learn.resolution import resolution_notes
    from hqf.learn.rundir.lifecycle import check_fresh, check_resumable
    from hqf.learn.training.checkpointing import RankLost

    checked = preflight(config)  # device, names and the backend: an unknown or unavailable one stops here
    ranks = from_environment()  # one rank of a torchrun launch, or None
    resumed_at = None
    if ranks is None or ranks.writes:
        if resume:
            check_resumable(folder, config)
            resumed_at = _guard_resume(folder, config, allow_changed, accept=ranks is None)
        else:
            check_fresh(folder)  # also says when --out holds an interrupted run to resume
    quiet = quiet or (ranks is not None and not ranks.writes)
    if resumed_at is not None and not quiet and ranks is None:
        click.echo(f"resuming {folder} from iteration {resumed_at} (its last checkpoint)", err=True)
    if ddp is not None:
        _launch_ranks(ddp, folder, given_out=given_out)
        return
    bars: list = []

    def progress(step: int, total: int, row: dict) -> None:
        if not bars:  # the time left is hqf's own estimate (hqf.learn.process.eta), not tqdm's
            bars.append(
                tqdm(
                    total=total,
                    initial=step - 1,  # a resumed run's bar starts where it resumed
                    unit="it",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    desc="training",
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                )
            )
        bar = bars[0]
        bar.update(1)
        if step % 5 == 0 or step == total:
            bar.set_postfix_str(
                f"left {clock(row.get('eta_s'))}, loss {row['loss']:.4f}, grad {row['grad_norm_ema']:.3g}",
                refresh=False,
            )

    def log(text: str) -> None:
        if bars:
            bars[0].close()  # training is over
        click.echo(text, err=True)

    def warn(text: str) -> None:
        click.echo(text, err=True)

    try:
        with rank_setup(ranks, config.device, folder, bool(resume)) as here:  # here: folder, or a rank's scratch
            metrics = run(
                config,
                here,
                progress=None if quiet else progress,
                log=None if quiet else log,
                checked=checked,
                warn=None if ranks is not None and not ranks.writes else warn,
                resume=bool(resume),
                ranks=ranks,
            )
    except RunFailedError as exc:  # not a mistake in the input (exit 2): the run itself failed
        if ranks is None or ranks.writes:  # the other ranks failed alike: rank 0 says it once
            click.echo(f"Error: {exc}", err=True)
        raise SystemExit(1) from None
    except RunInterrupted as exc:  # hqf's launcher says it once for every rank (rank 0 does under torchrun)
        if launched() or (ranks is not None and not ranks.writes):
            raise SystemExit(LOST_EXIT if isinstance(exc, RankLost) else exc.exit_code) from None
        raise
    finally:
        if bars:
            bars[0].close()
    if ranks is not None and not ranks.writes:
        return
    for line in results_table(metrics, config, folder):
        click.echo(line)
    for line in resolution_notes(config, read_resolved(folder / "config.toml")):
        click.echo(line)


def _guard_resume(folder: pathlib.Path, config, allow_changed: tuple[str, ...], accept: bool) -> int:
    """Before ``--resume`` does any work: the checkpoint reads, and ``config`` (RUN_DIR/config.toml) is the
    configuration it trained with or differs only in keys ``allow_changed`` names (then, with ``accept``,
    the checkpoint is set to continue under the new values). The iteration the checkpoint holds."""
    from hqf.learn.rundir import checkpoint as ckpt

    allowed = ckpt.check_changeable(allow_changed)
    path = folder / ckpt.CHECKPOINT
    if not path.exists():
        return 0
    saved = ckpt.load(path)
    changed = ckpt.check_config(saved, config, folder, allowed)
    if changed and accept:
        ckpt.accept_config(path, config)
        shown = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items())
        click.echo(f"continuing under the changed {shown} (--allow-changed)", err=True)
    return int(saved.get("step", 0))


def _launch_ranks(processes: int, folder: pathlib.Path, given_out: bool) -> None:
    """``hqf run --ddp N``: this command again, without ``--ddp``, as N ranks on this machine
    (:func:`hqf.learn.process.distributed.launch`); one line when a rank ended abnormally."""
    from hqf.learn.process.distributed import launch

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--ddp" or arg.startswith("--ddp="):
            skip = arg == "--ddp"
            continue
        args.append(arg)
    if not given_out:
        args += ["--out", str(folder)]  # one folder for every rank, chosen here
    outcome = launch(processes, args, folder)
    if outcome.message is not None:
        click.echo(f"Interrupted: {outcome.message}", err=True)
    if outcome.exit_code != 0:
        raise SystemExit(outcome.exit_code)
