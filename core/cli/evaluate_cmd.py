"""``hqf evaluate RUN_DIR``: a finished run's trained model on its test split, on another backend
and/or under a noise model (docs/noise.md) and/or with noise on the inputs."""

from __future__ import annotations

import json
import pathlib

import click

from hqf.errors import ConfigError

#: the largest --seed (torch seeds are 64-bit)
MAX_SEED = 2**63 - 1
#: bytes of simulator state per batch that keep each gate's pass in the CPU's cache (measured: an
#: 8-qubit density matrix ran 6 rows/s at 1-16 rows per batch and 2.5 rows/s at 256)
BATCH_STATE_BYTES = 16 << 20


def rows_per_batch(config) -> int:
    """Rows per forward pass: as many as fit :data:`BATCH_STATE_BYTES` of state, from 1 to 1024."""
    from hqf.registry.loader import registry
    from hqf.registry.make import make_ansatz

    if config.baseline is not None:
        return 1024
    qubits = make_ansatz(config.ansatz).n_qubits
    mixed = bool(config.noise_text) or registry().get("backend", config.backend).cls.capabilities.noise
    dense = 4**qubits if mixed else 2**qubits  # amplitudes of a density matrix or a state vector
    return max(1, min(1024, BATCH_STATE_BYTES // (16 * dense)))


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--backend",
    help="Simulate the quantum layer on this backend, e.g. torch-dm (hqf list) [default: the "
    "backend of the run's test metrics; with --noise, the first exact backend that runs it].",
)
@click.option(
    "--noise",
    metavar="MODEL",
    help="Evaluate under this noise model in place of the run's, e.g. "
    '"depolarizing=0.02,amplitude_damping=0.01,readout=0.03"; none: noiseless [default: the run\'s].',
)
@click.option(
    "--depolarizing",
    type=click.FloatRange(0.0, 1.0),
    help="Shorthand for --noise depolarizing=P [default: the run's, 0].",
)
@click.option(
    "--mitigate",
    metavar="WHICH",
    help="Mitigate the noise: zne (global folding 1,3,5, Richardson), readout (invert the noise model's "
    "confusion matrices) or zne,readout; needs a noise model [default: none].",
)
@click.option(
    "--input-noise",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="Gaussian noise of this σ added to the (z-scored) test inputs.",
)
@click.option(
    "--test-samples", type=click.IntRange(min=1), help="Only the first N rows of the test split [default: all]."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the input noise (0 to 2**63 - 1).")
@click.option("--out", type=click.Path(dir_okay=False), help="JSON file to write the metrics to (must not exist).")
def evaluate_command(run_dir, backend, noise, depolarizing, mitigate, input_noise, test_samples, seed, out) -> None:
    """Accuracy, macro-F1, ECE and NLL of the model a finished run kept, on the run's own test split
    (drawn as the run drew it), under the given backend, noise model, mitigation and input noise.

    A density-matrix backend costs about 2ⁿ times a state vector per row: use --test-samples for 8
    qubits and more.
    """
    import numpy as np
    import torch

    from hqf.learn.rundir.saved import load, run_dataset
    from hqf.learn.training import metrics as M
    from hqf.quantum.mitigation import MitigatedBackend

    target = pathlib.Path(out) if out else None
    if target is not None and (target.exists() or not target.parent.is_dir()):
        problem = "exists" if target.exists() else "is in a folder that does not exist"
        raise ConfigError(f"--out {target} {problem}; give a new file in an existing folder")
    if noise is not None and depolarizing is not None:
        raise ConfigError("give either --noise or its shorthand --depolarizing, not both")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer from 0 to {MAX_SEED:,} (2**63 - 1; got {seed})")
    trained = load(run_dir, backend=backend, depolarizing=depolarizing, noise=noise, mitigate=mitigate)
    data = run_dataset(trained)
    x, y = data.test.x[:test_samples], data.test.y[:test_samples]
    if input_noise:
        generator = torch.Generator().manual_seed(seed)
        with np.errstate(over="ignore", invalid="ignore"):
            x = x + input_noise * torch.randn(x.shape, generator=generator, dtype=torch.float64).numpy().astype(x.dtype)
        if not np.isfinite(x).all():
            raise ConfigError(
                f"--input-noise {input_noise:g} makes the (z-scored) test inputs overflow float32; give a smaller σ"
            )
    probs = trained.predict_proba(x, scaled=True, batch_size=rows_per_batch(trained.config))
    result = {
        key: value for key, value in M.classification_metrics(probs, y, data.n_classes).items() if key != "reliability"
    }
    config = trained.config
    simulator = getattr(trained.model.quantum, "backend", None)  # none: no quantum branch, or a classical one
    mitigation = simulator.settings if isinstance(simulator, MitigatedBackend) else None
    if mitigation is not None:
        simulator = simulator.backend
    backend_name = simulator.name if simulator is not None else config.backend
    result.update(
        backend=backend_name,
        noise=config.noise_text or "none",
        depolarizing=config.depolarizing,
        mitigation=mitigation or "none",
        input_noise=input_noise,
        test_samples=int(len(y)),
        run_dir=str(run_dir),
    )
    for key in ("accuracy", "macro_f1", "ece", "nll"):
        click.echo(f"{key:<10} {result[key]:.4g}")
    mitigated = f", mitigation {mitigate}" if mitigation is not None else ""
    noises = f"noise {result['noise']}{mitigated}, input noise σ={input_noise:g}"
    click.echo(f"on {len(y)} test rows, backend {backend_name}, {noises}")
    if target is not None:
        from hqf.learn.rundir.checkpoint import atomic_write_text

        atomic_write_text(
            target,
            json.dumps({k: (float(v) if isinstance(v, np.floating) else v) for k, v in result.items()}, indent=2),
        )
        click.echo(f"wrote {target}", err=True)
