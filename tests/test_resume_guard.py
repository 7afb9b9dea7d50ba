"""Resuming a run: an edited configuration is refused unless allowed, an unreadable checkpoint is one line,
temporary files of a killed write are removed (never through a link), and the run says where it resumed."""

from __future__ import annotations

import csv
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from hqf.cli import main
from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.rundir import checkpoint as ckpt
from hqf.learn.rundir.state import state_of

#: 3 epochs x 7 iterations, a checkpoint every 2: stopped at iteration 9, it resumes from iteration 8
TINY = {
    "samples": 300, "epochs": 3, "batch_size": 32, "ansatz": "hea2x1", "hidden": 8, "latent": 4,
    "vai_samples": 16, "latency_repeats": 1, "checkpoint_every": 2,
}  # fmt: skip
SAVED_AT, TOTAL = 8, 21


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> pathlib.Path:
    """A run stopped at once (a second Ctrl-C) at iteration 9, its checkpoint of iteration 8 kept."""
    out = tmp_path_factory.mktemp("guard") / "run"

    def stop_at_9(step, total, row):
        if step == SAVED_AT + 1:
            raise KeyboardInterrupt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(RunConfig.from_dict(TINY), out, progress=stop_at_9)
    finally:
        torch.set_num_threads(threads)
    assert ckpt.load(out / "checkpoint.pt")["step"] == SAVED_AT
    return out


@pytest.fixture
def copy(interrupted, tmp_path) -> pathlib.Path:
    target = tmp_path / "run"
    shutil.copytree(interrupted, target)
    return target


def _edit(directory: pathlib.Path, **changes) -> None:
    config = RunConfig.from_toml(directory / "config.toml").replace(**changes)
    (directory / "config.toml").write_text(config.to_toml())


def _lr_by_step(directory: pathlib.Path) -> dict[int, float]:
    with open(directory / "curves.csv", newline="") as handle:
        return {int(row["step"]): float(row["lr"]) for row in csv.DictReader(handle)}


def test_resume_refuses_a_configuration_edited_since_the_checkpoint_naming_the_keys(copy):
    _edit(copy, lr=0.05)
    before = (copy / "checkpoint.pt").read_bytes(), (copy / "status.json").read_text()
    result = CliRunner().invoke(main, ["run", "--resume", str(copy), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"Error: {copy}/config.toml differs from the configuration its checkpoint trained with (lr: 0.001 -> 0.05); "
        f"restore it, or continue under the new values: hqf run --resume {copy} --allow-changed lr"
    ]
    assert ((copy / "checkpoint.pt").read_bytes(), (copy / "status.json").read_text()) == before  # left as it was
    with pytest.raises(ConfigError, match=r"differs from the configuration its checkpoint trained with \(lr"):
        run(RunConfig.from_toml(copy / "config.toml"), copy, resume=True)  # the library refuses it too
    assert (copy / "checkpoint.pt").read_bytes() == before[0] and state_of(copy) == "resumable"


def test_allow_changed_continues_under_the_new_values_of_the_keys_it_names_only(copy):
    _edit(copy, lr=0.05)
    wrong = CliRunner().invoke(main, ["run", "--resume", str(copy), "--quiet", "--allow-changed", "epochs"])
    assert wrong.exit_code == 2 and "(lr: 0.001 -> 0.05)" in wrong.output and len(wrong.output.splitlines()) == 1
    shape = CliRunner().invoke(main, ["run", "--resume", str(copy), "--quiet", "--allow-changed", "hidden"])
    assert shape.exit_code == 2 and shape.output.startswith("Error: --allow-changed hidden: a resumed run cannot")
    alone = CliRunner().invoke(main, ["run", "--quiet", "--allow-changed", "lr"])
    assert alone.exit_code == 2 and alone.output.strip() == "Error: --allow-changed goes with --resume RUN_DIR"
    result = CliRunner().invoke(main, ["run", "--resume", str(copy), "--quiet", "--allow-changed", "lr"])
    assert result.exit_code == 0, result.output
    assert "continuing under the changed lr 0.001 -> 0.05 (--allow-changed)" in result.stderr
    lr = _lr_by_step(copy)
    assert sorted(lr) == list(range(1, TOTAL + 1))
    assert {lr[s] for s in range(1, SAVED_AT + 1)} == {0.001} and {lr[s] for s in range(SAVED_AT + 1, TOTAL + 1)} == {
        0.05
    }


def test_a_resumed_run_says_where_it_resumed_and_its_progress_bar_starts_there(copy):
    result = CliRunner().invoke(main, ["run", "--resume", str(copy)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"resuming {copy} from iteration {SAVED_AT} (its last checkpoint)"
    bar = [part for part in result.stderr.replace("\r", "\n").splitlines() if part.startswith("training")]
    assert bar and f"| {SAVED_AT}/{TOTAL} " in bar[0] and f"| {TOTAL}/{TOTAL} " in bar[-1], bar


@pytest.mark.parametrize(
    "content",
    [
        "a pickled object",
        "a raw pickle",
        "truncated",
        "not torch at all",
    ],
)
def test_an_unreadable_checkpoint_is_one_line_of_hqfs_own(copy, content):
    path = copy / "checkpoint.pt"
    if content == "a pickled object":
        torch.save({"format": ckpt.FORMAT, "payload": ConfigError("a class")}, path)
    elif content == "a raw pickle":
        path.write_bytes(pickle.dumps({"format": ckpt.FORMAT}, protocol=4))
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_bytes(b"hello" * 40)
    result = CliRunner().invoke(main, ["run", "--resume", str(copy), "--quiet"])
    assert result.exit_code == 2
    expected = (
        "it holds objects other than tensors and plain values (refused: hqf never unpickles them)"
        if "pickle" in content
        else "it is truncated or not a torch file"
    )
    assert result.output.splitlines() == [f"Error: {path} is not a readable hqf checkpoint: {expected}"]
    assert "weights_only" not in result.output


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_temporary_files_of_a_killed_write_are_removed_when_the_run_resumes_never_through_a_link(copy, tmp_path):
    dead = _dead_pid()
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's")
    (copy / f".checkpoint.pt.tmp-{dead}").write_bytes(b"half a checkpoint")  # a kill mid-write
    (copy / f".lock.{dead}.tmp").write_text("{")
    (copy / f".status.json.tmp-{dead}").symlink_to(outside)  # not hqf's: left alone, never followed
    (copy / "notes.tmp-1").write_text("the user's")
    (copy / f".notes.txt.tmp-{dead}").write_text("the user's too: not a name hqf writes")
    run(RunConfig.from_toml(copy / "config.toml"), copy, resume=True)
    names = sorted(p.name for p in copy.iterdir())
    assert f".checkpoint.pt.tmp-{dead}" not in names and f".lock.{dead}.tmp" not in names
    assert f".status.json.tmp-{dead}" in names and "notes.tmp-1" in names and "metrics.json" in names
    assert f".notes.txt.tmp-{dead}" in names
    assert outside.read_text() == "someone else's"


def test_a_checkpoint_is_never_written_through_a_link_at_its_temporary_name(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's")
    (tmp_path / f".checkpoint.pt.tmp-{os.getpid()}").symlink_to(outside)
    with pytest.raises(ConfigError, match="exists and is not a file hqf wrote"):
        ckpt.save(tmp_path / "checkpoint.pt", {"step": 1})
    assert outside.read_text() == "someone else's" and not (tmp_path / "checkpoint.pt").exists()
    (tmp_path / f".checkpoint.pt.tmp-{os.getpid()}").unlink()
    (tmp_path / f".checkpoint.pt.tmp-{os.getpid()}").write_text("this pid's, left by a killed process")
    ckpt.save(tmp_path / "checkpoint.pt", {"step": 2})
    assert ckpt.load(tmp_path / "checkpoint.pt")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "outside.txt"]


def test_a_run_records_the_configuration_it_trained_with_in_its_checkpoint(interrupted):
    saved = ckpt.load(interrupted / "checkpoint.pt")
    config = RunConfig.from_toml(interrupted / "config.toml")
    assert saved["config"] == ckpt.config_record(config) and ckpt.config_changes(saved, config) == {}
    assert ckpt.config_changes(saved, config.replace(lr=0.01, curvature_every=3)) == {
        "lr": (0.001, 0.01),
        "regularizer_options.curvature.every": (10, 3),
    }
    assert json.loads((interrupted / "status.json").read_text())["status"] == "interrupted"
