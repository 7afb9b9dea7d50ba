"""``hqf check``: run the backend conformance suite (:mod:`hqf.testing`) against a registered backend."""

from __future__ import annotations

import inspect
import time

import click

from hqf.errors import ConfigError, HqfError

#: the largest circuit the reference simulator (:data:`hqf.testing.reference.MAX_QUBITS`) runs; a
#: literal here so that ``hqf --help`` does not import the suite (tests/test_check_cli.py keeps them equal)
MAX_QUBITS = 10
#: the largest circuit of the noise properties (:data:`hqf.testing.noisy.MAX_NOISY_QUBITS`; kept equal by a test)
MAX_NOISY_QUBITS = 6
#: trajectories per row of a trajectory backend under the noise properties, unless ``--option`` sets them
CHECK_TRAJECTORIES = 4096


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as int, float, true/false/none, or else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--option must look like key=value (got {text!r})")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip(), lowered == "true"
    if lowered == "none":
        return key.strip(), None
    for kind in (int, float):
        try:
            return key.strip(), kind(raw)
        except ValueError:
            pass
    return key.strip(), raw


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


@click.command("check")
@click.option("--backend", "backend_name", required=True, help="Registered backend name (see `hqf list`).")
@click.option(
    "--examples", default=25, show_default=True, type=click.IntRange(min=1), help="Hypothesis examples per property."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the drawn examples.")
@click.option(
    "--dtype",
    default=None,
    type=click.Choice(["complex128", "complex64"]),
    help="State dtype (default: the backend's default).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend constructor option, repeatable (e.g. --option pl_device=lightning.qubit).",
)
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="NAME",
    help="Run only these properties (repeatable); default: all.",
)
@click.option(
    "--max-qubits",
    default=8,
    show_default=True,
    type=click.IntRange(1, MAX_QUBITS),
    help=f"Largest drawn circuit (the dense reference runs at most {MAX_QUBITS} qubits).",
)
@click.option(
    "--max-ops", default=20, show_default=True, type=click.IntRange(1, 200), help="Most gates in a drawn circuit."
)
@click.option(
    "--noise",
    "noise_text",
    default=None,
    metavar="MODEL",
    help="Noise model of the noise properties, e.g. 'depolarizing=0.02,amplitude_damping=0.01,"
    "readout=0.03' (default: every channel the backend declares, at a small strength).",
)
def check_command(backend_name, examples, seed, dtype, options, properties, max_qubits, max_ops, noise_text):
    """Check a backend against the reference simulator: values, shift Jacobians, gradients, shapes, and
    for a noisy backend its values and gradients under a noise model against the density-matrix reference.

    Exits 0 when every property holds, 1 on a mismatch (showing the smallest failing circuit), and 2
    when the backend is unknown, unavailable here, rejects the options, or does not run the noise.
    """
    # imported when the command runs, not when the CLI lists its commands: keeps `hqf --help` fast
    from hqf.learn.process.runtime import resolve_threads, set_threads
    from hqf.quantum.noise import NoiseModel
    from hqf.registry.make import make_backend
    from hqf.testing import NOISE_PROPERTIES, PROPERTIES, Limits, check_backend, default_noise, estimates

    opts = dict(parse_option(text) for text in options)
    if dtype is not None:
        opts["dtype"] = dtype
    known = [*PROPERTIES, *NOISE_PROPERTIES]
    unknown = [p for p in properties if p not in known]
    if unknown:
        raise ConfigError(f"unknown property {unknown[0]!r}; properties: {', '.join(known)}")
    try:
        noise = None if noise_text is None else NoiseModel.parse(noise_text)
    except ValueError as exc:
        raise ConfigError(f"--noise: {exc}") from None
    try:
        backend = make_backend(backend_name, **opts)
    except HqfError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"backend {backend_name!r} rejects the options {opts}: {exc}") from None

    threads = resolve_threads(
        "auto", amplitudes=0
    )  # the checked circuits are small: one thread unless OMP_NUM_THREADS says
    set_threads(threads)

    channels = backend.capabilities.channels
    if noise is not None:
        if not channels:
            raise ConfigError(f"backend {backend_name!r} runs no noise; --noise needs a noisy backend")
        try:
            noise.require(backend_name, channels)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    noisy = noise is not None or bool(channels)
    model = noise if noise is not None or not channels else default_noise(channels, estimates(backend))
    under_noise = estimate_options(backend, opts, seed) if noisy else {}

    def fresh_backend(**extra):
        made = make_backend(backend_name, **opts, **(under_noise if "noise" in extra else {}), **extra)
        made.set_threads(threads)
        return made

    _print_setup(
        backend_name,
        backend,
        opts,
        f"up to {examples} examples per property (a failure then "
        f"shrinks, counted apart), seed {seed}, circuits of 1-{max_qubits} qubits, up to {max_ops} gates",
    )
    if noisy:
        _print_noise(model, under_noise, noise is None, max_qubits)
    started = time.perf_counter()
    chosen = list(properties) or [*PROPERTIES, *(NOISE_PROPERTIES if noisy else ())]
    results = check_backend(
        fresh_backend,
        examples=examples,
        seed=seed,
        properties=chosen,
        limits=Limits(max_qubits=max_qubits, max_ops=max_ops),
        noise=model,
    )
    _print_results(results, time.perf_counter() - started)


def estimate_options(backend, opts: dict, seed: int) -> dict:
    """The options a trajectory backend gets under the noise properties, unless ``--option`` sets them:
    :data:`CHECK_TRAJECTORIES` per row and ``seed`` (so the check replays), where its constructor takes them."""
    if getattr(backend, "trajectories", None) is None:
        return {}
    accepted = inspect.signature(type(backend)).parameters
    wanted = {"trajectories": CHECK_TRAJECTORIES, "seed": seed}
    return {k: v for k, v in wanted.items() if k in accepted and k not in opts}


def _print_noise(model, under_noise: dict, default: bool, max_qubits: int) -> None:
    """The noise model of the noise properties and their answer key."""
    shown = "".join(f", {k}={v}" for k, v in sorted(under_noise.items()))
    chosen = "the default model of its channels" if default else "--noise"
    click.echo(
        f"  noise properties: noise {model} ({chosen}{shown}); circuits of 1-{min(max_qubits, MAX_NOISY_QUBITS)} qubits"
    )
    click.echo("  reference: hqf.testing.ReferenceDensityBackend (dense density matrix, complex128)")
    click.echo("")


def _print_setup(backend_name: str, backend, opts: dict, drawn: str) -> None:
    """What is checked, against what, within which bound."""
    from hqf.testing import Tolerance, native_gradients  # the suite loads with the command (see above)

    caps = backend.capabilities
    shown = ", ".join(f"{k}={v}" for k, v in sorted(opts.items()))
    click.echo(f"hqf check: backend {backend_name!r}" + (f" ({shown})" if shown else ""))
    gradients = ", ".join(native_gradients(backend)) or "none (parameter-shift only)"
    click.echo(f"  dtype {backend.dtype}; {'exact' if caps.exact else 'sampled'}; native gradients: {gradients}")
    click.echo(f"  tolerance: {Tolerance.for_backend(backend).describe()}")
    click.echo(f"  {drawn}; reference: hqf.testing.ReferenceBackend (dense, complex128)")
    click.echo("")


def _print_results(results, elapsed: float) -> None:
    """One line per property (examples run, and shrink steps after a failure), the counts, the skips,
    and each failure's smallest circuit; exit 1 on a failure."""
    header = f"{'property':<16} {'result':<6} {'examples':>8}  {'shrink steps':>12}  {'worst |Δ|':>9}  {'bound':>9}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in results:
        worst, bound = (None, None) if r.property == "shape" else (r.worst_error, r.bound)
        shrunk = r.shrink_steps if r.status == "fail" else "-"
        click.echo(
            f"{r.property:<16} {r.status:<6} {r.examples:>8}  {shrunk:>12}  {_number(worst):>9}  {_number(bound):>9}"
        )
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    click.echo(
        f"\n{len(results)} properties: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['skip']} skipped in {elapsed:.1f}s"
    )
    for r in results:
        if r.status == "skip":
            click.echo(f"  skipped {r.property}: {r.message}")
    failed = [r for r in results if r.status == "fail"]
    for r in failed:
        click.echo(f"\nFAILED {r.report()}")
    if failed:
        raise SystemExit(1)
