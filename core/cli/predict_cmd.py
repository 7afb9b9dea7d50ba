"""``hqf predict RUN_DIR``: the trained model of a finished run on new data; predictions and probabilities as CSV."""

from __future__ import annotations

import csv
import io
import pathlib
import sys

import click

from hqf.errors import ConfigError


@click.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--dataset",
    help="A .csv/.npz file (every row), or a built-in name (its test split, drawn as in the run) "
    "[default: the run's own dataset].",
)
@click.option("--out", type=click.Path(dir_okay=False), help="CSV file to write (must not exist) [default: stdout].")
@click.option("--backend", help="Simulate the quantum layer on this backend instead of the run's (hqf list).")
@click.option("--device", help="torch device to run on instead of the run's.")
def predict_command(run_dir, dataset, out, backend, device) -> None:
    """Predict with the model a finished run kept (model.safetensors): one CSV row per sample with its
    index, its label where the data has one, the predicted class and the probability of every class.

    A CSV file may hold the model's features alone, or one more column with the label (by the run's
    label_column, else the last); it is z-scored with the training split's statistics.
    """
    from hqf.learn.rundir.saved import load, read_features  # at use: they load torch, which --help does not need

    target = pathlib.Path(out) if out else None
    if target is not None and (target.exists() or not target.parent.is_dir()):
        problem = "exists" if target.exists() else "is in a folder that does not exist"
        raise ConfigError(f"--out {target} {problem}; give a new file in an existing folder")
    trained = load(run_dir, backend=backend, device=device)
    config = trained.config
    name = dataset or config.dataset
    path = pathlib.Path(name)
    if path.suffix.lower() in (".csv", ".npz"):
        x, labels = read_features(path, trained.n_features, config.label_column)
        probs = trained.predict_proba(x)
    else:
        probs, labels = _builtin_test_split(trained, name)
    text = _csv(probs, labels, trained.class_names)
    if target is None:
        sys.stdout.write(text)
        return
    from hqf.learn.rundir.checkpoint import atomic_write_text

    try:
        atomic_write_text(target, text)  # whole or not at all
    except OSError as exc:  # a full disk: where, and that nothing was left
        raise OSError(exc.errno, f"{exc.strerror or exc}; nothing was written", str(target)) from None
    click.echo(f"wrote {len(probs)} predictions to {target}", err=True)


def _builtin_test_split(trained, name: str):
    """Probabilities and labels on the test split of a built-in dataset, drawn as the run drew its own."""
    from hqf.learn.rundir.saved import run_dataset

    data = run_dataset(trained, name)
    probs = trained.predict_proba(data.test.x, scaled=True)  # z-scored with its own training split, as in the run
    return probs, [data.class_names[i] for i in data.test.y]


def _csv(probs, labels, class_names) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", *(["label"] if labels is not None else []), "prediction", *(f"p_{c}" for c in class_names)])
    for i, row in enumerate(probs):
        label = [str(labels[i])] if labels is not None else []
        writer.writerow([i, *label, class_names[int(row.argmax())], *(repr(float(p)) for p in row)])
    return buffer.getvalue()
